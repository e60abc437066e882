package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
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

// waitStep waits until the step at path of run id has status want.
func (e *env) waitStep(id, path string, want weftv1.StepStatus) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, fmt.Sprintf("step %s of %s to be %v", path, id, want), func() bool {
		return stepStatus(e.get(id), path) == want
	})
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
	e.healthy()
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
	e.waitStep(id, "first", weftv1.StepStatus_STEP_STATUS_RUNNING)
	// Another orchestrator completes the first step and records the child's
	// start, then dies before starting it.
	store := e.node.Store
	c := ctx(t)
	now := time.Now().UTC()
	e.recordChildStart(id, "kid", map[string]any{"n": int64(21)})
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
	// (A direct start is listed at once, before its first step's result:
	// the run is at rest once it waits for the signal.)
	e.waitStep(id, "approve", weftv1.StepStatus_STEP_STATUS_WAITING)
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
	e.healthy()
}

// Defect 6: a signal or cancel that loses the race with the run's close is
// refused with FailedPrecondition, never appended after the close and
// answered OK.
func TestDefect6_SignalAfterCloseRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	e.waitStep(id, "approve", weftv1.StepStatus_STEP_STATUS_WAITING)
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

// recordChildStart appends to run id, as another orchestrator would, the
// completion of its step "first" and the start of its step "kid"'s child
// workflow of definition def, without starting the child; it returns the
// child's id.
func (e *env) recordChildStart(id, def string, input any) string {
	e.t.Helper()
	c := ctx(e.t)
	last, err := e.node.Store.LastSeq(c, id)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UTC()
	childID := workflow.ChildID(id, "kid", 1)
	if _, err := e.node.Store.Append(c, id, last,
		events.Event{Type: events.TypeStepCompleted, Time: now, StepCompleted: &events.StepCompleted{Path: "first", Attempt: 1, Output: "done"}},
		events.Event{Type: events.TypeChildStarted, Time: now, ChildStarted: &events.ChildStarted{Path: "kid", Gen: 1, WorkflowID: childID,
			Definition: def, Input: input}}); err != nil {
		e.t.Fatal(err)
	}
	return childID
}

// waitResultsTaken waits until the orchestrators have settled every
// result in the results stream.
func (e *env) waitResultsTaken() {
	e.t.Helper()
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 20*time.Second, "the results to be taken", func() bool {
		s, err := js.Stream(ctx(e.t), eventstore.ResultsStream)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx(e.t))
		return err == nil && info.State.Msgs == 0
	})
}

func (e *env) signalCtx(c context.Context, id, name, payload string) error {
	_, err := e.wf.SignalWorkflow(c, connect.NewRequest(&weftv1.SignalWorkflowRequest{
		WorkflowId: id, Name: name, Payload: jsonValue(e.t, payload)}))
	return err
}

