package executor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
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

// A command redelivered while the worker still runs its first delivery
// (its claim lapsed: NATS restarted, out of reach for longer than the ack
// wait) is not run again beside it on that worker: the redelivery waits
// for the first delivery, which settles the command.
func TestACommandRedeliveredWhileItRunsIsNotRunBesideItself(t *testing.T) {
	var calls atomic.Int32
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	ns := natstest.Start(t)
	b := newBenchOn(t, ns, eventstore.Config{ResultReplyWait: -1, TaskAckWait: 300 * time.Millisecond}, Config{}, map[string]Handler{
		"slow": func(context.Context, *Task) (any, error) {
			calls.Add(1)
			started <- struct{}{}
			<-release
			return "done", nil
		}})
	b.command("wf-redelivered", "slow", events.RetryPolicy{MaxAttempts: 3})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the command never ran")
	}
	ns.Restart() // longer than the ack wait: the command is delivered again
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("slow"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(b.ctx)
		if err == nil && info.NumRedelivered > 0 || err == nil && info.Delivered.Consumer >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command was not delivered again: %+v %v", info, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Time for a second run to begin, were it to.
	deadline = time.Now().Add(time.Second)
	for calls.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || r.Attempt != 1 {
		t.Fatalf("result %+v (error %+v)", r, r.Error)
	}
	b.settled("slow")
	if n := calls.Load(); n != 1 {
		t.Fatalf("the attempt's handler ran %d times on one worker; want once", n)
	}
}
