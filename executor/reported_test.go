package executor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A failed attempt whose result was reported to the results stream (no
// orchestrator answered in time, so the executor gave the command back
// with the retry delay) but is not recorded in history yet, as when the
// orchestrators lag or are down, is not run again: the executor numbered
// the next delivery's attempt from history alone, and ran attempt 1 again
// at every retry delay for as long as the lag lasted, past max_attempts
// and the backoff. Once the failure is recorded (and its result taken
// from the stream), attempt 2 runs.
func TestAReportedFailureNotYetRecordedIsNotRunAgain(t *testing.T) {
	var mu sync.Mutex
	var attempts []int
	snapshot := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), attempts...)
	}
	b := newBench(t, map[string]Handler{"flaky": func(_ context.Context, task *Task) (any, error) {
		mu.Lock()
		attempts = append(attempts, task.Attempt)
		mu.Unlock()
		return nil, errors.New("not today")
	}})
	policy := events.RetryPolicy{MaxAttempts: 2, InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaxInterval: time.Second}
	cmd := b.command("wf-lag", "flaky", policy)
	r := b.result(1)
	if r.Outcome != events.OutcomeAttemptFailed || r.Attempt != 1 {
		t.Fatalf("first result %+v", r)
	}
	// For 3 s, thirty of the policy's first retry delays, nothing records
	// attempt 1's failure: the handler must not run again. (The look ends
	// early once it has run five times.)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(snapshot()) < 5; time.Sleep(20 * time.Millisecond) {
	}
	if got := snapshot(); len(got) != 1 {
		t.Fatalf("the handler ran %d times (attempts %v) while attempt 1's reported failure waited to be recorded; want once",
			len(got), got)
	}

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
	for deadline := time.Now().Add(10 * time.Second); len(snapshot()) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("attempt 2 never ran once attempt 1's failure was recorded: attempts %v", snapshot())
		}
	}
	if got := snapshot(); got[1] != 2 {
		t.Fatalf("attempts %v; want 1 then 2", got)
	}
}
