package executor

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// bench is a worker over a store of its own, with step commands appended
// by hand (as an orchestrator would) and results read off the results
// stream (no orchestrator takes them).
type bench struct {
	t     *testing.T
	ctx   context.Context
	ns    *natstest.Server
	store *eventstore.Store
	js    jetstream.JetStream
	w     *Worker
}

func newBench(t *testing.T, handlers map[string]Handler) *bench {
	t.Helper()
	return newBenchWith(t, eventstore.Config{ResultReplyWait: -1}, handlers)
}

// newBenchWith is newBench with its store opened with cfg.
func newBenchWith(t *testing.T, cfg eventstore.Config, handlers map[string]Handler) *bench {
	t.Helper()
	return newBenchWorker(t, cfg, Config{}, handlers)
}

// newBenchWorker is newBenchWith with its worker made with wcfg (logging
// nowhere).
func newBenchWorker(t *testing.T, cfg eventstore.Config, wcfg Config, handlers map[string]Handler) *bench {
	t.Helper()
	return newBenchOn(t, natstest.Start(t), cfg, wcfg, handlers)
}

// newBenchOn is newBenchWorker on NATS server ns.
func newBenchOn(t *testing.T, ns *natstest.Server, cfg eventstore.Config, wcfg Config, handlers map[string]Handler) *bench {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	nc := ns.Connect(t)
	store, err := eventstore.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	wcfg.Logger = slog.New(slog.DiscardHandler)
	w, err := New(store, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	for typ, h := range handlers {
		if err := w.Register(typ, h); err != nil {
			t.Fatal(err)
		}
		if err := store.EnsureTaskConsumer(ctx, typ); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(sctx)
	})
	return &bench{t: t, ctx: ctx, ns: ns, store: store, js: js, w: w}
}

// command starts workflow wf and appends the command of its step "s",
// of task type task under policy retry; it returns the command's sequence.
func (b *bench) command(wf, task string, retry events.RetryPolicy) uint64 {
	b.t.Helper()
	return b.commandOf(wf, task, "", retry)
}

// commandOf is command whose record names its definition def (as the
// orchestrators' do; "" as earlier versions' did not).
func (b *bench) commandOf(wf, task, def string, retry events.RetryPolicy) uint64 {
	b.t.Helper()
	return b.scheduled(wf, events.StepScheduled{Path: "s", Gen: 1, Task: task, Input: "in", Retry: retry,
		IdempotencyKey: wf + "/s", FirstAttempt: 1, Definition: def})
}

// scheduled starts workflow wf (of definition d) and appends step, as an
// orchestrator would; it returns the command's sequence.
func (b *bench) scheduled(wf string, step events.StepScheduled) uint64 {
	b.t.Helper()
	var zero uint64
	seq, err := b.store.AppendExternal(b.ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted,
		Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		b.t.Fatal(err)
	}
	cmd, err := b.store.Append(b.ctx, wf, seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(), StepScheduled: &step})
	if err != nil {
		b.t.Fatal(err)
	}
	return cmd
}

