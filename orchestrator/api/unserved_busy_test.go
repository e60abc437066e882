package api

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// An executor whose handler slots are all busy asks for no commands (it
// holds no pull request open), and a consumer's time of last delivery is
// kept in the NATS server's memory only: once NATS restarts (or the
// consumer's leader changes), a type an executor is running commands of
// this very moment was warned of at PutDefinition as one "no executor
// has asked for commands of ... yet", though its consumer has delivered
// (and has a command in flight).
func TestABusyExecutorsTaskTypeIsNotWarnedOfAfterNATSRestarts(t *testing.T) {
	ns := natstest.Start(t)
	ctx := t.Context()
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureTaskConsumer(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once, unblock sync.Once
	w, err := executor.New(store, executor.Config{Concurrency: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Register("slow", func(ctx context.Context, _ *executor.Task) (any, error) {
		once.Do(func() { close(started) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		return "done", nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unblock.Do(func() { close(release) })
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})
	var zero uint64
	seq, err := store.AppendExternal(ctx, "wf-slow", &zero, "start/wf-slow", events.Event{Type: events.TypeWorkflowStarted,
		Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf-slow", Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, "wf-slow", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "s", Gen: 1, Task: "slow", Timeout: 10 * time.Minute,
			Retry: events.RetryPolicy{MaxAttempts: 1}, FirstAttempt: 1}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the executor never ran the command")
	}
	ns.Restart()
	// The consumer answers again, with the command still in flight.
	var q eventstore.TaskQueue
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if q, err = store.TaskQueueOf(ctx, "slow"); err == nil && q.InFlight > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer after the restart: %+v, %v", q, err)
		}
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: "name: d\nsteps:\n  - { id: s, task: slow }\n"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Msg.Warnings {
		if strings.Contains(w, `"slow"`) {
			t.Fatalf("warned %q while an executor runs a command of the type (its queue: %+v)", w, q)
		}
	}
}
