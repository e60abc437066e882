package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A parent that fails leaves its running children running, as the docs
// say: a redrive of the parent takes their results.
func TestDefect11_ChildKeepsRunningWhenParentFails(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "language.md"))
	if err != nil {
		t.Fatal(err)
	}
	const says = "When the parent fails, a child that still runs is **not** canceled"
	if !strings.Contains(strings.Join(strings.Fields(string(doc)), " "), says) {
		t.Errorf("docs/language.md does not say %q", says)
	}

	e := newEnv(t, envOpts{})
	e.putDef(`
name: waiter
steps:
  - { id: gate, wait: { signal: go } }
output: "${ steps.gate.output }"
`)
	e.putDef(`
name: impatient
timeout: 2s
steps:
  - { id: kid, workflow: waiter }
`)
	id := e.start("impatient", "", `{}`)
	childID := workflow.ChildID(id, "kid", 1)
	eventually(t, 20*time.Second, "child to wait", func() bool {
		resp, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: childID}))
		return err == nil && stepStatus(resp.Msg.Workflow, "gate") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("parent: status %v error %v", w.Status, w.Error)
	}
	// Give a cancel, if one were sent, time to land.
	time.Sleep(time.Second)
	if w := e.get(childID); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("child of the failed parent: status %v, want RUNNING", w.Status)
	}
	if err := e.signal(childID, "go", `"yes"`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(childID, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("child: status %v error %v", w.Status, w.Error)
	}
	e.redrive(id, "")
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"yes"` {
		t.Fatalf("redriven parent: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	n := 0
	for _, ev := range e.history(id) {
		if ev.Type == "ChildStarted" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the parent started %d children, want 1", n)
	}
}

// A parallel whose branch fails cancels the task still running in the
// other branch: the step shows CANCELED and its late result is ignored.
func TestDefect7_FailingParallelCancelsRunningTask(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	ran := make(chan struct{}, 1)
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"slow": func(ctx context.Context, task *executor.Task) (any, error) {
			ran <- struct{}{}
			<-release
			return "late", nil
		},
		"boom": func(ctx context.Context, task *executor.Task) (any, error) {
			<-ran // fail once the other branch runs
			return nil, executor.NonRetryable(errors.New("boom"))
		},
	}})
	e.putDef(`
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{ id: bad, task: boom }]
        b: [{ id: slow, task: slow }]
`)
	t.Cleanup(free) // before the node stops, which waits for its handlers
	id := e.start("fan", "", `{}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if got := stepStatus(w, "slow"); got != weftv1.StepStatus_STEP_STATUS_CANCELED {
		t.Fatalf("slow is %v after the parallel failed, want CANCELED", got)
	}
	free()
	// The late result reaches the orchestrator and is dropped.
	time.Sleep(time.Second)
	w = e.get(id)
	if got := stepStatus(w, "slow"); got != weftv1.StepStatus_STEP_STATUS_CANCELED {
		t.Fatalf("slow is %v after its late result, want CANCELED", got)
	}
	var canceled, completed int
	for _, ev := range e.history(id) {
		switch {
		case ev.Type == "StepCanceled" && ev.StepPath == "slow":
			canceled++
		case ev.Type == "StepCompleted" && ev.StepPath == "slow":
			completed++
		}
	}
	if canceled != 1 || completed != 0 {
		t.Fatalf("history of slow: %d StepCanceled, %d StepCompleted; want 1 and 0", canceled, completed)
	}
}