// result waits for the n'th result (from 1) in the results stream.
func (b *bench) result(n uint64) events.Result {
	b.t.Helper()
	stream, err := b.js.Stream(b.ctx, eventstore.ResultsStream)
	if err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(b.ctx)
		if err == nil && info.State.LastSeq >= n {
			break
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no result %d within 10s", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m, err := stream.GetMsg(b.ctx, n)
	if err != nil {
		b.t.Fatal(err)
	}
	r, err := events.DecodeResult(m.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// settled waits until the task consumer of task has nothing pending or
// unacked: the command was acked or terminated, not left to come back.
func (b *bench) settled(task string) {
	b.t.Helper()
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName(task))
	if err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(b.ctx)
		if err == nil && info.NumAckPending == 0 && info.NumPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the command of %s is still pending: %+v", task, info)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A handler error fails the attempt; the next attempt comes after the
// policy's delay, numbered from what history records, and the last one
// allowed fails the step.
func TestHandlerErrorRetriesPerPolicy(t *testing.T) {
	var attempts []int
	calls := make(chan int, 10)
	b := newBench(t, map[string]Handler{"flaky": func(_ context.Context, task *Task) (any, error) {
		calls <- task.Attempt
		return nil, errors.New("not today")
	}})
	policy := events.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Second, BackoffCoefficient: 2}
	cmd := b.command("wf-flaky", "flaky", policy)

	first := b.result(1)
	attempts = append(attempts, <-calls)
	if first.Outcome != events.OutcomeAttemptFailed || first.Attempt != 1 || first.Cmd != cmd ||
		first.RetryDelay != policy.Delay(1) || first.Error == nil || first.Error.Type != "error" || first.Error.Message != "not today" {
		t.Fatalf("first result %+v (error %+v)", first, first.Error)
	}
	// The orchestrator records the failed attempt before the retry is due.
	last, err := b.store.LastSeq(b.ctx, "wf-flaky")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.Append(b.ctx, "wf-flaky", last, events.Event{Type: events.TypeStepAttemptFailed, Time: time.Now().UTC(),
		StepAttemptFailed: &events.StepAttemptFailed{Path: "s", Gen: 1, Attempt: 1, Error: *first.Error, RetryDelay: first.RetryDelay}}); err != nil {
		t.Fatal(err)
	}
	second := b.result(2)
	attempts = append(attempts, <-calls)
	if second.Outcome != events.OutcomeFailed || second.Attempt != 2 || second.Error == nil || second.Error.Message != "not today" {
		t.Fatalf("second result %+v (error %+v)", second, second.Error)
	}
	if attempts[0] != 1 || attempts[1] != 2 {
		t.Fatalf("the handler ran attempts %v, want [1 2]", attempts)
	}
	b.settled("flaky")
	select {
	case a := <-calls:
		t.Fatalf("the handler ran again (attempt %d) after the last attempt", a)
	default:
	}
}

// A non-retryable error fails the step at its first attempt, whether the
// handler or the policy says so.
func TestNonRetryableFailsAtOnce(t *testing.T) {
	var calls atomic.Int32
	b := newBench(t, map[string]Handler{
		"refuses": func(context.Context, *Task) (any, error) {
			calls.Add(1)
			return nil, NonRetryable(NewError("bad_input", "no such order"))
		},
		"fatal": func(context.Context, *Task) (any, error) {
			calls.Add(1)
			return nil, NewError("fatal", "gone")
		},
	})
	policy := events.RetryPolicy{MaxAttempts: 5, InitialInterval: time.Millisecond, NonRetryable: []string{"fatal"}}
	b.command("wf-refuses", "refuses", policy)
	r := b.result(1)
	if r.Outcome != events.OutcomeFailed || r.Attempt != 1 || r.Error.Type != "bad_input" || r.Error.Message != "no such order" {
		t.Fatalf("handler's non-retryable error: result %+v (error %+v)", r, r.Error)
	}
	b.command("wf-fatal", "fatal", policy)
	r = b.result(2)
	if r.Outcome != events.OutcomeFailed || r.Attempt != 1 || r.Error.Type != "fatal" {
		t.Fatalf("policy's non-retryable type: result %+v (error %+v)", r, r.Error)
	}
	b.settled("refuses")
	b.settled("fatal")
	if n := calls.Load(); n != 2 {
		t.Fatalf("handlers ran %d times, want 2", n)
	}
}

// A handler that panics fails its attempt like an error, with error type
// panic; the worker goes on.
func TestPanicIsAFailedAttempt(t *testing.T) {
	b := newBench(t, map[string]Handler{"explodes": func(context.Context, *Task) (any, error) {
		panic("kaboom")
	}})
	b.command("wf-panic", "explodes", events.RetryPolicy{MaxAttempts: 1})
	r := b.result(1)
	if r.Outcome != events.OutcomeFailed || r.Error == nil || r.Error.Type != ErrTypePanic || !strings.Contains(r.Error.Message, "kaboom") {
		t.Fatalf("result %+v (error %+v)", r, r.Error)
	}
	b.settled("explodes")
	// The worker survived: the next command runs too.
	b.command("wf-panic-2", "explodes", events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Hour})
	if r := b.result(2); r.Outcome != events.OutcomeAttemptFailed || r.Error.Type != ErrTypePanic || r.RetryDelay != time.Hour {
		t.Fatalf("second command: result %+v (error %+v)", r, r.Error)
	}
}

// A handler that ends its goroutine without returning (runtime.Goexit:
// t.FailNow in a handler under test, say) fails its attempt at once, as a
// panic does, rather than leaving it to wait out its timeout.
func TestAHandlerThatExitsItsGoroutineIsAFailedAttempt(t *testing.T) {
	b := newBench(t, map[string]Handler{"exits": func(context.Context, *Task) (any, error) {
		runtime.Goexit()
		return nil, nil
	}})
	b.scheduled("wf-goexit", events.StepScheduled{Path: "s", Gen: 1, Task: "exits", Input: "in",
		Retry: events.RetryPolicy{MaxAttempts: 1}, IdempotencyKey: "wf-goexit/s", FirstAttempt: 1, Timeout: time.Hour})
	r := b.result(1)
	if r.Outcome != events.OutcomeFailed || r.Error == nil || r.Error.Type != ErrTypePanic {
		t.Fatalf("result %+v (error %+v)", r, r.Error)
	}
	b.settled("exits")
}

// A command of another task type than the consumer's is not run: its
// step fails with wrong_task_type and the command is terminated.
func TestWrongTaskTypeIsRefused(t *testing.T) {
	var runs atomic.Int32
	b := newBench(t, map[string]Handler{"mine": func(context.Context, *Task) (any, error) {
		runs.Add(1)
		return "ran", nil
	}})
	var zero uint64
	wf := "wf-wrong"
	seq, err := b.store.AppendExternal(b.ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted,
		Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	// A command of type "other" on the subject of type "mine", as a
	// consumer whose filter another type rewrote would deliver it.
	data, err := events.Encode(events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "s", Gen: 1, Task: "other", FirstAttempt: 1, Retry: events.RetryPolicy{MaxAttempts: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("weft.h." + wf + ".task.mine")
	msg.Data = data
	ack, err := b.js.PublishMsg(b.ctx, msg, jetstream.WithExpectLastSequenceForSubject(seq, "weft.h."+wf+".>"))
	if err != nil {
		t.Fatal(err)
	}
	r := b.result(1)
	if r.Outcome != events.OutcomeFailed || r.Error == nil || r.Error.Type != ErrTypeWrongTaskType || r.Cmd != ack.Sequence {
		t.Fatalf("result %+v (error %+v)", r, r.Error)
	}
	b.settled("mine")
	if n := runs.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}

// Start and Stop: a second Start fails, Register after Start is refused,
// Stop twice is fine.
func TestWorkerLifecycle(t *testing.T) {
	b := newBench(t, map[string]Handler{"noop": func(context.Context, *Task) (any, error) { return nil, nil }})
	if err := b.w.Start(b.ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	if err := b.w.Register("late", func(context.Context, *Task) (any, error) { return nil, nil }); err == nil {
		t.Fatal("Register after Start succeeded")
	}
	for range 2 {
		if err := b.w.Stop(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(b.store, Config{Concurrency: -1}); err == nil || err.Error() != "executor: Concurrency must not be negative, got -1" {
		t.Fatalf("negative Concurrency: %v", err)
	}
}

// outcome turns what a handler returned into the attempt's result.
func TestOutcome(t *testing.T) {
	policy := events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2, NonRetryable: []string{"fatal"}}
	cases := []struct {
		name    string
		out     any
		err     error
		tries   int
		outcome events.Outcome
		typ     string
		delay   time.Duration
	}{
		{"output", map[string]any{"n": 1}, nil, 1, events.OutcomeCompleted, "", 0},
		{"error retried", nil, errors.New("boom"), 2, events.OutcomeAttemptFailed, "error", 2 * time.Second},
		{"last attempt", nil, errors.New("boom"), 3, events.OutcomeFailed, "error", 0},
		{"non-retryable", nil, NonRetryable(errors.New("no")), 1, events.OutcomeFailed, "error", 0},
		{"policy's non-retryable", nil, NewError("fatal", "x"), 1, events.OutcomeFailed, "fatal", 0},
		{"retry after", nil, RetryAfter(5*time.Millisecond, errors.New("later")), 1, events.OutcomeAttemptFailed, "error", 5 * time.Millisecond},
		{"unrecordable output", func() {}, nil, 1, events.OutcomeFailed, ErrTypeOutput, 0},
		{"invalid UTF-8", nil, NewError("bad\xff", "msg\xfe"), 3, events.OutcomeFailed, "bad\uFFFD", 0},
	}
	for _, c := range cases {
		var res events.Result
		delay := outcome(&res, policy, c.out, c.err, c.tries, policy.MaxAttempts)
		typ := ""
		if res.Error != nil {
			typ = res.Error.Type
		}
		if res.Outcome != c.outcome || typ != c.typ || delay != c.delay || res.RetryDelay != c.delay {
			t.Errorf("%s: outcome %v type %q delay %s (recorded %s), want %v %q %s", c.name, res.Outcome, typ, delay, res.RetryDelay, c.outcome, c.typ, c.delay)
		}
	}
}

// consumerGoneConfig is the store's configuration in the tests of a task
// consumer deleted under a worker: a short ack wait, as a command the new
// consumer hands to a pull request of the deleted one, which nobody reads,
// comes back when it ends.
var consumerGoneConfig = eventstore.Config{ResultReplyWait: -1, TaskAckWait: time.Second}

// A task type's consumer deleted under a running worker is made again by
// the worker, whose commands then run.
func TestATaskConsumerDeletedIsMadeAgain(t *testing.T) {
	var calls atomic.Int32
	b := newBenchWith(t, consumerGoneConfig, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) {
		calls.Add(1)
		return "ok", nil
	}})
	if err := b.js.DeleteConsumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("t")); err != nil {
		t.Fatal(err)
	}
	b.command("wf", "t", events.RetryPolicy{MaxAttempts: 1})
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || calls.Load() != 1 {
		t.Fatalf("after the consumer was deleted: %+v, %d calls", r, calls.Load())
	}
	b.settled("t")
}

// A task type's consumer deleted and made again by another process
// delivers the commands it had delivered again, as new: a running worker
// finds its delivery sequence gone back, checks them against history, and
// does not run a step whose result is recorded again.
func TestAConsumerMadeAgainElsewhereRunsNothingTwice(t *testing.T) {
	var calls atomic.Int32
	b := newBenchWith(t, consumerGoneConfig, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) {
		calls.Add(1)
		return "ok", nil
	}})
	cmd := b.command("wf", "t", events.RetryPolicy{MaxAttempts: 1})
	b.result(1)
	b.settled("t")
	// The orchestrator records the result.
	if _, err := b.store.Append(b.ctx, "wf", cmd, events.Event{Type: events.TypeStepCompleted, Time: time.Now().UTC(),
		StepCompleted: &events.StepCompleted{Path: "s", Gen: 1, Attempt: 1, Output: "ok"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.js.DeleteConsumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("t")); err != nil {
		t.Fatal(err)
	}
	other, err := eventstore.Open(b.ctx, b.ns.Connect(t), consumerGoneConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.EnsureTaskConsumer(b.ctx, "t"); err != nil {
		t.Fatal(err)
	}
	b.settled("t") // delivered again and acked
	if n := calls.Load(); n != 1 {
		t.Fatalf("the step ran %d times", n)
	}
}

// A step command this executor cannot read (written by a newer version,
// say) is given back for one that can, not dropped: it stays pending.
func TestAnUnreadableCommandIsGivenBack(t *testing.T) {
	b := newBench(t, map[string]Handler{"t": func(_ context.Context, _ *Task) (any, error) { return "ok", nil }})
	data, err := msgpack.Marshal(events.Record{V: events.RecordVersion + 1, Events: []events.Event{{Type: "FromTheFuture", Time: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.js.Publish(b.ctx, "weft.h.wf.task.t", data); err != nil {
		t.Fatal(err)
	}
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("t"))
	if err != nil {
		t.Fatal(err)
	}
	var delivered time.Time
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := cons.Info(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.AckFloor.Stream != 0 {
			t.Fatalf("the unreadable command was settled: %+v", info)
		}
		if info.Delivered.Consumer >= 1 && delivered.IsZero() {
			delivered = time.Now()
		}
		if !delivered.IsZero() && time.Since(delivered) > time.Second {
			if info.NumAckPending != 1 {
				t.Fatalf("the unreadable command is not pending: %+v", info)
			}
			return // still pending a second after its delivery: given back
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command was not delivered: %+v", info)
		}
	}
}

// A failed attempt's retry delay holds though the executor that recorded it
// died before giving the command back with the delay: the command comes
// back when its ack wait ends, and the next executor gives it back until
// the retry is due, rather than running attempt 2 at once.
func TestARetryDelayOutlivesItsExecutor(t *testing.T) {
	var attempt2 atomic.Int32
	b := newBenchWith(t, consumerGoneConfig, nil) // a worker with no handlers yet
	seq := b.command("wf", "t", events.RetryPolicy{MaxAttempts: 3})
	// The first executor takes the command, its attempt 1 fails and is
	// recorded with an hour's delay, and it dies before giving it back.
	p, err := b.store.TaskPuller(b.ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got := 0; p.Fetch(b.ctx, 1, 5*time.Second, func(*eventstore.Delivery) { got++ }) != nil || got != 1 {
		t.Fatal("the first executor got no command")
	}
	if _, err := b.store.Append(b.ctx, "wf", seq, events.Event{Type: events.TypeStepAttemptFailed, Time: time.Now().UTC(),
		StepAttemptFailed: &events.StepAttemptFailed{Path: "s", Gen: 1, Attempt: 1, Error: events.Error{Type: "handler", Message: "boom"}, RetryDelay: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	w, err := New(b.store, Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Register("t", func(_ context.Context, task *Task) (any, error) {
		attempt2.Add(1)
		return "ok", nil
	})
	if err := w.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	})
	cons, err := b.js.Consumer(b.ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("t"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		info, err := cons.Info(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Delivered.Consumer >= 2 && info.NumWaiting > 0 && time.Since(info.Delivered.Last.Local()) > 500*time.Millisecond {
			break // delivered again, half a second ago
		}
		if time.Now().After(deadline) {
			t.Fatalf("the command was not delivered again: %+v", info)
		}
	}
	if n := attempt2.Load(); n != 0 {
		t.Fatal("attempt 2 ran though its retry is due in an hour")
	}
}

// A command that waited in the queue (the executor's handlers busy) for
// a run canceled meanwhile does not run: its first delivery reads the
// run's history as a redelivery does.
func TestAQueuedCommandOfACanceledRunDoesNotRun(t *testing.T) {
	releaseA, startedA := make(chan struct{}), make(chan struct{}, 1)
	var ranB atomic.Int32
	b := newBenchWorker(t, eventstore.Config{ResultReplyWait: -1}, Config{Concurrency: 1}, map[string]Handler{"t": func(_ context.Context, task *Task) (any, error) {
		if task.WorkflowID == "a" {
			startedA <- struct{}{}
			<-releaseA
			return "a", nil
		}
		ranB.Add(1) // an effect outside, a charge say
		return "b", nil
	}})
	b.command("a", "t", events.RetryPolicy{MaxAttempts: 1})
	<-startedA // the executor's only handler is busy
	seqB := b.command("b", "t", events.RetryPolicy{MaxAttempts: 1})
	stored := time.Now()
	if _, err := b.store.Append(b.ctx, "b", seqB, events.Event{Type: events.TypeWorkflowCanceled, Time: time.Now().UTC(),
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	// b's command has waited in the queue once a is let go.
	for time.Since(stored) <= queuedCheck {
		time.Sleep(10 * time.Millisecond)
	}
	close(releaseA)
	b.settled("t")
	if n := ranB.Load(); n != 0 {
		t.Fatalf("the command of canceled run b ran %d time(s)", n)
	}
}
