package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A run whose deletion has begun (WorkflowExpired recorded; the
// orchestrator that took the deletion is purging it) is handed a late input
// (a failed run still records late results and timers, and every input is
// reconciled). reconcile schedules the run's deletion again, due at once
// (its close plus its retention passed): a second delivery of the same
// deletion, which another orchestrator takes while the first still
// purges. Two deletions of one run at once are what lets the second purge
// the timers, results, snapshot and listing entry of a run started under
// the id as soon as the first one finishes
// (eventstore.TestASecondDeletionOfARunLeavesARunStartedAgainUnderItsId).
func TestALateInputToARunBeingDeletedDoesNotScheduleItsDeletionAgain(t *testing.T) {
	const wf = "again-1"
	r := newRig(t)
	r.putDef("brief", "name: brief\nretention: 1h\nsteps:\n  - { id: a, task: work }\n")
	sh := r.shard()
	ext, results := r.feeds()
	failRun(t, r, sh, ext, results, wf, "brief")
	sh.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	// The deletion came due and was taken: its schedule fired, its
	// delivery is being handled; it recorded WorkflowExpired.
	timers := r.timersStream()
	for _, subj := range []string{"weft.t.rs." + wf, "weft.t.rf." + wf} {
		if err := timers.Purge(r.ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	r.beginDeletion(wf)
	if ok, err := r.store.DeletionScheduled(r.ctx, wf); err != nil || ok {
		t.Fatalf("set-up: deletion scheduled %v, %v", ok, err)
	}
	// A late result of the failed run (another attempt's, delivered late).
	r.failStep(wf, cmd, 2)
	sh.handle(r.ctx, next(t, results))
	ok, err := r.store.DeletionScheduled(r.ctx, wf)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatal(err)
	}
	if ok {
		t.Fatalf("a late input to run %s, whose deletion has begun, scheduled its deletion again (due at once): a second deletion runs beside the first", wf)
	}
}
