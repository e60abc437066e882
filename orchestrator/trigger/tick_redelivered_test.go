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

// A cron tick that was delivered on time, and whose handler died (an
// orchestrator crash, or a NATS error answered with a Nak) before it
// started the tick's run, is redelivered one ack wait later (10 s by
// default). Weft was up all along and the tick was not missed: its run
// must start on the redelivery. A non-catchup trigger whose period is
// shorter than that delay skips it instead: the tick is lost.
func TestARedeliveredCronTickIsNotSkipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := "name: pulse\ntriggers:\n  - cron: \"*/5 * * * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	key := def.Triggers[0].Key
	if _, _, err := store.PutDefinition(ctx, "pulse", src, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	tick := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	// The redelivery comes one ack wait (10 s) after the first delivery.
	now := tick.Add(10 * time.Second)
	e, err := New(store, Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	d := &eventstore.Delivery{NumDelivered: 2, Subject: "weft.t.cf.pulse." + key,
		Tick: &eventstore.CronTick{V: 1, Definition: "pulse", Key: key, Tick: tick}}
	if err := e.handleTick(ctx, d); err != nil {
		t.Fatal(err)
	}
	id := RunID("pulse", def.Triggers[0], TickIdentity(tick))
	if _, err := store.LastSeq(ctx, id); err != nil {
		t.Fatalf("the tick of %v, redelivered 10 s later after its first handler died, started no run (%v): it is lost", tick, err)
	}
}
