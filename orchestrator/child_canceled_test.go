package orchestrator

import (
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child canceled by itself (its own cancel, not its parent's) tells its
// parent, as a completed or failed child does: the parent's step fails
// with error type canceled (a catch can handle it). Untold, the parent
// waits on its step for ever.
func TestACanceledChildTellsItsParent(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: charge, task: work }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "mum-c"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent starts the child
	sh.handle(r.ctx, next(t, ext)) // the child schedules its task
	if _, err := r.store.AppendExternalAtEnd(r.ctx, kid, 0, "cancel/"+kid, events.Event{Type: events.TypeCancelRequested,
		Time: r.history(kid)[0].Record.Events[0].Time, CancelRequested: &events.CancelRequested{Reason: "by hand"}}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, ext)) // the child is canceled
	d := next(t, results)
	if d.WorkflowID != wf || d.Result == nil || d.Result.Outcome != events.OutcomeFailed || d.Result.Error == nil ||
		d.Result.Error.Type != workflow.ErrTypeCanceled {
		t.Fatalf("got %+v; want the parent told its child was canceled", d.Result)
	}
	sh.handle(r.ctx, d)
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("the parent recorded %d WorkflowFailed; want its step, and it, failed", n)
	}
}
