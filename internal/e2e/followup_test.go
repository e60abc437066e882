package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// The tests in this file pin the follow-ups of a state (children started,
// parent told, listing written) on the paths that reach it without the
// event that usually causes them.

// listedStatus returns the status the listing shows for id.
func (e *env) listedStatus(id string) weftv1.WorkflowStatus {
	e.t.Helper()
	tok := ""
	for {
		resp, err := e.wf.ListWorkflows(ctx(e.t), connect.NewRequest(&weftv1.ListWorkflowsRequest{PageToken: tok}))
		if err != nil {
			e.t.Fatal(err)
		}
		for _, w := range resp.Msg.Workflows {
			if w.Id == id {
				return w.Status
			}
		}
		if tok = resp.Msg.NextPageToken; tok == "" {
			return weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED
		}
	}
}

// childOf returns the id of the child workflow started by the step at path.
func (e *env) childOf(id, path string) string {
	e.t.Helper()
	for _, ev := range e.history(id) {
		if ev.Type == "ChildStarted" && ev.StepPath == path {
			return ev.Data.GetStructValue().Fields["workflow_id"].GetStringValue()
		}
	}
	return ""
}

// Defect 1: a child failed by the "cannot go on" path (its history limit)
// tells its parent and is listed FAILED, like any other failure.
func TestDefect1_CannotGoOnTellsParentAndListing(t *testing.T) {
	e := newEnv(t, envOpts{maxHistory: 20})
	e.putDef(`
name: looper
steps:
  - id: many
    repeat:
      do: [ { id: tick, task: echo, input: "${ iteration }" } ]
      until: "${ false }"
      max_iterations: 1000
`)
	e.putDef(`
name: holder
steps:
  - { id: kid, workflow: looper }
`)
	id := e.start("holder", "", ``)
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != workflow.ErrTypeChild {
		t.Fatalf("parent: status %v error %v", w.Status, w.Error)
	}
	child := e.childOf(id, "kid")
	if cw := e.get(child); cw.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || cw.Error.Type != "limit" {
		t.Fatalf("child: status %v error %v", cw.Status, cw.Error)
	}
	eventually(t, 20*time.Second, "the child to be listed FAILED", func() bool {
		return e.listedStatus(child) == weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED
	})
	eventually(t, 20*time.Second, "the parent to be listed FAILED", func() bool {
		return e.listedStatus(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED
	})
}

// Defect 2: a child recorded as started by an orchestrator that died
// before starting it is started by the next orchestrator to fold that
// record, even when it folds it while catching up a cached state on an
// input that no longer applies (a duplicate result).
func TestDefect2_RecordedChildStartedOnCatchUp(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: kid
steps:
  - { id: twice, task: echo, input: "${ input.n * 2 }" }
`)
	e.putDef(`
name: mum
steps:
  - { id: first, task: manual }
  - { id: kid, workflow: kid, input: { n: 21 } }
`)
	id := e.start("mum", "", ``)
	eventually(t, 20*time.Second, "the first step to be scheduled", func() bool {
		return stepStatus(e.get(id), "first") == weftv1.StepStatus_STEP_STATUS_RUNNING
	})
	// Another orchestrator completes the first step and records the child's
	// start, then dies before starting it.
	store := e.node.Store
	c := ctx(t)
	last, err := store.LastSeq(c, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	childID := workflow.ChildID(id, "kid", 1)
	if _, err := store.Append(c, id, last,
		events.Event{Type: events.TypeStepCompleted, Time: now, StepCompleted: &events.StepCompleted{Path: "first", Attempt: 1, Output: "done"}},
		events.Event{Type: events.TypeChildStarted, Time: now, ChildStarted: &events.ChildStarted{Path: "kid", Gen: 1, WorkflowID: childID, Definition: "kid",
			Input: map[string]any{"n": int64(21)}}}); err != nil {
		t.Fatal(err)
	}
	// A result that no longer applies (of an older scheduling of the first
	// step) reaches the orchestrator that has the workflow cached: it
	// catches up and folds the child's start.
	if err := store.PublishResult(c, events.Result{WorkflowID: id, Path: "first", Gen: 2, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: now}); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "42" {
		t.Fatalf("parent: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
}

// Defect 4: after another orchestrator failed a run and wrote its listing
// entry, a redrive handled by an orchestrator that had the run cached
// lists it RUNNING again.
func TestDefect4_RedriveRelistsRunning(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	eventually(t, 20*time.Second, "the run to be listed RUNNING", func() bool {
		return e.listedStatus(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
	// Another orchestrator fails the run (its wait timed out, say) and
	// writes the listing entry.
	store := e.node.Store
	c := ctx(t)
	last, err := store.LastSeq(c, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	seq, err := store.Append(c, id, last, events.Event{Type: events.TypeWorkflowFailed, Time: now,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "timeout", Message: "no approve signal"}, Path: "approve"}})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := store.GetSummary(c, id)
	if err != nil {
		t.Fatal(err)
	}
	sum.Status, sum.Closed, sum.Seq = string(workflow.StatusFailed), now, seq
	if errs := store.PutSummaries(c, []eventstore.Summary{sum}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if _, err := e.wf.RetryWorkflow(c, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the redriven run to be listed RUNNING", func() bool {
		return e.listedStatus(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
}

// Defect 6: a signal or cancel that loses the race with the run's close is
// refused with FailedPrecondition, never appended after the close and
// answered OK.
func TestDefect6_SignalAfterCloseRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	eventually(t, 20*time.Second, "the run to wait", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	// The API reads the run as running, then the run closes before the
	// signal is appended: a signal every few milliseconds while the run
	// is cancelled makes the race likely; none may land after the close.
	c, cancel := context.WithTimeout(ctx(t), 20*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.Err() == nil {
			err := e.signalCtx(c, id, "other", `1`)
			if connect.CodeOf(err) == connect.CodeFailedPrecondition {
				return
			}
		}
	}()
	if _, err := e.wf.CancelWorkflow(c, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	<-done
	e.waitClosed(id, 20*time.Second)
	closed := false
	for _, ev := range e.history(id) {
		if closed && (ev.Type == "SignalReceived" || ev.Type == "CancelRequested") {
			t.Fatalf("%s appended after the run closed", ev.Type)
		}
		closed = closed || ev.Type == "WorkflowCanceled"
	}
	err := e.signal(id, "approve", `{}`)
	wantCode(t, "signal after close", err, connect.CodeFailedPrecondition, "only accepted while it runs")
}

func (e *env) signalCtx(c context.Context, id, name, payload string) error {
	_, err := e.wf.SignalWorkflow(c, connect.NewRequest(&weftv1.SignalWorkflowRequest{
		WorkflowId: id, Name: name, Payload: jsonValue(e.t, payload)}))
	return err
}
