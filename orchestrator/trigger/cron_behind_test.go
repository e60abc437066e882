package trigger

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
)

// An engine whose registry has not seen a cron trigger's removal yet (its
// watch lags behind the put) fires no run for the trigger's tick and
// schedules no next one, in its tick handling or its reconcile: the tick
// is matched against the definitions as stored once it arrived, as a
// trigger event is.
func TestAnEngineBehindFiresNoTickOfARemovedCron(t *testing.T) {
	src := "name: pulse\ntriggers:\n  - cron: \"0 9 * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	ctx, store, def := cronStore(t, src)
	key := def.Triggers[0].Key
	rec, _, err := store.PutDefinition(ctx, "pulse", src, "test", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	behind, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	behind.reg.update(rec) // it has seen the trigger, not yet its removal
	if _, _, err := store.PutDefinition(ctx, "pulse", "name: pulse\nsteps:\n  - { id: a, task: echo }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	tick := time.Now().UTC().Truncate(time.Second)
	d := &eventstore.Delivery{Seq: 7, NumDelivered: 1, Subject: "weft.t.cf.pulse." + key,
		Tick: &eventstore.CronTick{V: 1, Definition: "pulse", Key: key, Tick: tick}}
	if err := behind.handleTick(ctx, d); err != nil {
		t.Fatal(err)
	}
	id := RunID("pulse", def.Triggers[0], TickIdentity(tick))
	if _, err := store.LastSeq(ctx, id); err == nil {
		t.Errorf("the tick of a removed cron trigger started run %s", id)
	}
	if err := behind.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	pending, err := store.CronSchedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tk, ok := pending["pulse."+key]; ok {
		t.Errorf("an engine behind scheduled a tick (%v) of a removed cron trigger", tk.Tick)
	}
}

// cronStore opens a store on a fresh NATS for a cron trigger's test and
// parses the definition src; the context ends with the test, within a
// minute.
func cronStore(t *testing.T, src string) (context.Context, *eventstore.Store, *definition.Definition) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return ctx, store, def
}
