package doctor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const napDef = "name: n\nsteps:\n  - { id: nap, sleep: 1h }\n"

// A sleep whose timer is scheduled, but only to fire later than the
// history says it is due, makes its run late by as much: it is reported.
// The same timer scheduled for its due time is not, even beside a later
// schedule (one a decision that lost its append made).
func TestATimerScheduledPastItsDueIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"n": napDef})
	const id = "napping"
	seq := r.decided(r.start(id, "n", nil))
	r.index(id, "n", "RUNNING", seq)
	due := r.sleepDue(id)
	schedule := func(at time.Time) {
		t.Helper()
		if err := r.store.ScheduleTimer(r.ctx, events.TimerDue{WorkflowID: id, TimerID: workflow.TimerID("nap", 1), Path: "nap", Due: at, After: seq}); err != nil {
			t.Fatal(err)
		}
	}
	schedule(due)
	if rep := r.check(); problem(rep, id) {
		t.Fatalf("control: a sleep scheduled for its due time is reported: %s", stuckIDs(rep))
	}
	schedule(due.Add(10 * time.Minute))
	if rep := r.check(); problem(rep, id) {
		t.Fatalf("a sleep scheduled for its due time and ten minutes later is reported: %s", stuckIDs(rep))
	}
	if err := r.store.CancelTimer(r.ctx, id, workflow.TimerID("nap", 1)); err != nil {
		t.Fatal(err)
	}
	schedule(due.Add(10 * time.Minute))
	rep := r.check()
	if !problem(rep, id) || !strings.Contains(stuckIDs(rep), "after its due time") || !strings.Contains(stuckIDs(rep), ", 10m") {
		t.Fatalf("a sleep scheduled ten minutes past its due time is not reported: %s", stuckIDs(rep))
	}
}

// sleepDue returns when the history of run id says its sleep is due.
func (r *rig) sleepDue(id string) time.Time {
	r.t.Helper()
	msgs, err := r.store.Read(r.ctx, id, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, m := range msgs {
		for _, ev := range m.Record.Events {
			if ev.TimerScheduled != nil {
				return ev.TimerScheduled.Due
			}
		}
	}
	r.t.Fatal("no sleep recorded")
	return time.Time{}
}
