package orchestrator

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/runs"
)

// A run that cannot go on (here: its history would pass the limit) is
// failed, and the input that found it so is then recorded on the failed
// run, as any late result is. When that second recording fails (a NATS
// election, a timeout: any error that is not "cannot go on"), failBroken
// gives the input back, but the state it had loaded, with the input's
// event applied and never stored, stayed cached. The input's next
// delivery finds the event "already applied" in that state and is acked
// as done: the step's outcome is never recorded, and the cached state
// disagrees with the fold of the history it claims to be.
func TestAFailedFollowUpOfABrokenRunLeavesNoPhantomState(t *testing.T) {
	r := newRig(t)
	r.putDef("two", twoTasks)
	sh := r.shard()
	sh.o.cfg.MaxHistoryEvents = 3 // a's result, and b's command, pass it
	ext, results := r.feeds()
	const wf = "phantom-1"
	r.start(wf, "two")
	sh.handle(r.ctx, next(t, ext)) // step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "A", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	// Once the failure is recorded, the next append fails as a NATS
	// hiccup would make it fail (the handling's context ends).
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	sh.o.cfg.Now = func() time.Time {
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n > 0 {
			cancel()
		}
		return time.Now()
	}
	sh.handle(ctx, next(t, results)) // the limit: failed; recording a's result fails
	sh.o.cfg.Now = time.Now
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("the run was not failed (%d WorkflowFailed); this test needs it failed", n)
	}
	if e := sh.cache[wf]; e != nil {
		folded, err := runs.ReadFromSnapshot(r.ctx, r.store, wf)
		if err != nil {
			t.Fatal(err)
		}
		runs.FoldMessages(folded.State, folded.Msgs)
		if got, want := e.st.Steps["a"].Status, folded.State.Steps["a"].Status; got != want || e.st.Events != folded.State.Events {
			t.Errorf("the cached state is not the fold of the history: step a %s (%d events) cached, %s (%d events) in history",
				got, e.st.Events, want, folded.State.Events)
		}
	}
	sh.handle(r.ctx, next(t, results)) // the result, delivered again
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepCompleted != nil && ev.StepCompleted.Path == "a" }); n != 1 {
		t.Fatalf("step a's result was recorded %d times after its redelivery; want 1 (it was taken as already applied and acked)", n)
	}
}
