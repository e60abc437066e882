package orchestrator

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

const taskThenNap = `
name: tn
steps:
  - { id: a, task: work }
  - { id: nap, sleep: 2s }
  - { id: b, task: work }
`

// shardAt is r.shard with its orchestrator's clock set to now.
func (r *rig) shardAt(now func() time.Time) *shard {
	r.t.Helper()
	o, err := New(r.store, Config{Logger: quiet, Now: now})
	if err != nil {
		r.t.Fatal(err)
	}
	o.ix = newIndexer(r.store, quiet)
	r.t.Cleanup(o.ix.close)
	return &shard{o: o, cache: map[string]*entry{}}
}

// nextWithin returns f's next delivery, or nil after d.
func nextWithin(f *eventstore.Feed, d time.Duration) *eventstore.Delivery {
	got := make(chan *eventstore.Delivery, 1)
	go func() {
		if dl, err := f.Next(); err == nil {
			got <- dl
		}
	}()
	select {
	case dl := <-got:
		return dl
	case <-time.After(d):
		return nil
	}
}

// timerFiredAfterStaleCache runs a task then a 2 s sleep. Shard a caches
// the run at its start; shard b records the task's result and the sleep's
// TimerScheduled (so a's cache is behind). The fired timer is handed to
// stale (a, or a fresh shard when !useStale), whose clock runs lag behind
// the NATS server's (docs/reliability.md: "A clock that runs behind is left
// alone: it makes things late, never early"). It reports whether the sleep's
// TimerFired is recorded within 10 s of the due time.
func timerFiredAfterStaleCache(t *testing.T, lag time.Duration, useStale bool) bool {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	r.ctx = ctx
	r.putDef("tn", taskThenNap)
	behind := func() time.Time { return time.Now().Add(-lag) }
	a, b := r.shardAt(behind), r.shard()
	ext, results := r.feeds()
	timers, err := r.store.Feed(r.ctx, eventstore.SourceTimers, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(timers.Stop)
	const wf = "napper"
	r.start(wf, "tn")
	a.handle(r.ctx, next(t, ext)) // a caches the run: step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "A", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, results)) // b records a's result and the sleep
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.TimerScheduled != nil && ev.TimerScheduled.Path == "nap" }); n != 1 {
		t.Fatalf("sleep scheduled %d times", n)
	}
	handler := a
	if !useStale {
		handler = r.shardAt(behind)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		d := nextWithin(timers, time.Until(deadline))
		if d == nil {
			break
		}
		handler.handle(r.ctx, d)
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.TimerFired != nil && ev.TimerFired.Path == "nap" }); n > 0 {
			return true
		}
	}
	return false
}

// A fired timer handed to an orchestrator whose cached state is behind
// (another orchestrator recorded the sleep) and whose clock is a little
// behind the NATS server's comes back when due: the catch-up says "not
// due" (it once acked the delivery, and the sleep never ended).
func TestATimerEarlyForAStaleCacheComesBack(t *testing.T) {
	if !timerFiredAfterStaleCache(t, 1500*time.Millisecond, true) {
		t.Fatal("the sleep's timer was dropped: no TimerFired recorded, and no delivery of it left (the run is stranded)")
	}
}

// Control: the same timer, the same clock, handed to a shard with no
// cached state, comes back when due and is recorded.
func TestATimerEarlyForAFreshLoadComesBack(t *testing.T) {
	if !timerFiredAfterStaleCache(t, 1500*time.Millisecond, false) {
		t.Fatal("the sleep's timer was dropped on a fresh load")
	}
}
