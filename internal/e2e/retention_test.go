package e2e

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

const (
	briefDef = `
name: brief
retention: 2s
steps:
  - id: a
    task: echo
    input: "${ input }"
  - id: b
    task: echo
    input: "${ steps.a.output }"
`
	keptDef = `
name: kept
steps:
  - id: a
    task: echo
    input: "${ input }"
`
	// A parent that fails by its timeout while its child waits: a failed
	// workflow keeps its children running.
	briefParentDef = `
name: brief-parent
retention: 2s
timeout: 1s
steps:
  - id: child
    workflow: waiter
`
	waiterDef = `
name: waiter
steps:
  - id: w
    wait: { signal: go }
`
)

// gone reports whether GetWorkflow says id is not found.
func (e *env) gone(id string) bool {
	e.t.Helper()
	_, err := e.wf.GetWorkflow(ctx(e.t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
	if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
		e.t.Fatalf("GetWorkflow %s: %v", id, err)
	}
	return connect.CodeOf(err) == connect.CodeNotFound
}

// stored counts the messages of id on its history and snapshot subjects
// and its pending timer schedules, and reports whether the index holds
// an entry for it.
func (e *env) stored(id string) (history, snaps, timers uint64, indexed bool) {
	e.t.Helper()
	c := ctx(e.t)
	js, err := jetstream.New(e.node.Store.Conn())
	if err != nil {
		e.t.Fatal(err)
	}
	count := func(stream, subject string) uint64 {
		st, err := js.Stream(c, stream)
		if err != nil {
			e.t.Fatal(err)
		}
		info, err := st.Info(c, jetstream.WithSubjectFilter(subject))
		if err != nil {
			e.t.Fatal(err)
		}
		var n uint64
		for _, k := range info.State.Subjects {
			n += k
		}
		return n
	}
	_, err = e.node.Store.GetSummary(c, id)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		e.t.Fatal(err)
	}
	return count(eventstore.HistoryStream, "weft.h."+id+".>"), count(eventstore.SnapshotStream, "weft.snap."+id+".>"),
		count(eventstore.TimersStream, "weft.t.s."+id+".>"), err == nil
}

// waitDeleted polls until id is gone from the API, the listing and the
// streams, and checks that it did not go before closed+keep.
func (e *env) waitDeleted(id string, closed time.Time, keep time.Duration) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, id+" deleted", func() bool {
		if !e.gone(id) {
			return false
		}
		if now := time.Now(); now.Before(closed.Add(keep)) {
			e.t.Fatalf("%s deleted at %s, before its close %s plus its retention %s", id, now, closed, keep)
		}
		return true
	})
	eventually(e.t, 10*time.Second, id+" unlisted", func() bool { return e.listed(id) == 0 })
	if h, s, tm, ix := e.stored(id); h != 0 || s != 0 || tm != 0 || ix {
		e.t.Fatalf("%s deleted but still stored: %d history records, %d snapshot parts, %d timers, indexed %v", id, h, s, tm, ix)
	}
}

