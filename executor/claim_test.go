package executor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// An attempt that runs longer than the task consumer's ack wait, its
// handler never heartbeating, keeps its command claimed (the worker's own
// heartbeats) and runs once: redelivered under it, the same attempt would
// run again beside itself, its effect made twice.
func TestALongAttemptRunsOnce(t *testing.T) {
	var calls atomic.Int32
	b := newBenchWith(t, eventstore.Config{ResultReplyWait: -1, TaskAckWait: time.Second}, map[string]Handler{
		"slow": func(ctx context.Context, _ *Task) (any, error) {
			calls.Add(1)
			select {
			case <-time.After(2500 * time.Millisecond): // two and a half ack waits
			case <-ctx.Done():
			}
			return "done", nil
		}})
	b.command("wf-slow", "slow", events.RetryPolicy{MaxAttempts: 3})
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || r.Attempt != 1 {
		t.Fatalf("result %+v (error %+v)", r, r.Error)
	}
	b.settled("slow")
	if n := calls.Load(); n != 1 {
		t.Fatalf("the attempt's handler ran %d times; want once", n)
	}
}
