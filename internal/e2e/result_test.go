package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A result is judged only on a history that reaches the command it names:
// while the orchestrator's read is behind that command, the result is kept
// and tried again, never dropped as stale.
func TestResultWaitsForItsCommand(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: manual
steps:
  - { id: a, task: manual }
  - { id: w, wait: { signal: go } }
output: "${ steps.a.output }"
`)
	id := e.start("manual", "", `{}`)
	// cmd is the stream sequence of the record holding a's command.
	var cmd uint64
	eventually(t, 20*time.Second, "the command to be recorded", func() bool {
		msgs, err := e.node.Store.Read(context.Background(), id, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			for _, ev := range m.Record.Events {
				if ev.StepScheduled != nil && ev.StepScheduled.Path == "a" {
					cmd = m.Seq
				}
			}
		}
		return cmd > 0
	})
	// The result names a command one record further on than the history
	// goes: as if the orchestrator's read lagged behind the executor's.
	err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC(), Cmd: cmd + 1})
	if err != nil {
		t.Fatal(err)
	}
	held := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(held) {
		if s := stepStatus(e.get(id), "a"); s != weftv1.StepStatus_STEP_STATUS_RUNNING {
			t.Fatalf("step a is %v before the history reached the result's command", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The history grows past it (a signal is the next record): the kept
	// result is applied.
	if err := e.signal(id, "go", `1`); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"done"` {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
}