func TestRetentionDeletesClosedRuns(t *testing.T) {
	e := newEnv(t, envOpts{snapshotEvery: 2})
	for _, d := range []string{briefDef, keptDef, waiterDef, briefParentDef} {
		e.putDef(d)
	}
	var closed []*weftv1.Workflow
	for _, id := range []string{"brief-1", "brief-2", "brief-3"} {
		e.start("brief", id, `{"n": 1}`)
	}
	e.start("kept", "kept-1", `"x"`)
	e.start("brief-parent", "parent-1", "")
	for _, id := range []string{"brief-1", "brief-2", "brief-3"} {
		w := e.waitClosed(id, 10*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("%s: %v", id, w)
		}
		closed = append(closed, w)
	}
	if _, snaps, _, _ := e.stored("brief-1"); snaps == 0 && !e.gone("brief-1") {
		t.Fatalf("brief-1 has no snapshot to delete")
	}
	e.waitClosed("kept-1", 10*time.Second)
	parent := e.waitClosed("parent-1", 10*time.Second)
	child := e.childOf("parent-1", "child")
	e.waitStep(child, "w", weftv1.StepStatus_STEP_STATUS_WAITING)

	for _, w := range append(closed, parent) {
		e.waitDeleted(w.Id, w.ClosedTime.AsTime(), 2*time.Second)
	}
	// Deleting the parent left its running child alone, and a run of a
	// definition without retention stays.
	if w := e.get(child); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("child of a deleted parent: %v", w)
	}
	if err := e.signal(child, "go", `{}`); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(child, 10*time.Second)
	if e.gone("kept-1") || e.listed("kept-1") == 0 {
		t.Fatal("kept-1, whose definition has no retention, was deleted")
	}
	if h, _, _, ix := e.stored("kept-1"); h == 0 || !ix {
		t.Fatalf("kept-1: %d history records, indexed %v", h, ix)
	}
	// The same id starts a new run once the old one is gone.
	e.start("kept", "brief-1", `"again"`)
	if w := e.waitClosed("brief-1", 10*time.Second); w.Definition != "kept" {
		t.Fatalf("brief-1 started again: %v", w)
	}
}

// TestRetentionAcrossRestart stops Weft (and NATS) after runs closed and
// before their retention ran out: the restarted Weft deletes them when it
// does and never before, keeps a run that is not due, and keeps a run
// retried before its deadline until it closes again and that close's
// retention runs out.
func TestRetentionAcrossRestart(t *testing.T) {
	var gateCalls atomic.Int32
	o := envOpts{retention: time.Hour, handlers: map[string]executor.Handler{
		"gate": func(ctx context.Context, task *executor.Task) (any, error) {
			if gateCalls.Add(1) == 1 {
				return nil, executor.NonRetryable(errors.New("closed for now"))
			}
			return "open", nil
		},
	}}
	e := newEnv(t, o)
	const keep = 4 * time.Second
	e.putDef(`
name: soon
retention: 4s
steps: [{ id: a, task: echo, input: "${ input }" }]
`)
	e.putDef(`
name: gated
retention: 4s
steps:
  - id: g
    task: gate
  - id: w
    wait: { signal: go }
`)
	// No retention in the definition: the server's (an hour) applies.
	e.putDef(keptDef)
	e.start("soon", "soon-1", `1`)
	e.start("soon", "soon-2", `2`)
	e.start("kept", "later-1", `3`)
	e.start("gated", "gated-1", "")
	var soon []*weftv1.Workflow
	for _, id := range []string{"soon-1", "soon-2"} {
		soon = append(soon, e.waitClosed(id, 10*time.Second))
	}
	e.waitClosed("later-1", 10*time.Second)
	failed := e.waitClosed("gated-1", 10*time.Second)
	if failed.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("gated-1: %v", failed)
	}
	// Retried before its deadline: it runs again, waiting for a signal.
	e.redrive("gated-1", "")
	e.waitStep("gated-1", "w", weftv1.StepStatus_STEP_STATUS_WAITING)

	e.restart(o)
	for _, w := range soon {
		if time.Now().Before(w.ClosedTime.AsTime().Add(keep)) && e.gone(w.Id) {
			t.Fatalf("%s deleted before its deadline", w.Id)
		}
	}
	for _, w := range soon {
		e.waitDeleted(w.Id, w.ClosedTime.AsTime(), keep)
	}
	// Past the first close's deadline (and then some): the retried run
	// and the run kept for an hour are still there.
	eventually(t, 20*time.Second, "gated-1's first deadline to pass", func() bool {
		return time.Now().After(failed.ClosedTime.AsTime().Add(keep + 2*time.Second))
	})
	for _, id := range []string{"gated-1", "later-1"} {
		if e.gone(id) || e.listed(id) == 0 {
			t.Fatalf("%s deleted", id)
		}
	}
	if err := e.signal("gated-1", "go", `{}`); err != nil {
		t.Fatal(err)
	}
	done := e.waitClosed("gated-1", 10*time.Second)
	if done.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("gated-1 after its retry: %v", done)
	}
	e.waitDeleted("gated-1", done.ClosedTime.AsTime(), keep)
	if e.gone("later-1") {
		t.Fatal("later-1, kept for an hour, was deleted")
	}
}

