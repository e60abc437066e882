package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// Task types that differ only by '.' and '_' (and a user's nats_publish
// next to the built-in nats.publish) each run under their own handler.
func TestDefect3_TaskTypesDifferingByDotAndUnderscoreRunTheirOwnHandlers(t *testing.T) {
	named := func(name string) executor.Handler {
		return func(_ context.Context, task *executor.Task) (any, error) {
			return map[string]any{"handler": name, "type": task.Type}, nil
		}
	}
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"a.b": named("a.b"), "a_b": named("a_b"), "nats_publish": named("nats_publish"),
	}})
	e.putDef(`
name: lookalikes
steps:
  - id: dot
    task: a.b
  - id: underscore
    task: a_b
  - id: mine
    task: nats_publish
  - id: builtin
    task: nats.publish
    input: { subject: "lookalikes.done", data: "x" }
`)
	id := e.start("lookalikes", "lookalikes-1", ``)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	want := map[string]string{
		"dot":        `{"handler":"a.b","type":"a.b"}`,
		"underscore": `{"handler":"a_b","type":"a_b"}`,
		"mine":       `{"handler":"nats_publish","type":"nats_publish"}`,
		"builtin":    `{"subject":"lookalikes.done"}`,
	}
	for _, s := range w.Steps {
		if got := toJSON(s.Output); got != want[s.Path] {
			t.Errorf("step %s output %s, want %s", s.Path, got, want[s.Path])
		}
	}
}

// An executor that is handed a command of a task type other than its own
// does not run it: the step fails for good with error type
// wrong_task_type, recorded through the results stream.
func TestDefect3_WrongTaskTypeCommandFailsStep(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	wf := "wrongtype"
	var zero uint64
	seq, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTaskConsumer(ctx, "mine"); err != nil {
		t.Fatal(err)
	}
	// A command of type "other" stored on the subject of type "mine", as a
	// consumer whose filter another type rewrote would deliver it.
	data, err := events.Encode(events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "other", IdempotencyKey: wf + "/a", FirstAttempt: 1,
			Retry: events.RetryPolicy{MaxAttempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("weft.h." + wf + ".task.mine")
	msg.Data = data
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequenceForSubject(seq, "weft.h."+wf+".>"))
	if err != nil {
		t.Fatal(err)
	}

	var runs atomic.Int32
	w, err := executor.New(store, executor.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register("mine", func(context.Context, *executor.Task) (any, error) { runs.Add(1); return "ran", nil }); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()

	results, err := js.Stream(ctx, eventstore.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the command's result", func() bool {
		info, err := results.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	m, err := results.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := events.DecodeResult(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != events.OutcomeFailed || r.Error == nil || r.Error.Type != "wrong_task_type" || r.Cmd != ack.Sequence {
		t.Fatalf("result %+v (error %+v); want a failed step with error type %s", r, r.Error, "wrong_task_type")
	}
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler of %q ran %d times for a command of type %q", "mine", n, "other")
	}
	// The command is settled: the consumer has nothing pending.
	cons, err := js.Consumer(ctx, eventstore.HistoryStream, "weft-task-mine")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the command to be acked", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}
