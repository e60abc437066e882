package doctor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A deletion that came due waits in the timers stream for an orchestrator
// to take it, as a fired timer does. With none taking them (all down, or
// none of a version that deletes), a closed run past its retention is
// kept for good, a deletion cut short halfway stays so (its history there
// and no longer listed, or its history gone and its entry listing a run
// that does not exist), and the check called each of them fine: a
// deletion that fired counted as done, and a run whose deletion fired as
// one being deleted.
func TestADeletionNoOrchestratorTakesIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"kept": "name: kept\nretention: 1h\nsteps:\n  - { id: a, task: work }\n"})
	r.t0 = time.Now().UTC().Add(-3 * time.Hour)
	closed := func(id string, more ...events.Event) uint64 {
		t.Helper()
		evs := append([]events.Event{r.start(id, "kept", nil), {Type: events.TypeWorkflowCanceled, Time: r.t0,
			WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}}}, more...)
		seq, err := r.store.Append(r.ctx, id, 0, evs...)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	// due: closed past its retention, listed; its deletion fired.
	r.index("due", "kept", "CANCELED", closed("due"))
	// begun: its deletion began (WorkflowExpired) and its entry went; its
	// history is there.
	closed("begun", events.Event{Type: events.TypeWorkflowExpired, Time: r.t0.Add(time.Hour),
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}})
	// purged: its history went, its entry is there.
	r.index("purged", "kept", "CANCELED", closed("purged"))
	hist, err := r.js.Stream(r.ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := hist.Purge(r.ctx, jetstream.WithPurgeSubject("weft.h.purged.>")); err != nil {
		t.Fatal(err)
	}
	ids := []string{"due", "begun", "purged"}
	for _, id := range ids {
		if err := r.store.ScheduleDeletion(r.ctx, id, r.t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if state, err := r.store.Deletion(r.ctx, id); err != nil {
				t.Fatal(err)
			} else if state == eventstore.TimerFired {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the deletion of %s never fired", id)
			}
		}
	}
	rep := r.checkAnHourLater()
	for _, id := range ids {
		if f := findingsOf(rep, id); !strings.Contains(f, "no orchestrator takes it") || !strings.Contains(f, eventstore.RetentionConsumer) {
			t.Errorf("%s, its deletion due and taken by no orchestrator: findings %q; want it reported, naming %s",
				id, f, eventstore.RetentionConsumer)
		}
	}
	if rep.OK() {
		t.Errorf("the check is OK: %s", rep.Summary())
	}

	// An orchestrator asks for deletions: each is on its way.
	f, err := r.store.Feed(r.ctx, eventstore.SourceRetention, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	go func() { // it holds what it takes: each deletion stays under way
		for {
			if _, err := f.Next(); err != nil {
				return
			}
		}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		tk, err := r.store.OrchestratorTakers(r.ctx, eventstore.SourceRetention)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Pulls > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the feed never asked for deletions")
		}
	}
	if rep := r.checkAnHourLater(); !rep.OK() {
		t.Errorf("with an orchestrator taking deletions: %s", stuckIDs(rep))
	}
}
