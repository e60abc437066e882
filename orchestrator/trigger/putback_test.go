package trigger_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// A catchup cron trigger removed and put back while no engine runs (the
// API is up, the orchestrators are not) must not catch up the ticks of
// the time it did not exist (README, Triggers). The engine that comes
// back sees only the latest revision, which has the trigger, and the
// last tick from before the removal: it starts a run for every tick of
// the two hours the trigger did not exist.
func TestACronRemovedAndPutBackWhileNoEngineRunsDoesNotCatchUpTheGap(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := mustTime(t, "2026-06-01T10:00:30Z")
	nc, store, key := tickerStore(t, ctx, start)
	// The tick an engine scheduled before the orchestrators went down.
	if err := store.ScheduleCron(ctx, eventstore.CronTick{Definition: "ticker", Key: key, Tick: mustTime(t, "2026-06-01T10:01:00Z")}); err != nil {
		t.Fatal(err)
	}
	// Removed at 10:00:30 and put back at 12:00:30, no engine running.
	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWithout, "test", start); err != nil {
		t.Fatal(err)
	}
	back := mustTime(t, "2026-06-01T12:00:30Z")
	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWith, "test", back); err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(back.Add(5 * time.Minute).UnixNano())
	clockEngine(t, ctx, store, &clock)
	// Let it work: the ticks from 12:01 to 12:05 are rightly caught up
	// (Weft was down then and the trigger existed).
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		last, err := store.LastCronTick(ctx, "ticker", key)
		if err != nil {
			t.Fatal(err)
		}
		if !last.Before(mustTime(t, "2026-06-01T12:05:00Z")) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last, err := store.LastCronTick(ctx, "ticker", key); err != nil || last.Before(mustTime(t, "2026-06-01T12:05:00Z")) {
		t.Fatalf("the ticks since the trigger was put back were not caught up: last tick %v (%v)", last, err)
	}
	var gap []string
	caught := 0
	for _, id := range startedWorkflows(t, ctx, nc) {
		// ticker-<key>-20260601T1HMMSSZ
		tick, err := time.Parse("20060102T150405Z", id[len(id)-16:])
		if err != nil {
			t.Fatal(err)
		}
		if tick.Before(back) {
			gap = append(gap, id)
		} else {
			caught++
		}
	}
	if caught < 4 {
		t.Errorf("%d runs of the ticks since the trigger was put back; want those of 12:01 to 12:05", caught)
	}
	if len(gap) > 0 {
		t.Errorf("%d runs started for ticks of the time the trigger did not exist, e.g. %s .. %s", len(gap), gap[0], gap[len(gap)-1])
	}
}
