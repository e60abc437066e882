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

// first, as for a trigger event.
func TestAnEngineBehindFiresNoTickOfARemovedCron(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := "name: pulse\ntriggers:\n  - cron: \"0 9 * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
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
