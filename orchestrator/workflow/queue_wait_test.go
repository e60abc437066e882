package workflow_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A queued run looks at its slot again on a durable timer, and each look
// adds two events to its history (the timer fired, the next one set).
// Every 2 min for as long as it waits, a run queued behind one that waits
// for weeks (a signal from a person, say) passed the history limit
// (100,000 events by default) after 69 days and failed without having
// begun; a redrive failed again at once. The looks keep their pace for
// about a day, then slow down: a run queued for 400 days stays within
// the limit, queued.
func TestAQueuedRunsLooksDoNotOutgrowItsHistory(t *testing.T) {
	def := parse(t, "name: test\nconcurrency: { limit: 1 }\nsteps:\n  - { id: w, wait: { signal: go } }\n")
	st := fold(t, hist(started(0, nil)))
	var waits []time.Duration
	for st.Now.Sub(t0) < 400*24*time.Hour {
		if _, err := workflow.Advance(st, def); err != nil {
			t.Fatal(err)
		}
		if st.Shown() != workflow.StatusQueued || st.AdmitTimerID == "" {
			t.Fatalf("after %s: %s, timer %q; want QUEUED with a look pending", st.Now.Sub(t0), st.Shown(), st.AdmitTimerID)
		}
		if st.Events > 100000 {
			t.Fatalf("queued for %s, the run's history holds %d events, past the default history limit: it would fail without having begun",
				st.Now.Sub(t0).Round(time.Hour), st.Events)
		}
		waits = append(waits, st.AdmitAt.Sub(st.Now))
		if err := st.Apply(events.Event{Type: events.TypeTimerFired, Time: st.AdmitAt,
			TimerFired: &events.TimerFired{TimerID: st.AdmitTimerID, Due: st.AdmitAt}}); err != nil {
			t.Fatal(err)
		}
	}
	// The first day's pace is kept: a look cut short by a crash is made
	// again within 2 min.
	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 2 * time.Minute} {
		if waits[i] != want {
			t.Errorf("look %d waits %s; want %s", i, waits[i], want)
		}
	}
	var day time.Duration
	for i, w := range waits {
		if day += w; day > 23*time.Hour {
			break
		}
		if w > 2*time.Minute {
			t.Fatalf("look %d, %s into the wait, waits %s; want at most 2 min on the first day", i, day, w)
		}
	}
}
