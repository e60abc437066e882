package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A run canceled while its step's attempt holds the step's only
// concurrency slot (the call goes on: a cancel does not stop a handler),
// deleted by its retention, and started again under its id: the new run's
// attempt has the same step, scheduling and attempt number as the deleted
// run's, and must not take the slot that attempt still holds for its own.
// It waits for it, as any other run's attempt does, until the call ends.
func TestAStepSlotOfADeletedRunIsNotTakenByARunStartedAgainUnderItsID(t *testing.T) {
	m := newConcurrencyMeter(t)
	var release sync.Once
	letGo := func() { release.Do(func() { close(m.hold) }) }
	t.Cleanup(letGo) // before the service closes, which waits for the held call
	e := newEnv(t, envOpts{})
	e.putDef(`
name: brief-slot
retention: 1s
steps:
  - id: call
    task: http
    input: { method: POST, url: "${ input.url + '?key=A&n=' + string(input.n) }" }
    concurrency: { limit: 1 }
`)
	const id = "slot-again"
	e.start("brief-slot", id, fmt.Sprintf(`{"n": 0, "url": %q}`, m.srv.URL)) // its call is held
	eventually(t, 10*time.Second, "the first run's call", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.now["A"] == 1
	})
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("run %s: %v, want canceled", id, w.Status)
	}
	eventually(t, 20*time.Second, "the canceled run deleted by its retention", func() bool { return e.gone(id) })

	e.start("brief-slot", id, fmt.Sprintf(`{"n": 1, "url": %q}`, m.srv.URL))
	deadline := time.Now().Add(15 * time.Second)
	for waiting := false; !waiting; {
		m.mu.Lock()
		most := m.most["A"]
		m.mu.Unlock()
		if most > 1 {
			t.Fatalf("%d calls of the step at once, its limit is 1: the run started again under %s took the slot its deleted run's attempt still holds", most, id)
		}
		if time.Now().After(deadline) {
			t.Fatal("the run started again neither waited for the slot nor called")
		}
		for _, s := range e.get(id).Steps {
			waiting = waiting || s.Path == "call" && s.Status == weftv1.StepStatus_STEP_STATUS_WAITING
		}
		time.Sleep(20 * time.Millisecond)
	}
	letGo()
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("run %s started again: %v %v", id, w.Status, w.Error)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.most["A"] > 1 {
		t.Fatalf("%d calls of the step at once, its limit is 1", m.most["A"])
	}
}