// Defect 9: a large last output is recorded in records that fit (never
// failing the run), and an output too large to record fails its step with
// invalid_output, which a catch handles.
func TestDefect9_LargeOutputFailsOnlyItsStep(t *testing.T) {
	var size atomic.Int64
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"big": func(ctx context.Context, task *executor.Task) (any, error) {
			return strings.Repeat("x", int(size.Load())), nil
		},
	}})
	e.putDef(`
name: big
steps:
  - id: fetch
    task: big
    catch:
      - errors: [invalid_output]
        do: [ { id: fallback, task: echo, input: "too big" } ]
`)
	size.Store(600 << 10)
	id := e.start("big", "", ``)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || len(w.Output.GetStringValue()) != 600<<10 {
		t.Fatalf("600 KiB output: status %v error %v", w.Status, w.Error)
	}
	msgs, err := e.node.Store.Read(ctx(t), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		big := 0
		for _, ev := range m.Record.Events {
			if ev.StepCompleted != nil && ev.StepCompleted.Output != nil || ev.WorkflowCompleted != nil {
				big++
			}
		}
		if big > 1 {
			t.Fatalf("record %d carries the output twice", m.Seq)
		}
	}
	// An output that travels as a result but cannot be recorded.
	size.Store(int64(e.node.NC.MaxPayload()) - 3000)
	id = e.start("big", "", ``)
	w = e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"too big"` {
		t.Fatalf("unrecordable output: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	e.healthy()
}

// Defect 6: a child recorded as started by an orchestrator that has not
// started it yet, when its parent is canceled, ends canceled: a late start
// can never run it uncanceled.
func TestDefect6_ChildOfCanceledParentNeverRunsUncanceled(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: kid
steps:
  - { id: gate, wait: { signal: go } }
`)
	e.putDef(`
name: mum
steps:
  - { id: first, task: manual }
  - { id: kid, workflow: kid }
`)
	id := e.start("mum", "", ``)
	e.waitStep(id, "first", weftv1.StepStatus_STEP_STATUS_RUNNING)
	// Another orchestrator records the child's start and is slow to start it.
	store := e.node.Store
	c := ctx(t)
	now := time.Now().UTC()
	childID := e.recordChildStart(id, "kid", nil)
	// The orchestrator that has the parent cached folds that record on an
	// input that no longer applies, before the cancel comes.
	if err := store.PublishResult(c, events.Result{WorkflowID: id, Path: "first", Gen: 2, Attempt: 1,
		Outcome: events.OutcomeCompleted, Time: now}); err != nil {
		t.Fatal(err)
	}
	e.waitResultsTaken()
	if _, err := e.wf.CancelWorkflow(c, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("parent: %v", w.Status)
	}
	eventually(t, 20*time.Second, "the child to exist", func() bool {
		_, err := e.wf.GetWorkflow(c, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: childID}))
		return err == nil
	})
	// The slow orchestrator's start now finds the child there.
	var zero uint64
	_, err := store.AppendExternal(c, childID, &zero, "start/"+childID+"/parent", events.Event{Type: events.TypeWorkflowStarted, Time: now,
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: childID, Definition: "kid", Revision: 1, RequestID: "parent",
			Parent: &events.ParentRef{WorkflowID: id, Path: "kid", Gen: 1}}})
	if err == nil {
		t.Fatal("a late start of the child was appended")
	}
	if w := e.waitClosed(childID, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("child: %v", w.Status)
	}
}

// Defect 6: a timer delivered with a due time already past, for a timer
// the workflow expects later, waits for the workflow's due time instead of
// coming back at once, again and again.
func TestDefect6_PastDueTimerDoesNotSpin(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	e.waitStep(id, "approve", weftv1.StepStatus_STEP_STATUS_WAITING)
	timerID := workflow.TimerID("approve", 1)
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		t.Fatal(err)
	}
	delivered := func() uint64 {
		c, err := js.Consumer(ctx(t), eventstore.TimersStream, eventstore.TimersConsumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		return info.Delivered.Consumer
	}
	before := delivered()
	if err := e.node.Store.ScheduleTimer(ctx(t), events.TimerDue{WorkflowID: id, TimerID: timerID, Path: "approve",
		Due: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the timer to be delivered", func() bool { return delivered() > before })
	// Watch the deliveries for three seconds: one, or a few, not a loop.
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := delivered() - before; n > 5 {
			t.Fatalf("the timer was delivered %d times", n)
		}
	}
	if s := stepStatus(e.get(id), "approve"); s != weftv1.StepStatus_STEP_STATUS_WAITING {
		t.Fatalf("the wait is %v", s)
	}
}

// Defect 6: an executor whose clock runs ahead does not move the
// workflow's time: what it reports is recorded at the orchestrator's time,
// so workflow.now and the timers after it stay true.
func TestDefect6_ClockAheadDoesNotMoveWorkflowTime(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: skew
steps:
  - { id: first, task: manual }
  - { id: nap, sleep: 1s }
  - { id: now, task: echo, input: "${ workflow.now }" }
`)
	id := e.start("skew", "", ``)
	e.waitStep(id, "first", weftv1.StepStatus_STEP_STATUS_RUNNING)
	ahead := time.Now().Add(time.Hour).UTC()
	if err := e.node.Store.PublishResult(ctx(t), events.Result{WorkflowID: id, Path: "first", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: ahead}); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	now, err := time.Parse(time.RFC3339Nano, w.Output.GetStringValue())
	if err != nil {
		t.Fatalf("output %s: %v", toJSON(w.Output), err)
	}
	if now.After(time.Now().Add(time.Minute)) {
		t.Fatalf("workflow.now is %s, an hour ahead", now)
	}
}

// A canceled parent whose recorded child can never start (its definition
// is missing) leaves it alone: no failure result bounces back and forth.
func TestCanceledParentWithUnstartableChildSettles(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: mum
steps:
  - { id: first, task: manual }
  - { id: kid, workflow: ghost }
`)
	id := e.start("mum", "", ``)
	e.waitStep(id, "first", weftv1.StepStatus_STEP_STATUS_RUNNING)
	c := ctx(t)
	e.recordChildStart(id, "ghost", nil)
	if _, err := e.wf.CancelWorkflow(c, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("parent: %v", w.Status)
	}
	e.waitResultsTaken()
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		t.Fatal(err)
	}
	published := func() uint64 {
		s, err := js.Stream(c, eventstore.ResultsStream)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(c)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq
	}
	before := published()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if n := published() - before; n > 2 {
			t.Fatalf("%d more results were published for a closed parent", n)
		}
	}
}

