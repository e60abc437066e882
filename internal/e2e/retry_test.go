package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// attempts records calls of a handler by idempotency key.
type attempts struct {
	mu    sync.Mutex
	calls map[string][]time.Time
	nums  map[string][]int
}

func newAttempts() *attempts {
	return &attempts{calls: map[string][]time.Time{}, nums: map[string][]int{}}
}

func (a *attempts) record(t *executor.Task) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[t.IdempotencyKey] = append(a.calls[t.IdempotencyKey], time.Now())
	a.nums[t.IdempotencyKey] = append(a.nums[t.IdempotencyKey], t.Attempt)
	return len(a.calls[t.IdempotencyKey])
}

func (a *attempts) count(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls[key])
}

func TestRetriesFollowPolicy(t *testing.T) {
	calls := newAttempts()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		// flaky fails twice, then succeeds.
		"flaky": func(ctx context.Context, task *executor.Task) (any, error) {
			if n := calls.record(task); n <= 2 {
				return nil, executor.NewError("unavailable", "try %d failed", n)
			}
			return "ok", nil
		},
		"bad": func(ctx context.Context, task *executor.Task) (any, error) {
			calls.record(task)
			return nil, executor.NonRetryable(errors.New("the input is wrong"))
		},
		"typed": func(ctx context.Context, task *executor.Task) (any, error) {
			calls.record(task)
			return nil, executor.NewError("bad_request", "listed as non-retryable")
		},
		"always": func(ctx context.Context, task *executor.Task) (any, error) {
			calls.record(task)
			return nil, errors.New("still broken")
		},
	}})
	for _, task := range []string{"flaky", "bad", "typed", "always"} {
		e.putDef(`
name: ` + task + `
steps:
  - id: s
    task: ` + task + `
    retry: { max_attempts: 3, initial_interval: 300ms, backoff_coefficient: 2, max_interval: 1s, non_retryable: [bad_request] }
`)
	}
	t.Run("fails twice then succeeds", func(t *testing.T) {
		id := e.start("flaky", "flaky-run", ``)
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("status %v error %v", w.Status, w.Error)
		}
		var fails []time.Time
		var completedAttempt int32
		for _, ev := range e.history(id) {
			switch ev.Type {
			case "StepAttemptFailed":
				fails = append(fails, ev.Time.AsTime())
				if int(ev.Attempt) != len(fails) {
					t.Fatalf("attempt failure %d recorded as attempt %d", len(fails), ev.Attempt)
				}
			case "StepCompleted":
				completedAttempt = ev.Attempt
				fails = append(fails, ev.Time.AsTime())
			}
		}
		if len(fails) != 3 || completedAttempt != 3 {
			t.Fatalf("want 2 failed attempts then success at attempt 3, got %d events, completed at %d", len(fails), completedAttempt)
		}
		// Gaps are at least the policy's backoff: 300ms, then 600ms.
		for i, want := range []time.Duration{300 * time.Millisecond, 600 * time.Millisecond} {
			if gap := fails[i+1].Sub(fails[i]); gap < want {
				t.Fatalf("gap before attempt %d is %s, want >= %s", i+2, gap, want)
			}
		}
		if w.Steps[0].Attempts != 3 {
			t.Fatalf("step attempts %d, want 3", w.Steps[0].Attempts)
		}
		if n := calls.count(id + "/s"); n != 3 {
			t.Fatalf("handler ran %d times, want 3", n)
		}
	})
	for _, tc := range []struct{ task, errType string }{{"bad", "error"}, {"typed", "bad_request"}} {
		t.Run("non-retryable "+tc.task, func(t *testing.T) {
			id := e.start(tc.task, "", ``)
			w := e.waitClosed(id, 20*time.Second)
			if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
				t.Fatalf("status %v", w.Status)
			}
			if n := calls.count(id + "/s"); n != 1 {
				t.Fatalf("handler ran %d times, want 1", n)
			}
			if w.Error.Type != tc.errType || w.Error.StepPath != "s" {
				t.Fatalf("error %v", w.Error)
			}
		})
	}
	t.Run("attempts exhausted", func(t *testing.T) {
		id := e.start("always", "", ``)
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
			t.Fatalf("status %v", w.Status)
		}
		if n := calls.count(id + "/s"); n != 3 {
			t.Fatalf("handler ran %d times, want 3", n)
		}
		h := e.history(id)
		last := h[len(h)-2]
		if last.Type != "StepFailed" || last.Attempt != 3 {
			t.Fatalf("want StepFailed at attempt 3 before WorkflowFailed, got %s attempt %d", last.Type, last.Attempt)
		}
	})
}

