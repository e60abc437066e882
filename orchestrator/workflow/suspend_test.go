package workflow_test

import (
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const suspendDef = `
name: suspend
steps:
  - id: charge
    task: t
    retry: { max_attempts: 1, exhausted: suspend }
    catch:
      - errors: [declined]
        do: [{ id: note, set: { declined: "${ true }" } }]
  - id: after
    task: t
`

// fail records the result of step path's attempt: failed for good with
// error type typ.
func fail(t *testing.T, st *workflow.State, path, typ string) events.Event {
	t.Helper()
	ev, ok := workflow.AcceptResult(st, events.Result{V: 1, WorkflowID: "wf", Path: path, Gen: st.Steps[path].Gen,
		Attempt: st.Steps[path].Attempts + 1, Time: simT0, Outcome: events.OutcomeFailed, Error: &events.Error{Type: typ, Message: "no"}})
	if !ok {
		t.Fatalf("result of %s not taken", path)
	}
	if err := st.Apply(ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

// A failure that a catch of the step handles goes to the catch; any other
// suspends the step and the run, which then decides nothing until it is
// resumed, and a cancel closes it with the step canceled.
func TestSuspendUnlessCaught(t *testing.T) {
	def, st, _ := simStart(t, suspendDef)
	if ev := fail(t, st, "charge", "declined"); ev.Type != events.TypeStepFailed {
		t.Fatalf("a caught failure was recorded as %s", ev.Type)
	}
	if _, err := workflow.Advance(st, def); err != nil {
		t.Fatal(err)
	}
	if s := st.Steps["note"]; s == nil || s.Status != workflow.StepCompleted {
		t.Fatalf("the catch did not run:\n%s", simSteps(st))
	}

	def, st, _ = simStart(t, suspendDef)
	if ev := fail(t, st, "charge", "down"); ev.Type != events.TypeStepSuspended {
		t.Fatalf("an uncaught failure was recorded as %s", ev.Type)
	}
	if evs, err := workflow.Advance(st, def); err != nil || len(evs) != 0 || st.Shown() != workflow.StatusSuspended {
		t.Fatalf("suspended run decided %v (%v), shown %s", evs, err, st.Shown())
	}
	if err := st.Apply(events.Event{Type: events.TypeCancelRequested, Time: simT0, CancelRequested: &events.CancelRequested{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := workflow.Advance(st, def); err != nil {
		t.Fatal(err)
	}
	if st.Status != workflow.StatusCanceled || st.Steps["charge"].Status != workflow.StepCanceled {
		t.Fatalf("after a cancel: %s, charge %s", st.Status, st.Steps["charge"].Status)
	}
}

// A resume runs the suspended step again with fresh attempts, its
// numbers going on, and the run goes on after it.
func TestResumeRunsTheSuspendedStepAgain(t *testing.T) {
	def, st, _ := simStart(t, suspendDef)
	fail(t, st, "charge", "down")
	if err := st.Apply(events.Event{Type: events.TypeWorkflowResumed, Time: simT0, WorkflowResumed: &events.WorkflowResumed{}}); err != nil {
		t.Fatal(err)
	}
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].StepScheduled == nil || evs[0].StepScheduled.Gen != 2 || evs[0].StepScheduled.FirstAttempt != 2 {
		t.Fatalf("after the resume: %v", simShowAll(evs))
	}
	if st.Shown() != workflow.StatusRunning {
		t.Fatalf("shown %s after the resume", st.Shown())
	}
}
