package doctor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A sleep whose timer fired at its due time and waits for an orchestrator
// (none runs) is not reported: it did fire. A schedule of the same timer
// for ten minutes later, which a decision that lost its append leaves
// beside the winner's now that each time has its own, does not change
// that. (A first version of Store.Timer read the pending schedules first
// and, finding the stray, reported the timer scheduled: doctor said it
// "has not fired".)
func TestAFiredTimerBesideALaterStrayScheduleIsNotReportedUnfired(t *testing.T) {
	r := newRig(t, map[string]string{"n": "name: n\nsteps:\n  - { id: nap, sleep: 1s }\n"})
	const id = "napped"
	seq := r.decided(r.start(id, "n", nil))
	r.index(id, "n", "RUNNING", seq)
	due := r.sleepDue(id)
	if time.Until(due) > 0 {
		t.Fatalf("sleep due %v; want one due already", due)
	}
	timer := workflow.TimerID("nap", 1)
	schedule := func(at time.Time) {
		t.Helper()
		if err := r.store.ScheduleTimer(r.ctx, events.TimerDue{WorkflowID: id, TimerID: timer, Path: "nap", Due: at, After: seq}); err != nil {
			t.Fatal(err)
		}
	}
	// The winner's schedule, for the due time: it fires, and the fired
	// timer waits on the workflow's subject for an orchestrator.
	schedule(due)
	timers, err := r.js.Stream(r.ctx, "WEFT_TIMERS")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := timers.GetLastMsgForSubject(r.ctx, "weft.t.f."+id)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the timer scheduled for its due time never fired")
		}
	}
	// No orchestrator runs here: one is taken to be on its way.
	waiting := doctor.Options{OrchestratorGrace: time.Hour}
	if rep := r.checkWith(waiting); problem(rep, id) {
		t.Fatalf("control: a sleep whose timer fired and waits for an orchestrator is reported: %s", stuckIDs(rep))
	}
	// The loser's schedule, ten minutes later, beside it.
	schedule(due.Add(10 * time.Minute))
	if rep := r.checkWith(waiting); problem(rep, id) {
		t.Fatalf("a sleep whose timer fired (and waits for an orchestrator) is reported because a later schedule stands beside it: %s", stuckIDs(rep))
	}
}
