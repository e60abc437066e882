package doctor_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// A paused definition's runs wait, their commands held by the executors
// (given back with a delay at each delivery): not stuck, however long the
// pause lasts.
func TestAPausedDefinitionsHeldRunIsNotStuck(t *testing.T) {
	r := newRig(t, map[string]string{"w": taskDef})
	if err := r.store.EnsureTaskConsumer(r.ctx, "work"); err != nil {
		t.Fatal(err)
	}
	if err := r.store.PauseDefinition(r.ctx, "w", eventstore.Pause{Time: time.Now(), By: "test", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	r.index("held", "w", "RUNNING", r.decided(r.start("held", "w", nil)))
	for _, m := range r.fetch(eventstore.TaskConsumerName("work"), 1) {
		if err := m.NakWithDelay(5 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := doctor.Check(r.ctx, r.store, doctor.Options{Grace: time.Second, ExecutorGrace: time.Second, All: true,
		Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Paused != 1 {
		t.Errorf("a paused definition's held run: %s (paused %d): %s", rep.Summary(), rep.Paused, stuckIDs(rep))
	}
}
