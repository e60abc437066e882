package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child whose step a failing parallel canceled is canceled, however the
// parent's history goes on before that follow-up runs: here the
// orchestrator dies between recording the failure and canceling the
// child, and the parent is redriven before the input comes again, by an
// orchestrator that reads the parent afresh or one that catches up the
// state it cached before the failure. The redrive starts the step again
// under a new child id, so the step no longer names the first child; that
// child must still be canceled, or it runs on for ever, its outcome taken
// by no one.
func TestAChildCanceledBeforeARedriveIsCanceledThoughItsStepStartedAgain(t *testing.T) {
	for _, path := range []string{"read afresh", "caught up"} {
		t.Run(path, func(t *testing.T) {
			r := newRig(t)
			r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
			r.putDef("mum", "name: mum\nsteps:\n  - id: p\n    parallel:\n      branches:\n        a:\n          - { id: k, workflow: kid }\n        b:\n          - { id: boom, task: work }\n")
			ext, results := r.feeds()
			first := r.shard()
			const wf = "mum-sup"
			kid1, kid2 := workflow.ChildID(wf, "k", 1), workflow.ChildID(wf, "k", 2)
			r.start(wf, "mum")
			failCuttingTheCancelShort(t, r, first, wf, kid1, ext, results)
			ctx := context.WithoutCancel(r.ctx)
			sh := first // its state of the parent is from before the failure
			if path == "read afresh" {
				sh = r.shard()
			}
			sh.handle(ctx, next(t, ext)) // the redrive: k starts again under a new id
			if _, err := r.store.LastSeq(r.ctx, kid2); err != nil {
				t.Fatalf("the redriven step's child did not start: %v", err)
			}
			sh.handle(ctx, next(t, results)) // the input cut short comes again, on the redriven parent
			if n, _ := r.count(kid1, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 1 {
				t.Fatalf("the first child got %d CancelRequested; want 1 (its step was canceled before the redrive)", n)
			}
			if n, _ := r.count(kid2, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 0 {
				t.Fatalf("the redriven step's own child was asked to cancel")
			}
		})
	}
}

// failCuttingTheCancelShort runs the parent wf on sh until its task step
// boom fails the run and cancels its child step, whose child kid waits for
// a signal; the follow-up that would cancel kid is cut short as by a
// crash. Then a redrive of the parent is recorded, to be handled next.
func failCuttingTheCancelShort(t *testing.T, r *rig, sh *shard, wf, kid string, ext, results *eventstore.Feed) {
	t.Helper()
	sh.handle(r.ctx, next(t, ext)) // the parent starts its child and schedules boom
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the child did not start: %v", err)
	}
	sh.handle(r.ctx, next(t, ext)) // the child waits for its signal
	stepPath, gen, cmd := r.lastScheduled(wf)
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: stepPath, Gen: gen, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: "boom", Message: "no"}, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	testHookAfterCommit = func(string) error { return errors.New("the orchestrator died") }
	r.shard().handle(r.ctx, next(t, results)) // boom fails, k is canceled, the parent fails; the child is not told
	testHookAfterCommit = nil
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("the parent recorded %d WorkflowFailed; want 1", n)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 0 {
		t.Fatalf("the child was asked to cancel: the test needs that follow-up cut short")
	}
	if _, err := r.store.AppendExternalAtEnd(r.ctx, wf, 0, "retry/"+wf, retryEvent()); err != nil {
		t.Fatal(err)
	}
}
