package trigger

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// A cron tick this engine cannot read (one a newer version wrote, during
// a rolling upgrade) is given back for a part that can, as an
// orchestrator gives back a fired timer it cannot read: dropped at its
// first delivery, its run never started, and no later tick was scheduled
// until a reconcile picked the trigger up again from then.
func TestACronTickOfANewerVersionIsGivenBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := natstest.Start(t).Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	runEngine(ctx, t, store)
	data, err := msgpack.Marshal(map[string]any{"v": 2, "def": "newer", "key": "k1", "tick": time.Now().UTC(), "more": "a newer field"})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "weft.t.cf.newer.k1", data)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, eventstore.TimersStream, eventstore.CronConsumer)
	if err != nil {
		t.Fatal(err)
	}
	// Delivered again: given back, not dropped, and nothing recorded.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		fs, _, err := store.ListTriggerFailures(ctx, 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) > 0 {
			t.Fatalf("the tick was dropped and recorded as a failure at its first delivery: %s", fs[0].Reason)
		}
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tick was not delivered again (consumer %+v)", info.Delivered)
		}
	}
	s, err := js.Stream(ctx, eventstore.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMsg(ctx, ack.Sequence); err != nil {
		t.Fatalf("the tick is gone from the stream: %v", err)
	}
}

// runEngine starts a trigger engine on store, stopped when t ends.
func runEngine(ctx context.Context, t *testing.T, store *eventstore.Store) *Engine {
	t.Helper()
	e, err := New(store, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.Stop(stop)
	})
	return e
}
