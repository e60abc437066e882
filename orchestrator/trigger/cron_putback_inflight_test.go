package trigger

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// A tick in flight that found its cron trigger removed cancels its
// schedule; if the trigger is put back meanwhile, and another engine
// scheduled its tick before the cancel, the trigger is scheduled again
// at once, not left without ticks until the next reconcile (30 s later,
// or the next put).
func TestATickInFlightDoesNotCancelATriggerPutBack(t *testing.T) {
	src := "name: pulse\ntriggers:\n  - cron: \"0 9 * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	ctx, store, def := cronStore(t, src)
	key := def.Triggers[0].Key
	if _, _, err := store.PutDefinition(ctx, "pulse", src, "test", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "pulse", "name: pulse\nsteps:\n  - { id: a, task: echo }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	// Between a's look (removed) and its cancel: the trigger is put back,
	// and another engine, that has seen it, schedules its tick.
	testHookBeforeCancelCron = func(def, k string) {
		testHookBeforeCancelCron = nil
		rec, _, err := store.PutDefinition(ctx, "pulse", src, "test", time.Now())
		if err != nil {
			t.Error(err)
			return
		}
		other, err := New(store, Config{Logger: quiet})
		if err != nil {
			t.Error(err)
			return
		}
		other.reg.update(rec)
		if err := other.reconcile(ctx); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookBeforeCancelCron = nil })
	tick := time.Now().UTC().Truncate(time.Second)
	d := &eventstore.Delivery{Seq: 3, NumDelivered: 1, Subject: "weft.t.cf.pulse." + key,
		Tick: &eventstore.CronTick{V: 1, Definition: "pulse", Key: key, Tick: tick}}
	if err := a.handleTick(ctx, d); err != nil {
		t.Fatal(err)
	}
	if testHookBeforeCancelCron != nil {
		t.Fatal("the tick's handler canceled nothing: the test no longer puts the trigger back between its look and its cancel")
	}
	pending, err := store.CronSchedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := pending["pulse."+key]; !ok {
		t.Error("the trigger put back has no tick scheduled: the tick in flight of its removed self canceled it")
	}
}