// Defect 9: a run failed because it cannot go on (its history limit) while
// applying a task's result still records that result, so a redrive finds
// nothing RUNNING without something in flight: it fails again on its
// limit, or goes on, but never hangs.
func TestDefect9_RedriveAfterCannotGoOnDoesNotHang(t *testing.T) {
	e := newEnv(t, envOpts{maxHistory: 20})
	e.putDef(endlessLoopDef)
	id := e.start("loop", "", ``)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "limit" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	// The result that met the limit is recorded in the record after the
	// close: a read between the two sees its step RUNNING for a moment.
	eventually(t, 20*time.Second, "no echo step RUNNING in the failed run (its result recorded, not dropped)", func() bool {
		for _, s := range e.get(id).Steps {
			if s.Status == weftv1.StepStatus_STEP_STATUS_RUNNING && s.Task == "echo" {
				return false
			}
		}
		return true
	})
	e.redrive(id, "")
	eventually(t, 20*time.Second, "the redriven run to close", func() bool {
		h := e.history(id)
		return h[len(h)-1].Type == "WorkflowFailed" && len(h) > 0 && func() bool {
			for _, ev := range h {
				if ev.Type == "WorkflowRetried" {
					return true
				}
			}
			return false
		}()
	})
	e.healthy()
}

// Defect 6: an input that parks a run joins its listing write however it
// came: when the write cannot land (the index is unavailable) and the
// executor, tired of waiting for the direct answer, sends the same result
// through the results stream, that copy is not acked on the strength of
// the first one's hold; after the orchestrator stops, it comes back to
// the next one, which lists the run.
func TestDefect6_ParkingInputNotAckedOnAnotherHold(t *testing.T) {
	e := newEnv(t, envOpts{replyWait: 300 * time.Millisecond})
	e.putDef(approvalDef("72h"))
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	// The index goes away behind Weft's back: no entry can be written.
	if err := js.DeleteStream(c, "KV_"+eventstore.WorkflowsBucket); err != nil {
		t.Fatal(err)
	}
	id := e.start("approval", "", `{"amount": 5}`)
	e.waitStep(id, "approve", weftv1.StepStatus_STEP_STATUS_WAITING)
	// The executor gives up on the direct answer and uses the results
	// stream; an orchestrator takes that copy.
	eventually(t, 20*time.Second, "the result's copy to be handed to an orchestrator", func() bool {
		s, err := js.Stream(c, eventstore.ResultsStream)
		if err != nil {
			return false
		}
		info, err := s.Info(c)
		if err != nil || info.State.LastSeq == 0 {
			return false
		}
		cons, err := js.Consumer(c, eventstore.ResultsStream, eventstore.ResultsConsumer)
		if err != nil {
			return false
		}
		ci, err := cons.Info(c)
		return err == nil && ci.Delivered.Stream >= info.State.LastSeq
	})
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stop); err != nil {
		t.Fatal(err)
	}
	// The next orchestrator (its store makes the index again) lists it.
	e.node = e.startNode(envOpts{replyWait: 300 * time.Millisecond}, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	eventually(t, 20*time.Second, "the parked run to be listed RUNNING", func() bool {
		return e.listedStatus(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
}
