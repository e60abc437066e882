package trigger_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// TestDefect13_CronOneRunPerDayAcrossDaylightSavingChanges runs a daily
// cron trigger in Europe/Paris through the trigger engine, with a clock
// set after the days when the clock jumps, and checks that each day
// started exactly one workflow: on 2026-03-29, whose 02:30 does not exist,
// at 03:00 CEST, the instant of the jump; on 2026-10-25, whose 02:30
// happens twice, at the first 02:30 only.
func TestDefect13_CronOneRunPerDayAcrossDaylightSavingChanges(t *testing.T) {
	tests := []struct {
		name string
		last string   // the last tick handled before the engine starts
		now  string   // the engine's clock
		want []string // the ticks that start workflows, in UTC
	}{
		{"spring forward", "2026-03-28T01:30:00Z", "2026-04-01T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z", "2026-04-01T00:30:00Z"}},
		{"fall back", "2026-10-23T00:30:00Z", "2026-10-27T12:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const name = "nightly"
			src := `
name: nightly
triggers:
  - cron: "30 2 * * *"
    timezone: Europe/Paris
    catchup: true
steps:
  - id: hold
    wait: { signal: go }
`
			def, err := definition.Parse([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			key := def.Triggers[0].Key
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ns := natstest.Start(t)
			nc := ns.Connect(t)
			store, err := eventstore.Open(ctx, nc, eventstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			now, last := mustTime(t, tt.now), mustTime(t, tt.last)
			// Catchup resumes after the last handled tick, so the engine
			// goes through the days up to its clock one tick at a time.
			if err := store.SetLastCronTick(ctx, name, key, last); err != nil {
				t.Fatal(err)
			}
			// Put before that tick: the trigger existed when it was handled.
			if _, _, err := store.PutDefinition(ctx, name, src, "test", last.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			var clock atomic.Int64
			clock.Store(now.UnixNano())
			clockEngine(t, ctx, store, &clock)

			want := make([]string, len(tt.want))
			for i, tick := range tt.want {
				want[i] = name + "-" + key + "-" + mustTime(t, tick).Format("20060102T150405Z")
			}
			// The ticks are handled in order, so once the last one has
			// been, every earlier one has too.
			final := mustTime(t, tt.want[len(tt.want)-1])
			deadline := time.Now().Add(45 * time.Second)
			for {
				got, err := store.LastCronTick(ctx, name, key)
				if err != nil {
					t.Fatal(err)
				}
				if got.Equal(final) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("last handled tick is %v, want %v; workflows %v", got, final, startedWorkflows(t, ctx, nc))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := startedWorkflows(t, ctx, nc); !slices.Equal(got, want) {
				t.Errorf("workflows started\n%v\nwant one a day\n%v", got, want)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// startedWorkflows lists, sorted, the workflows whose start was appended
// to the history stream (on weft.h.<id>.ext).
func startedWorkflows(t *testing.T, ctx context.Context, nc *nats.Conn) []string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("weft.h.*.ext"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for subj := range info.State.Subjects {
		ids[strings.TrimSuffix(strings.TrimPrefix(subj, "weft.h."), ".ext")] = true
	}
	return slices.Sorted(maps.Keys(ids))
}

// tickerWith and tickerWithout are a definition with a catchup cron
// trigger of every minute, and its revision without it.
const (
	tickerWith    = "name: ticker\ntriggers:\n  - cron: \"* * * * *\"\n    catchup: true\nsteps:\n  - { id: a, task: echo }\n"
	tickerWithout = "name: ticker\nsteps:\n  - { id: a, task: echo }\n"
)

// tickerStore opens a store on a NATS server of its own with tickerWith
// put at start, its last tick handled the minute before, and returns it
// with the trigger's key.
func tickerStore(t *testing.T, ctx context.Context, start time.Time) (*nats.Conn, *eventstore.Store, string) {
	t.Helper()
	def, err := definition.Parse([]byte(tickerWith))
	if err != nil {
		t.Fatal(err)
	}
	key := def.Triggers[0].Key
	nc := natstest.Start(t).Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetLastCronTick(ctx, "ticker", key, start.Truncate(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWith, "test", start); err != nil {
		t.Fatal(err)
	}
	return nc, store, key
}

// clockEngine starts a trigger engine over store whose clock reads clock,
// stopped when the test ends.
func clockEngine(t *testing.T, ctx context.Context, store *eventstore.Store, clock *atomic.Int64) {
	t.Helper()
	startEngine(t, ctx, store, trigger.Config{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
}

// pendingTick returns the tick scheduled for cron trigger key of
// definition def; zero when none is.
func pendingTick(t *testing.T, ctx context.Context, store *eventstore.Store, def, key string) time.Time {
	t.Helper()
	pending, err := store.CronSchedules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pending[def+"."+key].Tick
}

// putBack puts tickerWith again at 12:00:30, two hours after the ticker
// tests start, and checks that its next tick is the first after then.
func putBack(t *testing.T, ctx context.Context, store *eventstore.Store, clock *atomic.Int64, key string) {
	t.Helper()
	back := mustTime(t, "2026-06-01T12:00:30Z")
	clock.Store(back.UnixNano())
	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWith, "test", back); err != nil {
		t.Fatal(err)
	}
	tick := func() time.Time { return pendingTick(t, ctx, store, "ticker", key) }
	waitFor(t, "the tick scheduled again", func() bool { return !tick().IsZero() })
	if got, want := tick(), mustTime(t, "2026-06-01T12:01:00Z"); !got.Equal(want) {
		t.Errorf("put back at %v, the trigger's next tick is %v, want %v", back, got, want)
	}
}

// waitFor polls ok until it holds, failing the test after 30 seconds.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s", what)
		}
	}
}

// A catchup cron trigger removed by a new revision and put back later
// resumes from the time it is back: the ticks of the time it did not
// exist are not caught up (Weft was up all along), and its next tick is
// the first after the clock.
func TestARemovedCatchupCronPutBackResumesFromNow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := mustTime(t, "2026-06-01T10:00:30Z")
	nc, store, key := tickerStore(t, ctx, start)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	clockEngine(t, ctx, store, &clock)
	tick := func() time.Time { return pendingTick(t, ctx, store, "ticker", key) }
	waitFor(t, "the first tick scheduled", func() bool { return tick().Equal(mustTime(t, "2026-06-01T10:01:00Z")) })

	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWithout, "test", start); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tick canceled", func() bool { return tick().IsZero() })
	if last, err := store.LastCronTick(ctx, "ticker", key); err != nil || !last.IsZero() {
		t.Fatalf("a removed trigger's last tick is still %v (%v): put back, it would catch up from there", last, err)
	}

	putBack(t, ctx, store, &clock, key)
	if got := startedWorkflows(t, ctx, nc); len(got) > 0 {
		t.Errorf("runs started for ticks of the time the trigger did not exist: %v", got)
	}
}

// A catchup cron trigger removed while its tick is due (the tick fires
// before any reconcile cancels it: engines down, or the tick in flight)
// is forgotten when its tick comes: put back later, it resumes from then,
// not from its last tick before it was removed.
func TestARemovedCronWhoseTickFiredForgetsItsLastTick(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := mustTime(t, "2026-06-01T10:00:30Z")
	_, store, key := tickerStore(t, ctx, start)
	// The tick an engine scheduled before the orchestrators went down.
	if err := store.ScheduleCron(ctx, eventstore.CronTick{Definition: "ticker", Key: key, Tick: mustTime(t, "2026-06-01T10:01:00Z")}); err != nil {
		t.Fatal(err)
	}
	// The trigger is removed while no engine runs; the tick comes due.
	if _, _, err := store.PutDefinition(ctx, "ticker", tickerWithout, "test", start); err != nil {
		t.Fatal(err)
	}
	tick := func() time.Time { return pendingTick(t, ctx, store, "ticker", key) }
	waitFor(t, "the schedule to fire", func() bool { return tick().IsZero() })
	var clock atomic.Int64
	clock.Store(mustTime(t, "2026-06-01T10:01:30Z").UnixNano())
	clockEngine(t, ctx, store, &clock)
	waitFor(t, "the removed trigger's last tick forgotten", func() bool {
		last, err := store.LastCronTick(ctx, "ticker", key)
		if err != nil {
			t.Fatal(err)
		}
		return last.IsZero()
	})
	putBack(t, ctx, store, &clock, key)
}