// TestRetentionFinishesADeletionCutShort purges a closed run's history by
// hand, as an orchestrator that died after that step of a deletion leaves
// it: the API stops serving the run at once, though it had it cached, and
// the deletion, when due, finds the history gone and removes the rest.
func TestRetentionFinishesADeletionCutShort(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(briefDef)
	e.start("brief", "cut-1", `1`)
	w := e.waitClosed("cut-1", 10*time.Second)
	e.get("cut-1") // cached by the API
	eventually(t, 10*time.Second, "cut-1 listed", func() bool { return e.listed("cut-1") != 0 })
	js, err := jetstream.New(e.node.Store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx(t), eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx(t), jetstream.WithPurgeSubject("weft.h.cut-1.>")); err != nil {
		t.Fatal(err)
	}
	if !e.gone("cut-1") {
		t.Fatal("the API served a run whose history is gone")
	}
	deadline := w.ClosedTime.AsTime().Add(2 * time.Second)
	eventually(t, 20*time.Second, "cut-1 unlisted", func() bool {
		if e.listed("cut-1") != 0 {
			return false
		}
		if time.Now().Before(deadline) {
			t.Fatalf("cut-1 unlisted at %s, before its deadline %s", time.Now(), deadline)
		}
		return true
	})
	if h, s, tm, ix := e.stored("cut-1"); h != 0 || s != 0 || tm != 0 || ix {
		t.Fatalf("cut-1 still stored: %d history records, %d snapshot parts, %d timers, indexed %v", h, s, tm, ix)
	}
}

