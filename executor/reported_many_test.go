package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// A run whose other steps' outcomes wait in the results stream too (a
// fan-out of 300 whose results the lagging orchestrators have not taken
// yet) is the case the check for a reported, unrecorded attempt is for.
// A first version looked through the run's first 256 waiting results only
// and, not finding this command's there, answered "not reported": the
// failed attempt 1 ran again at every retry delay for as long as the
// orchestrators lagged.
func TestAReportedFailureBehindManyWaitingResultsIsNotRunAgain(t *testing.T) {
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
	const wf = "wf-fanout"
	// The outcomes of the fan-out's other steps, reported and not yet
	// recorded, ahead of this step's in the stream.
	for i := range 300 {
		if err := b.store.PublishResult(b.ctx, events.Result{WorkflowID: wf, Path: fmt.Sprintf("fan[%d]", i), Gen: 1, Attempt: 1,
			Cmd: uint64(1000 + i), Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	policy := events.RetryPolicy{MaxAttempts: 2, InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaxInterval: time.Second}
	b.command(wf, "flaky", policy)
	for deadline := time.Now().Add(10 * time.Second); len(snapshot()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("attempt 1 never ran")
		}
	}
	// For 3 s nothing records attempt 1's failure: the handler must not
	// run again (the look ends early once it has run five times).
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && len(snapshot()) < 5; time.Sleep(20 * time.Millisecond) {
	}
	if got := snapshot(); len(got) != 1 {
		t.Fatalf("the handler ran %d times (attempts %v) while attempt 1's reported failure waited to be recorded behind 300 other waiting results; want once",
			len(got), got)
	}
}
