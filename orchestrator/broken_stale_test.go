package orchestrator

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// "Cannot go on" is judged on the state an input is decided on, and
// that may be a cached state behind the history (a result's command is
// in it, so it is not read again). A conflict would read the history
// again and decide afresh; a failure of the "cannot go on" kind is
// recorded at once, on whatever the history holds since. Here a cancel
// was recorded after the cached state: decided afresh, the result leads
// to WorkflowCanceled, well within the history limit; decided on the
// cached state it passes the limit, and the run is failed instead of
// canceled.
func TestABrokenDecisionOnAStaleCacheIsDecidedAgainAfresh(t *testing.T) {
	r := newRig(t)
	r.putDef("two", twoTasks)
	sh := r.shard()
	sh.o.cfg.MaxHistoryEvents = 3 // a's result and b's command pass it
	ext, results := r.feeds()
	const wf = "stale-limit"
	r.start(wf, "two")
	sh.handle(r.ctx, next(t, ext)) // a scheduled; the state stays cached
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	// A cancel is recorded (its input not yet handled), then a's result
	// comes to the orchestrator holding the state from before it.
	r.requestCancel(wf, "test")
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "A", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results))
	sh.handle(r.ctx, next(t, ext)) // the cancel's input
	failed, _ := r.count(wf, func(ev events.Event) bool {
		return ev.WorkflowFailed != nil && ev.WorkflowFailed.Error.Type == workflow.ErrTypeLimit
	})
	canceled, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCanceled != nil })
	if failed != 0 || canceled != 1 {
		t.Fatalf("the run canceled before the result was decided ended with %d limit failure(s) and %d cancel(s); want it canceled: the limit was judged on a cached state behind the cancel",
			failed, canceled)
	}
}
