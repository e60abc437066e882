package trigger_test

import (
	"context"
	"io"
	"log/slog"
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
			if _, _, err := store.PutDefinition(ctx, name, src, "test", now); err != nil {
				t.Fatal(err)
			}
			var clock atomic.Int64
			clock.Store(now.UnixNano())
			eng, err := trigger.New(store, trigger.Config{
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now:    func() time.Time { return time.Unix(0, clock.Load()) },
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = eng.Stop(stop)
			})

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
