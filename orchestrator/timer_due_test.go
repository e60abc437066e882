package orchestrator

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// Every timer a decision records is scheduled for the due time the record
// says (rounded up to the second, the schedules' precision). A fired
// timer's check against the state (errNotDue) guards against one that
// fires early, but nothing looks at one scheduled late: a sleep, a wait's
// or a workflow's timeout would overstay by that much, in silence.
func TestTimersAreScheduledForTheirRecordedDueTime(t *testing.T) {
	r := newRig(t)
	r.putDef("nap", "name: nap\ntimeout: 1h\nsteps:\n  - { id: nap, sleep: 90s }\n")
	r.putDef("hold", "name: hold\nsteps:\n  - { id: w, wait: { signal: go, timeout: 2h } }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	timers := r.timersStream()
	for wf, def := range map[string]string{"napping": "nap", "holding": "hold"} {
		r.start(wf, def)
	}
	for range 2 {
		sh.handle(r.ctx, next(t, ext))
	}
	want := map[string]time.Time{} // "<workflow>.<timer id>": the recorded due time
	for _, wf := range []string{"napping", "holding"} {
		for _, m := range r.history(wf) {
			for _, ev := range m.Record.Events {
				switch {
				case ev.TimerScheduled != nil:
					want[wf+"."+ev.TimerScheduled.TimerID] = ev.TimerScheduled.Due
				case ev.WaitStarted != nil && ev.WaitStarted.TimerID != "":
					want[wf+"."+ev.WaitStarted.TimerID] = ev.WaitStarted.TimeoutAt
				}
			}
		}
	}
	if len(want) != 3 {
		t.Fatalf("recorded timers %v; want the workflow's timeout and the sleep's, and the wait's", want)
	}
	for id, due := range want {
		// eventstore.ScheduleTimer's subjects: a pending schedule per time
		// a timer is due at.
		m, err := timers.GetLastMsgForSubject(r.ctx, "weft.t.s."+id+".>")
		if err != nil {
			t.Fatalf("timer %s (due %v): %v", id, due, err)
		}
		at := due.UTC().Truncate(time.Second)
		if at.Before(due) {
			at = at.Add(time.Second)
		}
		if got, want := m.Header.Get("Nats-Schedule"), "@at "+at.Format(time.RFC3339); got != want {
			t.Errorf("timer %s is scheduled %q; its record says due %v (%q)", id, got, due, want)
		}
		if td, err := events.DecodeTimer(m.Data); err != nil || !td.Due.Equal(due) {
			t.Errorf("timer %s fires saying due %v (%v); its record says %v", id, td.Due, err, due)
		}
	}
}
