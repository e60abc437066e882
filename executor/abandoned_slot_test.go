package executor

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// flowCommand starts workflow wf and appends the command of its step "s",
// of task type task, with timeout and the step concurrency limit of key
// (scope "d/s"), as an orchestrator would; it returns the command's
// sequence.
func (b *bench) flowCommand(wf, task string, timeout time.Duration, retry events.RetryPolicy, key string, limit int) uint64 {
	b.t.Helper()
	return b.scheduled(wf, events.StepScheduled{Path: "s", Gen: 1, Task: task, Input: "in", Retry: retry, Timeout: timeout,
		IdempotencyKey: wf + "/s", FirstAttempt: 1, Definition: "d",
		Flow: &events.FlowLimits{Scope: "d/s", ConcurrencyKey: key, ConcurrencyLimit: limit}})
}

// A step's concurrency limit bounds its handlers running at once. An
// attempt whose handler ignores its context is given up on 5 s after its
// timeout and recorded as timed out, but its handler runs on (it cannot be
// stopped). Its slot was given back all the same, at once, so the next
// attempt on the key (another run's) ran beside it: two handlers at once
// under a limit of 1. The slot is now given back when the handler returns.
func TestAGivenUpHandlerStillRunningKeepsItsSlot(t *testing.T) {
	stopA := make(chan struct{})
	var once sync.Once
	releaseA := func() { once.Do(func() { close(stopA) }) }
	t.Cleanup(releaseA)
	var running, most atomic.Int32
	var ranB atomic.Bool
	b := newBench(t, map[string]Handler{"slotted": func(_ context.Context, task *Task) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if task.WorkflowID == "wf-a" {
			<-stopA // ignores its context: a call that does not honour it
			return "a", nil
		}
		ranB.Store(true)
		return "b", nil
	}})
	policy := events.RetryPolicy{MaxAttempts: 1}
	b.flowCommand("wf-a", "slotted", 500*time.Millisecond, policy, "k", 1)
	for deadline := time.Now().Add(10 * time.Second); running.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("wf-a's attempt never started")
		}
	}
	b.flowCommand("wf-b", "slotted", 500*time.Millisecond, policy, "k", 1) // held for the slot
	// wf-a's attempt is given up on after 0.5 s + 5 s and recorded as
	// timed out; its handler still runs. wf-b must wait for the slot as
	// long as it does.
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline) && !ranB.Load(); time.Sleep(20 * time.Millisecond) {
	}
	if ranB.Load() || most.Load() > 1 {
		h, _ := b.store.SlotHolders(b.ctx, "d/s", "k", time.Now())
		t.Fatalf("wf-b's attempt ran while wf-a's given-up handler still ran (at most %d handlers at once under a limit of 1; slot holders now %v)",
			most.Load(), h)
	}
	// Once wf-a's handler returns, its slot is given back: wf-b runs.
	releaseA()
	for deadline := time.Now().Add(10 * time.Second); !ranB.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			h, _ := b.store.SlotHolders(b.ctx, "d/s", "k", time.Now())
			t.Fatalf("wf-b never ran after wf-a's given-up handler returned (slot holders %v)", h)
		}
	}
}

// A handler given up on may return while the worker stops, right after
// the last handler the stop waits for: its slot was given back on a
// goroutine added then to the handlers the stop waits for, from none,
// while that wait returned (sync.WaitGroup's "reused before previous Wait
// has returned" panic; a race under -race). A goroutine the worker does
// not count adds none to its handlers now.
func TestAGivenUpHandlerReturningAsTheWorkerStopsAddsNoHandler(t *testing.T) {
	stopA, stopH := make(chan struct{}), make(chan struct{})
	var onceA, onceH sync.Once
	releaseA := func() { onceA.Do(func() { close(stopA) }) }
	releaseH := func() { onceH.Do(func() { close(stopH) }) }
	t.Cleanup(releaseA)
	t.Cleanup(releaseH)
	var startedA, startedH atomic.Bool
	b := newBench(t, map[string]Handler{
		"slotted": func(context.Context, *Task) (any, error) {
			startedA.Store(true)
			<-stopA // ignores its context: given up on
			return "a", nil
		},
		"held": func(context.Context, *Task) (any, error) {
			startedH.Store(true)
			<-stopH // what the stop waits for
			return "h", nil
		},
	})
	policy := events.RetryPolicy{MaxAttempts: 1}
	b.command("wf-h", "held", policy)
	b.flowCommand("wf-a", "slotted", 500*time.Millisecond, policy, "k", 1)
	for deadline := time.Now().Add(10 * time.Second); !startedA.Load() || !startedH.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the handlers never started")
		}
	}
	// wf-a's attempt is given up on after 0.5 s + 5 s and recorded as
	// timed out (the first result); its handler runs on.
	if r := b.result(1); r.WorkflowID != "wf-a" {
		t.Fatalf("first result of %s; want wf-a's, timed out", r.WorkflowID)
	}
	b.settled("slotted")
	draining := make(chan struct{})
	testHookDrain = func() { close(draining) }
	t.Cleanup(func() { testHookDrain = nil })
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- b.w.Stop(ctx)
	}()
	select {
	case <-draining:
	case <-time.After(10 * time.Second):
		t.Fatal("the stop never began to wait for its handlers")
	}
	// The stop waits for wf-h's handler: it returns and reports, and then
	// wf-a's handler returns.
	releaseH()
	if r := b.result(2); r.WorkflowID != "wf-h" {
		t.Fatalf("second result of %s; want wf-h's", r.WorkflowID)
	}
	b.settled("held")
	releaseA()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stop never returned")
	}
}
