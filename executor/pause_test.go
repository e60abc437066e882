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
	var calls atomic.Int32
	b := newBench(t, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) {
		calls.Add(1)
		return "ok", nil
	}})
	if err := b.store.PauseDefinition(b.ctx, "d", eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !b.w.Holds("d"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker does not see the pause")
		}
	}
	b.command("wf", "t", events.RetryPolicy{MaxAttempts: 1})
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if calls.Load() != 0 {
			t.Fatal("a command of a paused definition ran")
		}
	}
	if err := b.store.ResumeDefinition(b.ctx, "d"); err != nil {
		t.Fatal(err)
	}
	r := b.result(1)
	if r.Outcome != events.OutcomeCompleted || r.Attempt != 1 || calls.Load() != 1 {
		t.Fatalf("after resume: %+v, %d calls", r, calls.Load())
	}
	b.settled("t")
}

// A pause reaches a worker whose watched copy of the pauses lags the bucket
// (its watch being made again after a NATS node went down; here stopped):
// the worker reads the command's definition's pause from the bucket itself
// at most a second apart, holds the command, and runs it after the resume.
func TestAPauseReachesAWorkerWhoseWatchLags(t *testing.T) {
	var calls atomic.Int32
	b := newBench(t, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) {
		calls.Add(1)
		return "ok", nil
	}})
	b.w.stopWatch() // the copy keeps what it saw: no pause
	if err := b.store.PauseDefinition(b.ctx, "d", eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pauseReadEvery) // a read of the bucket before the pause is no longer taken
	// A command that names its definition, as the orchestrators' do.
	var zero uint64
	seq, err := b.store.AppendExternal(b.ctx, "wf", &zero, "start/wf", events.Event{Type: events.TypeWorkflowStarted,
		Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Append(b.ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "s", Gen: 1, Task: "t", Input: "in", Retry: events.RetryPolicy{MaxAttempts: 1},
			IdempotencyKey: "wf/s", FirstAttempt: 1, Definition: "d"}}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if calls.Load() != 0 {
			t.Fatal("a command of a paused definition ran on a worker whose watch of the pauses lags")
		}
	}
	if b.w.Holds("d") {
		t.Fatal("the stopped watch saw the pause: the test shows nothing")
	}
	if err := b.store.ResumeDefinition(b.ctx, "d"); err != nil {
		t.Fatal(err)
	}
	r := b.result(1)
	if r.Outcome != events.OutcomeCompleted || r.Attempt != 1 || calls.Load() != 1 {
		t.Fatalf("after resume: %+v, %d calls", r, calls.Load())
	}
	b.settled("t")
}
