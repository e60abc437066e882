package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A result is judged only on a history that reaches the command it names:
// while the orchestrator's read is behind that command, the result is kept
// and tried again, never dropped as stale.
func TestResultWaitsForItsCommand(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: manual
steps:
  - { id: a, task: manual }
  - { id: w, wait: { signal: go } }
output: "${ steps.a.output }"
`)
	id := e.start("manual", "", `{}`)
	cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "a" })
	// The result names a command one record further on than the history
	// goes: as if the orchestrator's read lagged behind the executor's.
	err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC(), Cmd: cmd + 1})
	if err != nil {
		t.Fatal(err)
	}
	held := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(held) {
		if s := stepStatus(e.get(id), "a"); s != weftv1.StepStatus_STEP_STATUS_RUNNING {
			t.Fatalf("step a is %v before the history reached the result's command", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The history grows past it (a signal is the next record): the kept
	// result is applied.
	if err := e.signal(id, "go", `1`); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"done"` {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
}

// A timer that fires before the record that set it shows in history (its
// append still on its way, say across a NATS leader election) is kept and
// tried again, never dropped: here it fires while the step before the
// wait still runs, and once the wait is recorded the timer times it out.
func TestTimerWaitsForItsRecord(t *testing.T) {
	// The orchestrator's clock runs two hours ahead, so the wait's one-hour
	// timeout is due as soon as it is recorded, while its own scheduled
	// timer stays an hour away.
	e := newEnv(t, envOpts{noExecutor: true, now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	e.putDef(`
name: manualwait
steps:
  - { id: a, task: manual }
  - { id: w, wait: { signal: go, timeout: 1h } }
`)
	id := e.start("manualwait", "", `{}`)
	cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "a" })
	// The wait's timer fires before its record exists (published as its
	// schedule would, due by the orchestrator's clock).
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	data, err := events.EncodeTimer(events.TimerDue{WorkflowID: id, TimerID: workflow.TimerID("w", 1), Path: "w",
		Due: time.Now().Add(2*time.Hour - time.Second).UTC(), After: cmd})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "weft.t.f."+id, data); err != nil {
		t.Fatal(err)
	}
	// Let an orchestrator handle it before the record exists: a second
	// delivery means the first was handled and asked back.
	eventually(t, 20*time.Second, "the early timer to be delivered", func() bool {
		cons, err := js.Consumer(context.Background(), eventstore.TimersStream, eventstore.TimersConsumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.Delivered.Consumer >= 2
	})
	if err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC(), Cmd: cmd}); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 30*time.Second)
	fired := false
	for _, ev := range e.history(id) {
		fired = fired || ev.Type == "TimerFired"
	}
	if !fired || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("status %v, timer fired %v; want the wait timed out by the early timer", w.Status, fired)
	}
}

// A decision stored as several records schedules each record's timers
// with the sequence that record is appended after: a timer is judged
// against its own record, not the decision's first one.
func TestTimerAfterItsOwnRecord(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: split
steps:
  - id: both
    parallel:
      branches:
        a_work: [ { id: a, task: manual } ]
        b_nap:  [ { id: z, sleep: 1h } ]
`)
	id := e.start("split", "", `{}`)
	// The start's decision: a's command, then z's timer in a record of its own.
	cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil })
	timerRec := e.recordOf(id, "z's timer", func(ev events.Event) bool { return ev.TimerScheduled != nil })
	if timerRec <= cmd {
		t.Fatalf("timer in record %d, command in %d; want the timer's record after the command's", timerRec, cmd)
	}
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	m, err := js.Stream(context.Background(), eventstore.TimersStream)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := m.GetLastMsgForSubject(context.Background(), "weft.t.s."+id+".>")
	if err != nil {
		t.Fatal(err)
	}
	due, err := events.DecodeTimer(sched.Data)
	if err != nil {
		t.Fatal(err)
	}
	if due.After != cmd {
		t.Fatalf("timer scheduled after seq %d; its record %d comes after seq %d", due.After, timerRec, cmd)
	}
}

// recordOf waits for wf's history to hold an event that match finds and
// returns the stream sequence of the record holding it.
func (e *env) recordOf(wf, what string, match func(events.Event) bool) uint64 {
	e.t.Helper()
	var seq uint64
	eventually(e.t, 20*time.Second, what+" to be recorded", func() bool {
		msgs, err := e.node.Store.Read(context.Background(), wf, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, m := range msgs {
			for _, ev := range m.Record.Events {
				if match(ev) {
					seq = m.Seq
				}
			}
		}
		return seq > 0
	})
	return seq
}
