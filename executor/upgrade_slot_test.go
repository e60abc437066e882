package executor

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// During a rolling upgrade, an executor of the version that named a slot's
// holder without the command ("<run>/<path>/<scheduling>/<attempt>") took
// the only slot of a step's key for an attempt and stopped before running
// it: it gives the command back, and its slot is left to the command's
// next delivery, which takes it back as its own. That delivery reaches an
// executor of this version, which names the same attempt with its
// command: it must take the slot back too, not wait out the lease (the
// step's timeout and a minute) with the step shown waiting for a slot its
// own attempt holds. With a limit the earlier slot leaves room under, the
// attempt runs at once, and must still take that slot back: left, it
// keeps one of the key's slots from every other attempt until its lease
// ends, and doctor reports the run's finished attempt as holding it. A
// command held behind other attempts of its key for a while before the
// earlier executor took the slot (delivered a few hundred times, a
// quarter of a second apart) must take it back on its next delivery too,
// not only on one numbered by a power of two: the next such number may
// come after the lease ends.
func TestAnAttemptTakesBackTheSlotAnEarlierVersionTookForIt(t *testing.T) {
	for _, c := range []struct{ limit, delivered int }{{1, 1}, {2, 1}, {1, 130}} {
		t.Run(fmt.Sprintf("limit %d, taken at delivery %d", c.limit, c.delivered), func(t *testing.T) {
			takesBackEarlierVersionsSlot(t, c.limit, c.delivered)
		})
	}
}

func takesBackEarlierVersionsSlot(t *testing.T, limit, delivered int) {
	b := newBench(t, nil)
	if err := b.store.EnsureTaskConsumer(b.ctx, "slotted"); err != nil {
		t.Fatal(err)
	}
	b.flowCommand("wf", "slotted", time.Minute, events.RetryPolicy{MaxAttempts: 1}, "k", limit)

	// The earlier executor: delivered the command, takes the slot under
	// the name it gives it, and gives the command back as it stops.
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("slotted"))
	if err != nil {
		t.Fatal(err)
	}
	var msg jetstream.Msg
	for n := 1; n <= delivered; n++ {
		if msg != nil {
			// Held behind the key's other attempts: given back at once.
			if err := msg.Nak(); err != nil {
				t.Fatal(err)
			}
			msg = nil
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			msg = m
		}
		if msg == nil {
			t.Fatalf("the command was not delivered a %dth time", n)
		}
	}
	lease := 2 * time.Minute // the step's timeout and a minute
	if ok, _, err := b.store.AcquireSlot(b.ctx, "d/s", "k", limit, "wf/s/1/1", time.Now(), lease); err != nil || !ok {
		t.Fatalf("the earlier executor's slot: %v %v", ok, err)
	}
	if err := msg.NakWithDelay(givenBackDelay); err != nil {
		t.Fatal(err)
	}

	// This version's executor gets it again.
	var ran atomic.Bool
	w, err := New(b.store, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register("slotted", func(context.Context, *Task) (any, error) {
		ran.Store(true)
		return "done", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})
	for deadline := time.Now().Add(15 * time.Second); !ran.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			h, _ := b.store.SlotHolders(b.ctx, "d/s", "k", time.Now())
			t.Fatalf("the attempt did not run: it waits for the slot the earlier executor took for it, until its lease ends (holders %v)", h)
		}
	}
	b.settled("slotted")
	if h, err := b.store.SlotHolders(b.ctx, "d/s", "k", time.Now()); err != nil || len(h) != 0 {
		t.Fatalf("slot holders after the attempt: %v %v (the slot the earlier executor took for it is left until its lease ends)", h, err)
	}
}
