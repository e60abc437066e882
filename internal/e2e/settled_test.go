package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/natstest"
)

// A command redelivered after its step was recorded does not run again,
// and it still reports through the results stream: the orchestrator that
// recorded the step may have died before doing what follows it (starting a
// child, telling a parent, the listing), and that report makes one load the
// workflow afresh and finish it.
func TestSettledRedeliveryReports(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	wf := "settled"
	var zero uint64
	seq, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTaskConsumer(ctx, "manual"); err != nil {
		t.Fatal(err)
	}
	cmdSeq, err := store.Append(ctx, wf, seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "manual", IdempotencyKey: wf + "/a", FirstAttempt: 1,
			Retry: events.RetryPolicy{MaxAttempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	// A first delivery that is not acked (its executor "died"), then the
	// step's outcome is recorded.
	p, err := store.TaskPuller(ctx, "manual")
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	if err := p.Fetch(ctx, 1, 5*time.Second, func(d *eventstore.Delivery) { got++; _ = d.Nak(0) }); err != nil || got != 1 {
		t.Fatalf("first delivery: %d, %v", got, err)
	}
	if _, err := store.Append(ctx, wf, cmdSeq, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC()}.Event()); err != nil {
		t.Fatal(err)
	}

	var runs atomic.Int32
	w, err := executor.New(store, executor.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register("manual", func(context.Context, *executor.Task) (any, error) { runs.Add(1); return "again", nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()

	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	results, err := js.Stream(ctx, eventstore.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the settled step to be reported", func() bool {
		info, err := results.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	m, err := results.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := events.DecodeResult(m.Data)
	if err != nil || r.Path != "a" || r.Gen != 1 || r.Cmd != cmdSeq || r.Attempt != 2 {
		t.Fatalf("reported %+v, %v", r, err)
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler ran %d times for a step already recorded", n)
	}
}
