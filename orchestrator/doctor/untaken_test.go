package doctor_test

// Inputs that wait for an orchestrator that never comes: a fired timer in
// the timers stream, a result in the results stream, a start (signal,
// cancel) the external consumer has not handed out. With no orchestrator
// taking them (all down, crash-looping, or deployed without the
// orchestrator role) nothing moves their runs on, for as long as that
// lasts; the check reports them past OrchestratorGrace, as it reports a
// task type no executor serves past ExecutorGrace.
//
// These rigs run no orchestrator at all. Each check runs as if an hour
// later, well past every grace the doctor has.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// checkAnHourLater runs the check as if an hour from now.
func (r *rig) checkAnHourLater() *doctor.Report {
	r.t.Helper()
	rep, err := doctor.Check(r.ctx, r.store, doctor.Options{All: true, Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

// wantUntaken checks as if an hour from now and wants run id (what
// waits for it) reported stuck, naming the consumer no orchestrator takes.
func (r *rig) wantUntaken(id, what, consumer string) {
	r.t.Helper()
	rep := r.checkAnHourLater()
	run := runOf(rep, id)
	if run == nil {
		r.t.Fatalf("run %s not checked", id)
	}
	if rep.OK() || !run.Stuck() {
		r.t.Errorf("%s that no orchestrator takes: verdict %s, %s, OK=%v; want the run reported stuck (no orchestrator consumes %s)",
			what, run.Verdict, rep.Summary(), rep.OK(), consumer)
	}
	if f := findingsOf(rep, id); !strings.Contains(f, "no orchestrator takes it (none asks the consumer "+consumer) {
		r.t.Errorf("findings %q; want the consumer no orchestrator takes named", f)
	}
}

func runOf(rep *doctor.Report, id string) *doctor.Run {
	for i := range rep.Runs {
		if rep.Runs[i].ID == id {
			return &rep.Runs[i]
		}
	}
	return nil
}

// A sleep's timer fired an hour ago and waits in the timers stream; no
// orchestrator consumes fired timers. Nothing records it: the run sleeps
// for good, and the doctor says it is moving.
func TestAFiredTimerNoOrchestratorTakesIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"nap": "name: nap\nsteps:\n  - { id: nap, sleep: 1s }\n"})
	r.t0 = time.Now().UTC()
	const id = "napper"
	seq := r.decided(r.start(id, "nap", nil))
	r.index(id, "nap", "RUNNING", seq)
	due := r.sleepDue(id)
	if err := r.store.ScheduleTimer(r.ctx, events.TimerDue{WorkflowID: id, TimerID: workflow.TimerID("nap", 1), Path: "nap", Due: due, After: seq}); err != nil {
		t.Fatal(err)
	}
	// Wait (polling, bounded) for the schedule to fire into the stream.
	for deadline := time.Now().Add(30 * time.Second); ; {
		state, _, err := r.store.Timer(r.ctx, id, workflow.TimerID("nap", 1))
		if err != nil {
			t.Fatal(err)
		}
		if state == eventstore.TimerFired {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the timer never fired (state %d)", state)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.wantUntaken(id, "a timer fired an hour ago", eventstore.TimersConsumer)
}

// A task's result was reported an hour ago to the results stream (no
// orchestrator answered directly) and its command settled; no orchestrator
// consumes results. Nothing records it, and the doctor says the run is
// moving.
func TestAResultNoOrchestratorTakesIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"w": taskDef})
	const id = "worked"
	if err := r.store.EnsureTaskConsumer(r.ctx, "work"); err != nil {
		t.Fatal(err)
	}
	seq := r.decided(r.start(id, "w", nil))
	r.index(id, "w", "RUNNING", seq)
	p, err := r.store.TaskPuller(r.ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	done := false
	for deadline := time.Now().Add(20 * time.Second); !done; {
		if time.Now().After(deadline) {
			t.Fatal("the task command was never handed out")
		}
		if err := p.Fetch(r.ctx, 1, time.Second, func(d *eventstore.Delivery) {
			// As an executor does when no orchestrator answers directly:
			// the result goes to the results stream, then the command is acked.
			res := events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted,
				Output: "ok", Time: time.Now().UTC(), Cmd: d.Seq}
			if err := r.store.PublishResult(context.WithoutCancel(r.ctx), res); err != nil {
				t.Error(err)
				return
			}
			done = d.Ack() == nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if waiting, err := r.store.ResultWaiting(r.ctx, id); err != nil || !waiting {
		t.Fatalf("control: the result does not wait in the results stream (%v, %v)", waiting, err)
	}
	r.wantUntaken(id, "a result waiting an hour", eventstore.ResultsConsumer)
}

// A start the API appended itself (no orchestrator answered the direct
// start) an hour ago; no orchestrator consumes the external inputs. The
// run never begins, is never listed, and the doctor says it is moving and
// not even drifted.
func TestAStartNoOrchestratorTakesIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"w": taskDef})
	const id = "unstarted"
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, id, &zero, "start/"+id, r.start(id, "w", nil)); err != nil {
		t.Fatal(err)
	}
	r.wantUntaken(id, "a start waiting an hour", eventstore.ExternalConsumer)
}
