package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child run is kept past its retention while its parent's run is: but
// only while that run is, not while any run of the parent's id is. Once
// the parent is deleted (retention) and a run is started again under its
// id, the old child is the old parent's, and goes at its retention; it was
// kept for as long as the new run (and any after it) lived, and its id
// taken from the new run's own child step.
func TestAChildOfADeletedParentGoesThoughItsParentsIdIsTakenAgain(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nretention: 1h\nsteps:\n  - { id: charge, task: work }\n")
	r.putDef("mum", "name: mum\nretention: 1h\nsteps:\n  - { id: k, workflow: kid }\n")
	r.putDef("waits", "name: waits\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "mum-2"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent starts its child
	sh.handle(r.ctx, next(t, ext)) // the child schedules its task
	_, cmd := r.count(kid, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: kid, Path: "charge", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results)) // the child completes
	sh.handle(r.ctx, next(t, results)) // so does the parent
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCompleted != nil }); n != 1 {
		t.Fatalf("the parent did not complete")
	}
	sh.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := sh.expire(r.ctx, kid); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the child is deleted while its parent's run is kept: %v", err)
	}
	// The parent goes at its retention; a run is started again under its id.
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/again", startEvent(wf, "waits")); err != nil {
		t.Fatal(err)
	}
	// The child's retention runs out again.
	if err := sh.expire(r.ctx, kid); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, kid); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the deleted parent's child is kept past its retention (%v): a later run of the parent's id keeps it", err)
	}
}
