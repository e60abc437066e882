package trigger

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// A cron tick that was late when this engine first had it (a later tick
// was due already: a missed one) and that the engine gave back after an
// error is still skipped when it comes back: firing it would start the
// run of a missed tick, only because its second delivery is a
// redelivery.
func TestALateCronTickRedeliveredAfterAnErrorIsStillSkipped(t *testing.T) {
	src := "name: pulse\ntriggers:\n  - cron: \"*/5 * * * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	ctx, store, def := cronStore(t, src)
	key := def.Triggers[0].Key
	if _, _, err := store.PutDefinition(ctx, "pulse", src, "test", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	tick := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	now := tick.Add(time.Minute) // eleven ticks missed
	e, err := New(store, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d := &eventstore.Delivery{Seq: 42, NumDelivered: 1, Subject: "weft.t.cf.pulse." + key,
		Tick: &eventstore.CronTick{V: 1, Definition: "pulse", Key: key, Tick: tick}}
	// The store errs (here: the handler's context ends) before the
	// handler settled the tick: it asks for a redelivery.
	failing, stop := context.WithCancel(ctx)
	stop()
	if err := e.handleTick(failing, d); err == nil {
		t.Fatal("a handler whose store errs handled the tick")
	}
	d.NumDelivered, now = 2, now.Add(time.Second)
	if err := e.handleTick(ctx, d); err != nil {
		t.Fatal(err)
	}
	id := RunID("pulse", def.Triggers[0], TickIdentity(tick))
	if _, err := store.LastSeq(ctx, id); err == nil {
		t.Fatalf("the tick of %v, a minute late when first delivered, started run %s on its redelivery", tick, id)
	}
}
