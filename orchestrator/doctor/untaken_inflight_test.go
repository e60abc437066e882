package doctor_test

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// The only orchestrator took the fired timer (through the feed every
// orchestrator reads) and died before it recorded it: killed, its
// connection gone. Nothing hands the timer out again, for no orchestrator
// asks for inputs; but JetStream keeps a message handed out and never
// acked in the consumer's ack-pending count after its ack wait, until it
// is delivered again and acked. Read as "an orchestrator holds one", that
// count takes the run for moving for ever: every orchestrator down after
// one crashed holding an input (the way they usually go down) is missed.
func TestAFiredTimerADeadOrchestratorHeldIsReported(t *testing.T) {
	doctor.SetLookAgain(t, 10*time.Millisecond)
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	// A short ack wait: the held timer is past it well before the check.
	cfg := eventstore.Config{OrchestratorAckWait: time.Second}
	store, err := eventstore.Open(ctx, ns.Connect(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "nap", "name: nap\nsteps:\n  - { id: nap, sleep: 1s }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, ctx: ctx, store: store, t0: time.Now().UTC()}
	const id = "napper"
	seq := r.decided(r.start(id, "nap", nil))
	r.index(id, "nap", "RUNNING", seq)
	due := r.sleepDue(id)
	if err := store.ScheduleTimer(ctx, events.TimerDue{WorkflowID: id, TimerID: workflow.TimerID("nap", 1), Path: "nap", Due: due, After: seq}); err != nil {
		t.Fatal(err)
	}

	// The orchestrator: its own connection, the feed it reads timers by.
	dying := ns.Connect(t)
	ostore, err := eventstore.Open(ctx, dying, cfg)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := ostore.Feed(ctx, eventstore.SourceTimers, 256)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *eventstore.Delivery, 1)
	go func() {
		d, err := feed.Next()
		if err != nil {
			t.Error(err)
		}
		got <- d
	}()
	select {
	case d := <-got:
		if d == nil || d.WorkflowID != id {
			t.Fatalf("the orchestrator took %+v, want the fired timer of %s", d, id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the timer never fired to the orchestrator")
	}
	// Killed before it recorded and acked it.
	dying.Close()

	// Wait (bounded) until the dead orchestrator's request for inputs is
	// gone and the held timer is past its ack wait.
	past := time.Now().Add(cfg.OrchestratorAckWait)
	for deadline := time.Now().Add(30 * time.Second); ; {
		tk, err := store.OrchestratorTakers(ctx, eventstore.SourceTimers)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Pulls == 0 && time.Now().After(past) {
			t.Logf("the timers consumer with no orchestrator: %+v", tk)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead orchestrator's request stays open: %+v", tk)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if state, _, err := store.Timer(ctx, id, workflow.TimerID("nap", 1)); err != nil || state != eventstore.TimerFired {
		t.Fatalf("control: the timer is not waiting, fired (%d, %v)", state, err)
	}

	r.wantUntaken(id, "a timer fired an hour ago whose only orchestrator died holding it, none asking for inputs since,", eventstore.TimersConsumer)
}
