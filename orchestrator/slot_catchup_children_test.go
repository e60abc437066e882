package orchestrator

import (
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// An orchestrator whose cached state of a queued run is out of date reads
// the run afresh before it follows it up, and that read may bring records
// another orchestrator appended and never followed up (it died after
// recording the run's cancel): the run's child is canceled in the same
// pass that gives the slot back and drops the closed state, not left to
// the dead orchestrator's input coming back (which a run deleted by its
// retention meanwhile never does).
func TestACatchUpBeforeASlotFollowsUpTheChildrenToo(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("qp", "name: qp\nconcurrency: { limit: 1 }\nsteps:\n  - { id: k, workflow: kid }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, _ := r.feeds()
	const wf = "qp1"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "qp")
	start := next(t, ext)
	a.handle(r.ctx, start) // queued, takes the free slot, admitted; a caches it queued
	if e := a.cache[wf]; e == nil || !e.st.Queued || e.st.Admitted {
		t.Fatalf("a's cached state: %+v", e)
	}
	b.handle(r.ctx, next(t, ext)) // the admission: the child recorded and started
	if d := next(t, ext); d.WorkflowID != kid {
		t.Fatalf("delivered %s, want the child's start", d.WorkflowID)
	} else {
		b.handle(r.ctx, d)
	}
	r.requestCancel(wf, "test")
	revive := dieAfterCommitsOf(t, wf)
	b.handle(r.ctx, next(t, ext)) // the cancel: recorded, then b dies
	revive()
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowCanceled }); n != 1 {
		t.Fatalf("the parent was canceled %d times", n)
	}
	a.handle(r.ctx, start) // the start again (its ack was late or lost)
	if s, err := r.store.ReadSlots(r.ctx, "qp", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("the canceled run's slot: %+v, %v", s, err)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.Type == events.TypeCancelRequested }); n != 1 {
		t.Fatalf("the canceled run's child was asked to cancel %d times, want once", n)
	}
}