// An executor that dies mid-step (no ack, no heartbeat) loses the step to
// another executor after the ack wait, with the same idempotency key. The
// lost run recorded nothing, so the next one is the same attempt (1).
func TestExecutorDeathRedelivers(t *testing.T) {
	calls := newAttempts()
	var first atomic.Bool
	started := make(chan struct{})
	release := make(chan struct{})
	block := func(ctx context.Context, task *executor.Task) (any, error) {
		calls.record(task)
		if first.CompareAndSwap(false, true) {
			close(started)
			select { // hang: this executor is as good as dead
			case <-ctx.Done():
			case <-release:
			}
			return nil, ctx.Err()
		}
		return map[string]any{"attempt": task.Attempt, "key": task.IdempotencyKey}, nil
	}
	e := newEnv(t, envOpts{noExecutor: true, taskAckWait: time.Second})
	dying := e.startNode(envOpts{handlers: map[string]executor.Handler{"slow": block}, taskAckWait: time.Second}, false, false)
	t.Cleanup(func() { close(release) }) // runs before the node's own cleanup
	e.putDef(`
name: slow
steps:
  - id: work
    task: slow
    timeout: 1m
`)
	id := e.start("slow", "", ``)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("step never started")
	}
	// Kill the executor's connection: no ack, no nak, no heartbeat reaches NATS.
	dying.NC.Close()
	e.startNode(envOpts{handlers: map[string]executor.Handler{"slow": block}, taskAckWait: time.Second}, false, false)
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if got := toJSON(w.Output); got != `{"attempt":1,"key":"`+id+`/work"}` {
		t.Fatalf("output %s", got)
	}
	calls.mu.Lock()
	defer calls.mu.Unlock()
	if len(calls.calls) != 1 || len(calls.calls[id+"/work"]) != 2 {
		t.Fatalf("calls by key: %v", calls.nums)
	}
}

// An attempt that outlives its timeout fails with type "timeout" and is
// retried; an attempt that heartbeats may run longer than the timeout.
func TestStepTimeoutAndHeartbeat(t *testing.T) {
	calls := newAttempts()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"sleepy": func(ctx context.Context, task *executor.Task) (any, error) {
			n := calls.record(task)
			for i := 0; i < 15; i++ { // 15 x 100ms, past the 1s timeout
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
				if n > 1 {
					task.Heartbeat()
				}
			}
			return n, nil
		},
	}})
	e.putDef(`
name: sleepy
steps:
  - id: nap
    task: sleepy
    timeout: 1s
    retry: { max_attempts: 2, initial_interval: 100ms }
`)
	id := e.start("sleepy", "", ``)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "2" {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	h := e.history(id)
	var failed *weftv1.HistoryEvent
	for _, ev := range h {
		if ev.Type == "StepAttemptFailed" {
			failed = ev
		}
	}
	if failed == nil || failed.Attempt != 1 || failed.Data.GetStructValue().Fields["error"].GetStructValue().Fields["type"].GetStringValue() != "timeout" {
		t.Fatalf("want attempt 1 to time out, history %v", types(h))
	}
}

// A server that crashes can lose its consumers' latest state and deliver
// again, as new, step commands that were run and acked. An executor that
// connected after such a command was stored checks history before running
// it, and does not run a recorded step again. (Losing the state is done
// here by deleting the task consumer; a new one delivers every command.)
func TestCommandDeliveredAgainAsNew(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	var mu sync.Mutex
	calls := map[string]int{}
	count := func(_ context.Context, task *executor.Task) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[task.IdempotencyKey]++
		return nil, nil
	}
	o := envOpts{handlers: map[string]executor.Handler{"count": count}}
	first := e.startNode(o, false, false)
	e.putDef(`
name: counted
steps:
  - { id: one, task: count }
`)
	var ids []string
	for i := range 3 {
		ids = append(ids, e.start("counted", fmt.Sprintf("counted-%d", i), ""))
	}
	for _, id := range ids {
		e.waitClosed(id, 20*time.Second)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx(t), eventstore.HistoryStream, "weft-task-count"); err != nil {
		t.Fatal(err)
	}
	e.startNode(o, false, false)
	// The new consumer delivers the three old commands again as first
	// deliveries; wait until all are settled.
	eventually(t, 20*time.Second, "the old commands to be settled", func() bool {
		cons, err := js.Consumer(ctx(t), eventstore.HistoryStream, "weft-task-count")
		if err != nil {
			return false
		}
		info, err := cons.Info(ctx(t))
		return err == nil && info.Delivered.Stream > 0 && info.NumPending == 0 && info.NumAckPending == 0
	})
	// A new workflow runs as usual.
	e.waitClosed(e.start("counted", "counted-new", ""), 20*time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, id := range append(ids, "counted-new") {
		if n := calls[id+"/one"]; n != 1 {
			t.Errorf("%s/one ran %d times, want once (calls: %v)", id, n, calls)
		}
	}
}
