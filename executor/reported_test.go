package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// flakyPolicy retries a failed attempt after 100 ms, once.
var flakyPolicy = events.RetryPolicy{MaxAttempts: 2, InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaxInterval: time.Second}

// flakyBench is a bench whose task type flaky always fails; attempts
// returns the attempts its handler ran, in order.
func flakyBench(t *testing.T) (b *bench, attempts func() []int) {
	var mu sync.Mutex
	var ran []int
	b = newBench(t, map[string]Handler{"flaky": func(_ context.Context, task *Task) (any, error) {
		mu.Lock()
		ran = append(ran, task.Attempt)
		mu.Unlock()
		return nil, errors.New("not today")
	}})
	return b, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), ran...)
	}
}

// ranOnce checks that, for 3 s (thirty of flakyPolicy's first retry
// delays) in which nothing records attempt 1's failure, the handler does
// not run again; the look ends early once it has run five times.
func ranOnce(t *testing.T, attempts func() []int, why string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(attempts()) < 5; time.Sleep(20 * time.Millisecond) {
	}
	if got := attempts(); len(got) != 1 {
		t.Fatalf("the handler ran %d times (attempts %v) while attempt 1's reported failure waited to be recorded%s; want once", len(got), got, why)
	}
}

// A failed attempt whose result was reported to the results stream (no
// orchestrator answered in time, so the executor gave the command back
// with the retry delay) but is not recorded in history yet, as when the
// orchestrators lag or are down, is not run again: the executor numbered
// the next delivery's attempt from history alone, and ran attempt 1 again
// at every retry delay for as long as the lag lasted, past max_attempts
// and the backoff. Once the failure is recorded (and its result taken
// from the stream), attempt 2 runs.
func TestAReportedFailureNotYetRecordedIsNotRunAgain(t *testing.T) {
	b, attempts := flakyBench(t)
	cmd := b.command("wf-lag", "flaky", flakyPolicy)
	r := b.result(1)
	if r.Outcome != events.OutcomeAttemptFailed || r.Attempt != 1 {
		t.Fatalf("first result %+v", r)
	}
	ranOnce(t, attempts, "")

	// An orchestrator records the failure and takes the result.
	if _, err := b.store.Append(b.ctx, "wf-lag", cmd, events.Event{Type: events.TypeStepAttemptFailed, Time: time.Now().UTC(),
		StepAttemptFailed: &events.StepAttemptFailed{Path: "s", Gen: 1, Attempt: 1, Error: *r.Error, RetryDelay: r.RetryDelay}}); err != nil {
		t.Fatal(err)
	}
	results, err := b.js.Stream(b.ctx, eventstore.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := results.Purge(b.ctx, jetstream.WithPurgeSubject("weft.r.wf-lag")); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); len(attempts()) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("attempt 2 never ran once attempt 1's failure was recorded: attempts %v", attempts())
		}
	}
	if got := attempts(); got[1] != 2 {
		t.Fatalf("attempts %v; want 1 then 2", got)
	}
}

// A run whose other steps' outcomes wait in the results stream too (a
// fan-out of 300 whose results the lagging orchestrators have not taken
// yet) is the case the check for a reported, unrecorded attempt is for.
// A first version looked through the run's first 256 waiting results only
// and, not finding this command's there, answered "not reported": the
// failed attempt 1 ran again at every retry delay for as long as the
// orchestrators lagged.
func TestAReportedFailureBehindManyWaitingResultsIsNotRunAgain(t *testing.T) {
	b, attempts := flakyBench(t)
	const wf = "wf-fanout"
	// The outcomes of the fan-out's other steps, reported and not yet
	// recorded, ahead of this step's in the stream.
	for i := range 300 {
		if err := b.store.PublishResult(b.ctx, events.Result{WorkflowID: wf, Path: fmt.Sprintf("fan[%d]", i), Gen: 1, Attempt: 1,
			Cmd: uint64(1000 + i), Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	b.command(wf, "flaky", flakyPolicy)
	for deadline := time.Now().Add(10 * time.Second); len(attempts()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("attempt 1 never ran")
		}
	}
	ranOnce(t, attempts, " behind 300 other waiting results")
}
