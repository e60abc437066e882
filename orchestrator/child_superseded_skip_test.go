package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child whose step a failing parallel canceled is canceled though the
// redrive, deciding before that follow-up ran, does not start the step
// again but skips it (its condition no longer holds): the step then is
// SKIPPED, not CANCELED, and still names the first child.
func TestAChildCanceledBeforeARedriveIsCanceledThoughItsStepIsSkipped(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - id: p\n    parallel:\n      branches:\n        a:\n          - { id: k, if: '!has(vars.again)', workflow: kid }\n        b:\n          - { id: mark, set: { again: 'true' } }\n          - { id: boom, task: work }\n")
	ext, results := r.feeds()
	sh := r.shard()
	const wf = "mum-skip"
	kid1 := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent starts its child and schedules boom
	if _, err := r.store.LastSeq(r.ctx, kid1); err != nil {
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
	if n, _ := r.count(kid1, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 0 {
		t.Fatalf("the child was asked to cancel: the test needs that follow-up cut short")
	}
	if _, err := r.store.AppendExternalAtEnd(r.ctx, wf, 0, "retry/"+wf, retryEvent()); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithoutCancel(r.ctx)
	sh = r.shard()
	sh.handle(ctx, next(t, ext)) // the redrive: k is skipped
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepSkipped != nil && ev.StepSkipped.Path == "k" }); n != 1 {
		t.Fatalf("the redrive skipped k %d times; want 1", n)
	}
	sh.handle(ctx, next(t, results)) // the input cut short comes again, on the redriven parent
	if n, _ := r.count(kid1, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 1 {
		t.Fatalf("the first child got %d CancelRequested; want 1 (its step was canceled before the redrive)", n)
	}
}
