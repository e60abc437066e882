package workflow_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child that fails after its parent failed on its timeout: its failure
// is recorded, and a redrive goes on with it: its catch runs, and no
// second child is started.
func TestARedriveHandsALateFailureToItsCatch(t *testing.T) {
	const src = `
name: p
timeout: 1m
steps:
  - id: k
    workflow: kid
    catch:
      - do:
          - { id: fallback, task: fb }
`
	r := startRun(t, src, nil)
	if s := r.st.Steps["k"]; s == nil || s.ChildID == "" {
		t.Fatalf("no child step: %+v", r.st.Steps)
	}
	if _, ok := r.fireTimeout(2 * time.Minute); !ok {
		t.Fatal("timeout not accepted")
	}
	checkEnd(t, r, workflow.StatusFailed, nil)
	// the child fails now, and tells its failed parent
	r.result(3*time.Minute, "k", 1, events.OutcomeFailed, nil, &events.Error{Type: workflow.ErrTypeChild, Message: "child failed"})
	evs := r.add(events.Event{Type: events.TypeWorkflowRetried, Time: at(time.Hour), WorkflowRetried: &events.WorkflowRetried{}})
	caught := false
	for _, ev := range evs {
		if ev.ChildStarted != nil {
			t.Errorf("the redrive started a second child %s (gen %d) instead of running the catch; decided %v", ev.ChildStarted.WorkflowID, ev.ChildStarted.Gen, typesOf(evs))
		}
		if ev.StepScheduled != nil && ev.StepScheduled.Task == "fb" {
			caught = true
		}
	}
	if !caught {
		t.Errorf("the redrive did not run the catch; decided %v", typesOf(evs))
	}
}
