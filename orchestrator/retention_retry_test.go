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

// A failed run past its retention is retried (RetryWorkflow's
// conditional append) just after retention read it closed and due, before
// it deletes it. The retry was answered as applied, so the run must go on:
// either the deletion sees the retry and leaves the run alone, or the
// retry is refused. Before, the deletion went ahead and the retried run
// was lost.
func TestARetryJustBeforeTheDeletionIsNotLost(t *testing.T) {
	const wf = "brief-1"
	r, sh, ext := failedPastRetention(t, wf, "retention: 1h\n", 0)

	// Retention reads the run (failed, due); then the retry is appended,
	// conditional on the history the retry's own read found.
	retried := false
	sh.o.expireRead = func(string) {
		sh.o.expireRead = nil
		retried = retry(t, r, wf) == nil
	}
	err := sh.expire(r.ctx, wf)
	if !retried {
		t.Fatal("the retry was refused; this test needs it appended between retention's read and its deletion")
	}
	if err != nil && !errors.As(err, new(errNotDue)) {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); err != nil {
		t.Fatalf("the run retried just before its deletion was deleted: the retry, answered as applied, is lost (%v)", err)
	}
	// The retry is handled: the run runs again.
	sh.handle(r.ctx, next(t, ext))
	l, err := runs.ReadFromSnapshot(r.ctx, r.store, wf)
	if err != nil {
		t.Fatal(err)
	}
	st := l.State
	if err := runs.FoldMessages(st, l.Msgs); err != nil {
		t.Fatal(err)
	}
	if st.Status != workflow.StatusRunning {
		t.Fatalf("after its retry the run is %s, want running", st.Status)
	}
}

// A deletion cut short after its WorkflowExpired record (the orchestrator
// stopped) leaves a history that takes no retry read before the record
// (the append conflicts), nor after it (the fold ignores one, and the API
// refuses it); the next delivery of the deletion finishes it.
func TestADeletionCutShortAfterItsExpiryIsFinished(t *testing.T) {
	const wf = "brief-2"
	r, sh, _ := failedPastRetention(t, wf, "retention: 1h\n", 0)
	last := r.beginDeletion(wf)
	if _, err := r.store.AppendExternal(r.ctx, wf, &last, "retry/late/"+wf, retryEvent()); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("a retry read before the expiry was appended after it: %v, want a conflict", err)
	}
	l, err := runs.ReadFromSnapshot(r.ctx, r.store, wf)
	if err != nil {
		t.Fatal(err)
	}
	if err := runs.FoldMessages(l.State, l.Msgs); err != nil || !l.State.Expired || l.State.Status != workflow.StatusFailed {
		t.Fatalf("the run read after its expiry: expired %v, %s, %v; want expired and failed", l.State.Expired, l.State.Status, err)
	}
	if err := sh.expire(r.ctx, wf); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the run past its retention is kept: %v", err)
	}
}

// failedPastRetention fails a run wf of a definition of one task step
// with top-level fields extra ("retention: 1h\n", say), on a shard whose
// orchestrator keeps closed runs for retention, and sets that shard's clock
// two hours on: the run is due for deletion. ext is the shard's feed of
// outside records.
func failedPastRetention(t *testing.T, wf, extra string, retention time.Duration) (*rig, *shard, *eventstore.Feed) {
	t.Helper()
	r := newRig(t)
	r.putDef("brief", "name: brief\n"+extra+"steps:\n  - { id: a, task: work }\n")
	sh := r.shard()
	sh.o.cfg.Retention = retention
	ext, results := r.feeds()
	failRun(t, r, sh, ext, results, wf, "brief")
	sh.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	return r, sh, ext
}

// beginDeletion appends WorkflowExpired to wf's history, as a deletion
// cut short after it leaves it, and returns the sequence it followed.
func (r *rig) beginDeletion(wf string) uint64 {
	r.t.Helper()
	last, err := r.store.LastSeq(r.ctx, wf)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.Append(r.ctx, wf, last, events.Event{Type: events.TypeWorkflowExpired, Time: time.Now().UTC(),
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}}); err != nil {
		r.t.Fatal(err)
	}
	return last
}

// failRun starts wf of def (one task step, a) and fails its step.
func failRun(t *testing.T, r *rig, sh *shard, ext, results *eventstore.Feed, wf, def string) {
	t.Helper()
	r.start(wf, def)
	sh.handle(r.ctx, next(t, ext))
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	r.failStep(wf, cmd, 1)
	sh.handle(r.ctx, next(t, results))
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("%s did not fail", wf)
	}
}

// retry appends a redrive of wf as RetryWorkflow does: conditional on the
// history's last sequence as read.
func retry(t *testing.T, r *rig, wf string) error {
	t.Helper()
	last, err := r.store.LastSeq(r.ctx, wf)
	if err != nil {
		return err
	}
	_, err = r.store.AppendExternal(r.ctx, wf, &last, "retry/"+wf, retryEvent())
	return err
}

func retryEvent() events.Event {
	return events.Event{Type: events.TypeWorkflowRetried, Time: time.Now().UTC(), WorkflowRetried: &events.WorkflowRetried{}}
}

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
	const wf = "plain-1"
	r, sh, _ := failedPastRetention(t, wf, "", time.Hour)

	// The first orchestrator appended WorkflowExpired, then stopped before
	// it purged anything.
	r.beginDeletion(wf)

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
