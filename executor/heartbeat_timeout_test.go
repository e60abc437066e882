package executor

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A heartbeat moves the attempt's deadline a timeout on: a handler that
// heartbeats more often than its timeout runs on past it and completes,
// rather than timing out while it still makes progress.
func TestAHeartbeatMovesTheAttemptsDeadline(t *testing.T) {
	b := newBench(t, map[string]Handler{"beats": func(ctx context.Context, task *Task) (any, error) {
		for range 10 { // 2 s, two timeouts
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			task.Heartbeat()
		}
		return "done", nil
	}})
	var zero uint64
	seq, err := b.store.AppendExternal(b.ctx, "wf-beats", &zero, "start/wf-beats", events.Event{Type: events.TypeWorkflowStarted,
		Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf-beats", Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Append(b.ctx, "wf-beats", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "s", Gen: 1, Task: "beats", Timeout: time.Second,
			Retry: events.RetryPolicy{MaxAttempts: 1}, FirstAttempt: 1}}); err != nil {
		t.Fatal(err)
	}
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || r.Output != "done" {
		t.Fatalf("result %+v (error %+v); want the heartbeating attempt completed", r, r.Error)
	}
}

// A heartbeat renews its attempt's concurrency slot beside the handler:
// a renewal NATS is slow to answer (a node lost) held up the heartbeats
// after it, and with them the resets of the attempt's deadline, so a
// handler that heartbeat every 100 ms under a 1 s timeout timed out.
// (Found by the chaos run's slotted heartbeating steps.)
func TestASlowSlotRenewalDoesNotTimeTheAttemptOut(t *testing.T) {
	// The executor's clock runs fast, so a renewal (every 30 s of it) is
	// due every 0.3 s; each takes 1.5 s to write.
	start := time.Now()
	fast := func() time.Time { return start.Add(100 * time.Since(start)) }
	testHookRenew = func() { time.Sleep(1500 * time.Millisecond) }
	t.Cleanup(func() { testHookRenew = nil })
	b := newBenchWorker(t, eventstore.Config{ResultReplyWait: -1}, Config{Now: fast}, map[string]Handler{"beats": func(ctx context.Context, task *Task) (any, error) {
		for range 25 { // 2.5 s
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
			task.Heartbeat()
		}
		return "done", nil
	}})
	b.flowCommand("wf-slow", "beats", time.Second, events.RetryPolicy{MaxAttempts: 1}, "k", 1)
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || r.Output != "done" {
		t.Fatalf("result %+v (error %+v); want the heartbeating attempt completed", r, r.Error)
	}
}
