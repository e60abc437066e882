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
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A worker that stops while its handler runs gives the command back (a
// nak): that delivery was no attempt of its own, so a step allowed one
// attempt still runs to completion on the next worker, as attempt 1.
func TestDefect5_WorkerStoppedMidHandlerDoesNotUseTheOnlyAttempt(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: once
steps:
  - id: s
    task: slow
    retry: { max_attempts: 1 }
`)
	started := make(chan struct{})
	var firstRuns atomic.Int32
	first := e.worker("slow", func(ctx context.Context, _ *executor.Task) (any, error) {
		if firstRuns.Add(1) == 1 {
			close(started)
		}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	id := e.start("once", "once-1", ``)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first worker never ran the step")
	}
	// Stop at once: the running handler is canceled and its command naked.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(stopped)

	var attempt atomic.Int32
	e.worker("slow", func(_ context.Context, task *executor.Task) (any, error) {
		attempt.Store(int32(task.Attempt))
		return "done", nil
	})
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Steps[0].Output) != `"done"` {
		t.Fatalf("status %v error %v output %s; want completed by the second worker", w.Status, w.Error, toJSON(w.Steps[0].Output))
	}
	if a := attempt.Load(); a != 1 {
		t.Fatalf("the second worker ran attempt %d; want 1 (the stopped run was no attempt)", a)
	}
	for _, ev := range e.history(id) {
		if ev.Type == "StepAttemptFailed" || ev.Type == "StepFailed" {
			t.Fatalf("history records %s: %v", ev.Type, types(e.history(id)))
		}
	}
}

// A result that cannot be reported (here: the results stream is gone)
// makes the worker give the command back; that delivery was no recorded
// attempt, so a step allowed one attempt runs again and completes.
func TestDefect5_FailedResultReportDoesNotUseTheOnlyAttempt(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	cfg := eventstore.Config{ResultReplyWait: -1}
	store, err := eventstore.Open(ctx, ns.Connect(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	wf := "unreported"
	var zero uint64
	seq, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTaskConsumer(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	// No stream to report to.
	if err := js.DeleteStream(ctx, eventstore.ResultsStream); err != nil {
		t.Fatal(err)
	}
	cmdSeq, err := store.Append(ctx, wf, seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "once", IdempotencyKey: wf + "/a", FirstAttempt: 1,
			Retry: events.RetryPolicy{MaxAttempts: 1}}})
	if err != nil {
		t.Fatal(err)
	}

	var runs atomic.Int32
	w, err := executor.New(store, executor.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register("once", func(ctx context.Context, task *executor.Task) (any, error) {
		if runs.Add(1) == 2 {
			// The run after the unreported one: bring the stream back.
			if _, err := eventstore.Open(ctx, ns.Connect(t), cfg); err != nil {
				return nil, err
			}
		}
		return map[string]any{"attempt": task.Attempt}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop(context.Background()) }()

	var results jetstream.Stream
	eventually(t, 30*time.Second, "a result in the results stream", func() bool {
		if results == nil {
			if results, err = js.Stream(ctx, eventstore.ResultsStream); err != nil {
				results = nil
				return false
			}
		}
		info, err := results.Info(ctx)
		return err == nil && info.State.Msgs >= 1
	})
	m, err := results.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := events.DecodeResult(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Outcome != events.OutcomeCompleted || r.Attempt != 1 || r.Cmd != cmdSeq {
		t.Fatalf("result %+v (error %+v); want the step completed at attempt 1", r, r.Error)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("handler ran %d times; want 2 (once unreported, once reported)", n)
	}
}

// A handler that ignores its context does not hold its step past the
// step's timeout: the attempt is given up on a grace period after it
// timed out, recorded as timed out, and the run goes on (here, fails:
// one attempt allowed).
func TestAHandlerThatIgnoresItsContextStillTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	e := newEnv(t, envOpts{taskAckWait: time.Second, handlers: map[string]executor.Handler{
		"stuck": func(context.Context, *executor.Task) (any, error) { <-release; return "late", nil },
	}})
	e.putDef(`
name: hang
steps:
  - id: a
    task: stuck
    timeout: 1s
    retry: { max_attempts: 1 }
`)
	e.start("hang", "hang-1", `1`)
	w := e.waitClosed("hang-1", 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.GetType() != executor.ErrTypeTimeout {
		t.Fatalf("the run: %s with error %v; want FAILED, its step timed out", w.Status, w.Error)
	}
}

// A worker that stops while a handler that ignores its context runs does
// not wait for it for ever: once its stop's deadline passed it cancels the
// handler, gives it up a grace period later and gives the command back,
// which the next worker runs.
func TestAStopGivesUpAHandlerThatIgnoresItsContext(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: ignored
steps:
  - id: s
    task: deaf
    retry: { max_attempts: 1 }
`)
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	first := e.worker("deaf", func(context.Context, *executor.Task) (any, error) {
		started <- struct{}{}
		<-release
		return "late", nil
	})
	id := e.start("ignored", "ignored-1", ``)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first worker never ran the step")
	}
	// Stop waits for attempts in flight until its context ends, then
	// cancels them; this handler does not return.
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- first.Stop(stopCtx) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop still waits for a handler that ignores its context")
	}
	e.worker("deaf", func(context.Context, *executor.Task) (any, error) { return "done", nil })
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Steps[0].Output) != `"done"` {
		t.Fatalf("status %v error %v output %s; want completed by the second worker", w.Status, w.Error, toJSON(w.Steps[0].Output))
	}
}
