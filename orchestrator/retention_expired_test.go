package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A deletion that appended its WorkflowExpired record and was then cut
// short (its orchestrator stopped, or a purge failed) is finished by the
// next delivery, whatever that orchestrator's own judgement of the run's
// retention: the record already refuses every retry of the run ("past
// its retention and being deleted"), so a run kept after it is kept for
// good and can never run again. Here the run's retention was the
// servers' --retention, and the orchestrator the deletion comes back to
// runs without one (the flag was dropped in a rolling restart): before,
// it judged the run not to be deleted, acked the delivery, and the run
// stayed, expired, for ever.
func TestADeletionBegunIsFinishedByAnOrchestratorWithoutTheRetention(t *testing.T) {
	r := newRig(t)
	r.putDef("plain", "name: plain\nsteps:\n  - { id: a, task: work }\n")
	sh := r.shard()
	sh.o.cfg.Retention = time.Hour
	ext, results := r.feeds()
	const wf = "plain-1"
	failRun(t, r, sh, ext, results, wf, "plain")
	sh.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }

	// The first orchestrator appended WorkflowExpired, then stopped before
	// it purged anything.
	last, err := r.store.LastSeq(r.ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(r.ctx, wf, last, events.Event{Type: events.TypeWorkflowExpired, Time: time.Now().UTC(),
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}}); err != nil {
		t.Fatal(err)
	}

	// The delivery comes back to an orchestrator run without --retention.
	sh.o.cfg.Retention = 0
	if err := sh.expire(r.ctx, wf); err != nil && !errors.As(err, new(errNotDue)) {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		l, rerr := runs.ReadFromSnapshot(r.ctx, r.store, wf)
		if rerr != nil {
			t.Fatal(rerr)
		}
		_ = runs.FoldMessages(l.State, l.Msgs)
		t.Fatalf("a run whose deletion began is kept (%v): it is %s and expired %v, so no retry is ever taken, and no deletion comes again",
			err, l.State.Status, l.State.Expired)
	}
}

// A failed child past its retention whose parent's run is still kept is
// kept too, and is not marked as being deleted: retention looks at the
// parent before it appends WorkflowExpired, so the child can still be
// retried (its deletion comes again a retention later).
func TestAChildKeptForItsParentIsNotMarkedExpired(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nretention: 1h\nsteps:\n  - { id: charge, task: work }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "mum-3"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent starts its child
	sh.handle(r.ctx, next(t, ext)) // the child schedules its task
	_, cmd := r.count(kid, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: kid, Path: "charge", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: "boom", Message: "no"}, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results)) // the child fails
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatal("the child did not fail")
	}
	sh.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := sh.expire(r.ctx, kid); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowExpired }); n != 0 {
		t.Fatalf("a child kept for its parent has %d WorkflowExpired records: it is kept, yet refuses every retry", n)
	}
	if err := retry(t, r, kid); err != nil {
		t.Fatalf("the retry of a child kept for its parent: %v", err)
	}
}
