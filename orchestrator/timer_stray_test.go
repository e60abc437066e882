package orchestrator

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
)

const napThenLongNap = `
name: nln
steps:
  - { id: doze, sleep: 1s }
  - { id: nap, sleep: 1h }
  - { id: b, task: work }
`

// A decision that loses its append schedules its timers first, as every
// decision does. When a timer's schedule was one per timer id, the loser's
// replaced the winner's; now each time has its own. Here b records that the first sleep ended and
// that the hour's sleep began; the fired timer, given back before its
// ack, comes to a, whose cached state is from before it and whose clock
// reads ten minutes later (a redelivery's delay). a decides the hour's
// sleep again, from its own now, and loses the append. The sleep must
// still fire when the history says it is due, not ten minutes later.
func TestALosingDecisionLeavesTheWinnersTimerAsRecorded(t *testing.T) {
	r := newRig(t)
	r.putDef("nln", napThenLongNap)
	a := r.shardAt(func() time.Time { return time.Now().Add(10 * time.Minute) })
	b := r.shard()
	ext, _ := r.feeds()
	timers, err := r.store.Feed(r.ctx, eventstore.SourceTimers, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(timers.Stop)
	const wf = "long-napper"
	r.start(wf, "nln")
	a.handle(r.ctx, next(t, ext)) // a caches the run: the first sleep began
	d := next(t, timers)
	if err := b.processUntilSettled(r.ctx, d); err != nil {
		t.Fatal(err)
	}
	_ = d.Nak(0) // b's ack never came: the timer is handed out again
	a.handle(r.ctx, next(t, timers))

	var due time.Time
	var id string
	for _, m := range r.history(wf) {
		for _, ev := range m.Record.Events {
			if ts := ev.TimerScheduled; ts != nil && ts.Path == "nap" {
				if id != "" {
					t.Fatalf("the sleep was recorded twice")
				}
				due, id = ts.Due, ts.TimerID
			}
		}
	}
	if id == "" {
		t.Fatal("no sleep recorded")
	}
	// a's schedule, ten minutes later, is there beside b's: nothing had to
	// set it back.
	info, err := r.timersStream().Info(r.ctx, jetstream.WithSubjectFilter("weft.t.s."+wf+"."+id+".>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 2 {
		t.Fatalf("%d schedules of the sleep (%v); want the winner's and the loser's", n, info.State.Subjects)
	}
	state, at, err := r.store.Timer(r.ctx, wf, id)
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(due) || at.Sub(due) >= time.Second {
		t.Fatalf("the sleep due at %s is scheduled to fire at %s (%v): the losing decision's schedule replaced the recorded one",
			due.Format(time.TimeOnly), at.Format(time.TimeOnly), state)
	}
}
