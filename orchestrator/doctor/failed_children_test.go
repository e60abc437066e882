package doctor_test

import (
	"strings"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// "start a child" runs for "a running (or failed) workflow [that] has a
// child step RUNNING" (docs/reliability.md): a failed workflow keeps its
// children running, a redrive takes their results. A parent that failed
// (its workflow timeout, say) after recording ChildStarted and before the
// child was started, whose start is then skipped, has a child step
// RUNNING and no child. The doctor checks a closed run only for children
// to cancel and for its deletion, so it says nothing.
func TestAFailedParentsChildNeverStartedIsReported(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	seq := r.decided(r.start("p", "parent", nil)) // ChildStarted recorded
	seq, err := r.store.Append(r.ctx, "p", seq, events.Event{Type: events.TypeWorkflowFailed, Time: r.t0,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "timeout", Message: "workflow timed out"}}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("p", "parent", "FAILED", seq)
	rep := r.check()
	if !strings.Contains(stuckIDs(rep), "does not exist") {
		t.Errorf("a failed parent's RUNNING child step whose child was never started is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
}

// The same failed parent with its child started and running is fine; with
// its child closed and the parent never told ("tell the parent" skipped),
// the step waits for ever once the parent is redriven.
func TestAFailedParentsChildClosedUntoldIsReported(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	for _, p := range []string{"running", "closed"} {
		seq := r.decided(r.start(p, "parent", nil))
		seq, err := r.store.Append(r.ctx, p, seq, events.Event{Type: events.TypeWorkflowFailed, Time: r.t0,
			WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "timeout", Message: "workflow timed out"}}})
		if err != nil {
			t.Fatal(err)
		}
		r.index(p, "parent", "FAILED", seq)
		kid := workflow.ChildID(p, "kid", 1)
		kseq := r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: p, Path: "kid", Gen: 1, Created: r.t0}))
		status := "RUNNING"
		if p == "closed" {
			status = "CANCELED"
			if kseq, err = r.store.Append(r.ctx, kid, kseq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
				WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}}); err != nil {
				t.Fatal(err)
			}
		}
		r.index(kid, "gate", status, kseq)
	}
	rep := r.check()
	if problem(rep, "running") {
		t.Errorf("control: a failed parent whose child runs is reported: %s", stuckIDs(rep))
	}
	if !problem(rep, "closed") || !strings.Contains(stuckIDs(rep), "the parent was not told") {
		t.Errorf("a failed parent whose child closed and never told it is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
}