// A child run past its retention is kept while its parent's history is:
// a parent read afresh starts a recorded child that has no history, so a
// deleted child would run again.
func TestRetentionKeepsAChildWhileItsParentIs(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: brief-child
retention: 1s
steps:
  - { id: a, task: echo, input: "${ input }" }
`)
	e.putDef(`
name: lasting-parent
steps:
  - { id: child, workflow: brief-child, input: { n: 1 } }
`)
	e.start("lasting-parent", "lasting-1", `{}`)
	e.waitClosed("lasting-1", 20*time.Second)
	child := e.childOf("lasting-1", "child")
	closed := e.waitClosed(child, 10*time.Second).ClosedTime.AsTime()
	// Well past the child's deadline (its first look comes at 1s), it is
	// still there.
	for time.Now().Before(closed.Add(4 * time.Second)) {
		if e.gone(child) {
			t.Fatalf("child %s deleted while its parent's history exists", child)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w := e.get(child); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("child %s: %v", child, w)
	}
}

// A start retried with its request id after the run it started closed and
// was deleted (retention) is answered as the start it was, never as "the
// definition was not found" (which the long chaos run saw, the client's
// first call having been cut off by a killed API process).
func TestStartRetriedAfterTheRunWasDeleted(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(briefDef)
	start := func() (*weftv1.StartWorkflowResponse, error) {
		resp, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: "brief", WorkflowId: "retried-start", RequestId: "req-1", Input: jsonValue(t, `1`)}))
		if err != nil {
			return nil, err
		}
		return resp.Msg, nil
	}
	if r, err := start(); err != nil || !r.Started {
		t.Fatalf("first start: %v %v", r, err)
	}
	eventually(t, 30*time.Second, "the run to be deleted", func() bool { return e.gone("retried-start") })
	r, err := start()
	if err != nil {
		t.Fatalf("the same start again, after the run was deleted: %v; want the start it was", err)
	}
	if r.Started || r.WorkflowId != "retried-start" {
		t.Fatalf("the same start again: %v; want the run's id, not started by this call", r)
	}
}

// A run deleted by retention and then started again under its id is read
// afresh by an API process that still holds the old run's state: the new
// history's records are never folded onto the old run's. It is listed as
// any run is.
func TestARunStartedAgainAfterItsDeletionIsReadAfresh(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(briefDef)
	other := e.startNode(envOpts{}, false, true)
	wfB, _ := newClients(other.APIURL)
	start := func(c weftv1connect.WorkflowServiceClient, req, input string) {
		t.Helper()
		resp, err := c.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: "brief", WorkflowId: "again", RequestId: req, Input: jsonValue(t, input)}))
		if err != nil || !resp.Msg.Started {
			t.Fatalf("start %s: %v %v", req, resp, err)
		}
	}
	start(e.wf, "first", `1`)
	if w, err := await(ctx(t), e.wf, "again", 20*time.Second); err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("first run: %v %v", w, err)
	}
	old := e.get("again") // held by this API process
	eventually(t, 30*time.Second, "the first run to be deleted", func() bool {
		_, err := wfB.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "again"}))
		return connect.CodeOf(err) == connect.CodeNotFound
	})
	start(wfB, "second", `2`)
	if w, err := await(ctx(t), wfB, "again", 20*time.Second); err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("second run: %v %v", w, err)
	}
	w := e.get("again")
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || w.Input.GetNumberValue() != 2 || w.HistoryLength != old.HistoryLength {
		t.Fatalf("the run started again reads %s with input %v and %d events; want COMPLETED, 2 and %d", w.Status, w.Input.AsInterface(), w.HistoryLength, old.HistoryLength)
	}
	// It is listed too: its entry is written over the one its
	// predecessor's deletion left.
	eventually(t, 20*time.Second, "the run started again to be listed", func() bool {
		return e.listedStatus("again") == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	})
}

// A parent started again under the id of a run deleted by retention, whose
// child (of a definition without retention) was kept, cannot have that
// child's id for its own: its child step fails, saying why, rather than
// taking the old child for its own and waiting for ever (or taking its
// result).
func TestAParentStartedAgainDoesNotTakeTheOldRunsChild(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(keptDef)
	e.putDef(`
name: reparent
retention: 2s
steps:
  - id: child
    workflow: kept
    input: "${ input }"
output: "${ steps.child.output }"
`)
	e.start("reparent", "reparented", `"first"`)
	w := e.waitClosed("reparented", 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || w.Output.GetStringValue() != "first" {
		t.Fatalf("first run: %s with output %v", w.Status, w.Output.AsInterface())
	}
	e.waitDeleted("reparented", w.ClosedTime.AsTime(), 2*time.Second)
	e.start("reparent", "reparented", `"second"`)
	w = e.waitClosed("reparented", 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || !strings.Contains(w.Error.GetMessage(), "earlier run of reparented") {
		t.Fatalf("second run: %s with error %v and output %v; want FAILED, its child's id taken by the earlier run's", w.Status, w.Error, w.Output.AsInterface())
	}
}

// A run started again under the id of a run deleted by retention within
// the results stream's dedup window: its first step's result, published to
// the results stream, is not taken for the deleted run's (the same step,
// scheduling, attempt and outcome), and the run completes.
func TestAResultOfARunStartedAgainIsNotADuplicate(t *testing.T) {
	e := newEnv(t, envOpts{replyWait: -1})
	e.putDef(`
name: brief-result
retention: 1s
steps:
  - id: a
    task: echo
    input: "${ input }"
`)
	e.start("brief-result", "result-again", `1`)
	w := e.waitClosed("result-again", 10*time.Second)
	e.waitDeleted("result-again", w.ClosedTime.AsTime(), time.Second)
	e.start("brief-result", "result-again", `2`)
	if w := e.waitClosed("result-again", 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || w.Output.GetNumberValue() != 2 {
		t.Fatalf("the run started again: %s with output %v; want COMPLETED with 2", w.Status, w.Output.AsInterface())
	}
}
