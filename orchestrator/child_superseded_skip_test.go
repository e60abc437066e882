package orchestrator

import (
	"context"
	"testing"

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
	failCuttingTheCancelShort(t, r, sh, wf, kid1, ext, results)
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
