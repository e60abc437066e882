package eventstore_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// The trigger failures are bounded in bytes as well as in number, also
// in a stream an earlier version made with the number alone: each keeps
// its payload (up to 1 MiB), so 100,000 of them could take 100 GB.
func TestTriggerFailuresAreBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	ns := natstest.Start(t)
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: eventstore.TriggerFailuresStream,
		Subjects: []string{"weft.fail.trigger"}, MaxMsgs: eventstore.TriggerFailuresKept, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.TriggerFailuresStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxBytes != eventstore.TriggerFailuresMaxBytes || c.MaxMsgs != eventstore.TriggerFailuresKept {
		t.Fatalf("trigger failures kept up to %d messages and %d bytes, want %d and %d", c.MaxMsgs, c.MaxBytes,
			eventstore.TriggerFailuresKept, eventstore.TriggerFailuresMaxBytes)
	}
}

// The last handled tick of a cron trigger only moves forward: an earlier
// tick handled again (a delivery made twice) leaves the later one, so a
// trigger that catches up never goes back over ticks it handled.
func TestLastCronTickOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	at := func(min int) time.Time { return time.Date(2026, 6, 1, 10, min, 0, 0, time.UTC) }
	for _, m := range []int{1, 5, 3, 5} {
		if err := s.SetLastCronTick(ctx, "d", "k", at(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.Equal(at(5)) {
		t.Fatalf("last tick %v (%v), want %v", got, err, at(5))
	}
	if err := s.CancelCron(ctx, "d", "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.IsZero() {
		t.Fatalf("after CancelCron the last tick is %v (%v), want none", got, err)
	}
	if err := s.SetLastCronTick(ctx, "d", "k", at(2)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.Equal(at(2)) {
		t.Fatalf("last tick %v (%v), want %v", got, err, at(2))
	}
}

// Subjects added at once through several stores (definitions put through
// several API processes) are all captured: none writes the stream's
// subjects back without another's.
func TestTriggerSubjectsAddedAtOnceAreAllCaptured(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	var stores []*eventstore.Store
	for range 4 {
		s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	errs := make([]error, 24)
	for i := range errs {
		wg.Go(func() {
			errs[i] = stores[i%len(stores)].AddTriggerSubjects(ctx, []string{fmt.Sprintf("orders.%d", i)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	got, err := stores[0].TriggerSubjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(errs) {
		t.Fatalf("%d subjects captured of %d added: %v", len(got), len(errs), got)
	}
}

// A change of the captured subjects is decided again under the lock, over
// what is captured then: a subject a put captured after the caller first
// looked (its definition stored by then) is not dropped.
func TestSetTriggerSubjectsDecidesUnderTheLock(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	engine, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.AddTriggerSubjects(ctx, []string{"a", "x"}); err != nil {
		t.Fatal(err)
	}
	var stored []string // the definitions' subjects as stored
	looks := 0
	decide := func(_ context.Context, captured []string) []string {
		looks++
		if looks == 1 {
			// Between the engine's first look and its write, a definition
			// naming "b" is stored and its put captures "b".
			stored = []string{"b"}
			if err := api.AddTriggerSubjects(ctx, []string{"b"}); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{"a"} // the engine's view: "x" was removed, "b" unknown
		for _, subj := range captured {
			if slices.Contains(stored, subj) {
				want = append(want, subj)
			}
		}
		return want
	}
	if err := engine.SetTriggerSubjects(ctx, decide); err != nil {
		t.Fatal(err)
	}
	got, err := engine.TriggerSubjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(got); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("captured %v after the change, want [a b]", got)
	}
}

// A change decided too slowly under the subjects lock (definitions slow to
// read while a NATS node restarts, say) is not written: the lock may have
// gone to a put by then, whose subject the change would drop.
func TestASlowDecisionIsNotWritten(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.AddTriggerSubjects(ctx, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	locked := false
	err := s.SetTriggerSubjects(ctx, func(ctx context.Context, _ []string) []string {
		if locked {
			<-ctx.Done() // slower than the lock allows
		}
		locked = true
		return []string{"z"}
	})
	if err == nil {
		t.Fatal("a change decided past the lock's time was written")
	}
	if got, err := s.TriggerSubjects(ctx); err != nil || !slices.Equal(got, []string{"a"}) {
		t.Fatalf("captured %v, %v; want [a]", got, err)
	}
}
