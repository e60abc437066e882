package executor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A command of a paused definition is held, also one whose record does not
// name its definition (stored by an earlier version: the run's first
// record does), and runs attempt 1 after the resume.
func TestPausedDefinitionsCommandIsHeld(t *testing.T) {
	b, calls := countingBench(t)
	b.pauseSeen("d")
	b.command("wf", "t", events.RetryPolicy{MaxAttempts: 1})
	b.heldUntilResumed(calls, func() {})
}

// countingBench returns a bench whose task type "t" completes, counting
// its calls.
func countingBench(t *testing.T) (*bench, *atomic.Int32) {
	t.Helper()
	calls := new(atomic.Int32)
	return newBench(t, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) {
		calls.Add(1)
		return "ok", nil
	}}), calls
}

// pauseSeen pauses definition def and waits until the worker's watched
// copy shows it.
func (b *bench) pauseSeen(def string) {
	b.t.Helper()
	if err := b.store.PauseDefinition(b.ctx, def, eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		b.t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !b.w.Holds(def); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.t.Fatalf("the worker does not see the pause of %s", def)
		}
	}
}

// stopWatch stops the worker's watch of the pauses and waits until its
// copy changes no more: an update already on its way when the watch's
// context ends may still reach the copy until then.
func (b *bench) stopWatch() {
	b.t.Helper()
	b.w.stopWatch()
	select {
	case <-b.w.pauses.Ended():
	case <-time.After(5 * time.Second):
		b.t.Fatal("the worker's watch of the pauses did not end")
	}
}

// heldUntilResumed checks that the command of definition "d" just stored
// does not run (calls stays 0) for 1.5s, then that check holds, then
// resumes "d" and checks that the command's attempt 1 runs and completes.
func (b *bench) heldUntilResumed(calls *atomic.Int32, check func()) {
	b.t.Helper()
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if calls.Load() != 0 {
			b.t.Fatal("a command of a paused definition ran")
		}
	}
	check()
	if err := b.store.ResumeDefinition(b.ctx, "d"); err != nil {
		b.t.Fatal(err)
	}
	r := b.result(1)
	if r.Outcome != events.OutcomeCompleted || r.Attempt != 1 || calls.Load() != 1 {
		b.t.Fatalf("after resume: %+v, %d calls", r, calls.Load())
	}
	b.settled("t")
}

// A pause reaches a worker whose watched copy of the pauses lags the bucket
// (its watch being made again after a NATS node went down; here stopped):
// the worker reads the command's definition's pause from the bucket itself
// at most a second apart, holds the command, and runs it after the resume.
func TestAPauseReachesAWorkerWhoseWatchLags(t *testing.T) {
	b, calls := countingBench(t)
	// Another definition's pause reaches the copy; then the copy keeps
	// what it saw, and no pause of "d".
	b.pauseSeen("other")
	b.stopWatch()
	if err := b.store.PauseDefinition(b.ctx, "d", eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pauseReadEvery) // a read of the bucket before the pause is no longer taken
	b.commandOf("wf", "t", "d", events.RetryPolicy{MaxAttempts: 1})
	b.heldUntilResumed(calls, func() {
		if b.w.Holds("d") {
			t.Fatal("the stopped watch saw the pause: the test shows nothing")
		}
	})
}

// A resume reaches a worker whose watched copy still shows the pause (its
// watch lagging, or ended; here stopped): a read of the bucket begun while
// the copy showed the pause finds none, and the held command runs.
func TestAResumeReachesAWorkerWhoseWatchLags(t *testing.T) {
	b, calls := countingBench(t)
	b.pauseSeen("d")
	b.stopWatch()
	b.commandOf("wf", "t", "d", events.RetryPolicy{MaxAttempts: 1})
	b.heldUntilResumed(calls, func() {})
	if !b.w.Holds("d") {
		t.Fatal("the stopped watch saw the resume: the test shows nothing")
	}
}

// A held command whose run closes during the pause (canceled) is settled
// while the pause lasts, not redelivered every few seconds until the
// resume: it would count against the task type's commands in flight.
func TestAHeldCommandOfARunClosedIsSettled(t *testing.T) {
	b, calls := countingBench(t)
	b.pauseSeen("d")
	seq := b.commandOf("wf", "t", "d", events.RetryPolicy{MaxAttempts: 1})
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("t"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if info, err := cons.Info(b.ctx); err == nil && info.Delivered.Consumer >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command was never delivered")
		}
	}
	if _, err := b.store.Append(b.ctx, "wf", seq, events.Event{Type: events.TypeWorkflowCanceled, Time: time.Now().UTC(),
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	b.settled("t")
	if calls.Load() != 0 {
		t.Fatal("the command of the canceled run ran")
	}
}
