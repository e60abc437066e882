package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A handler that finishes its work when a worker's stop cuts it short (its
// stop's deadline passed) and returns its output, within the grace the
// worker gives it, has made its effect: its result is reported, not
// dropped for its command to run again on the next worker, as it was when
// the report was made with the stop's canceled context.
func TestAHandlerThatFinishesAtTheStopsDeadlineIsNotRunAgain(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: finishing
steps:
  - id: s
    task: finish
`)
	var effects atomic.Int32
	started := make(chan struct{}, 1)
	first := e.worker("finish", func(ctx context.Context, _ *executor.Task) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		// The work under way (a call already sent, say) completes all
		// the same; the handler returns its outcome.
		effects.Add(1)
		return "first", nil
	})
	id := e.start("finishing", "finishing-1", ``)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first worker never ran the step")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := first.Stop(stopCtx); err == nil {
		t.Fatal("the stop did not reach its deadline")
	}
	e.worker("finish", func(context.Context, *executor.Task) (any, error) {
		effects.Add(1)
		return "second", nil
	})
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if n := effects.Load(); n != 1 || toJSON(w.Steps[0].Output) != `"first"` {
		t.Fatalf("the step's effect was made %d times (output %s): the first handler's outcome, returned within the stop's grace, was dropped and the step run again",
			n, toJSON(w.Steps[0].Output))
	}
}
