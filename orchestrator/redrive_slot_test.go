package orchestrator

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// An input of a failed run handled while the run is redriven (a late
// result, a timer of the failed generation, a redelivery) follows up the
// failed state it read: it gives the run's slot back. The redrive, handled
// meanwhile by another orchestrator, has queued the run again and admitted
// it, so the stale give-back frees the slot of a run that now runs: the
// next run of the key is admitted beside it, past the limit.
//
// The interleaving is made by hand: orchestrator a reads the failed run
// (as process's loadFor does), orchestrator b handles the redrive and its
// admission, then a runs the follow-ups of what it read (as process's
// reconcile does, with nothing to commit).
func TestAStaleGiveBackDoesNotFreeARedrivenRunsSlot(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const wf = "r1"
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // queued, takes the free slot, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: "boom", Message: "no"}, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, results)) // the run fails; its slot given back
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("after the failure: %+v, %v", s, err)
	}

	// An input of the failed generation: its result again (an ack lost),
	// for a to handle.
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 2, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	d := next(t, results)
	// a reads the failed run for it.
	stale, _, err := a.load(r.ctx, wf, cmd)
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile the run is redriven (as RetryWorkflow appends it) and b
	// handles that: queued again, admitted, its step scheduled again.
	last, err := r.store.LastSeq(r.ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.AppendExternal(r.ctx, wf, &last, "retry/"+wf, events.Event{Type: events.TypeWorkflowRetried,
		Time: time.Now().UTC(), WorkflowRetried: &events.WorkflowRetried{}}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, ext)) // the redrive: queued, slot taken, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled again
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil }); n != 2 {
		t.Fatalf("the redriven run scheduled %d commands, want 2", n)
	}
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders) != 1 || s.Holders[0] != wf {
		t.Fatalf("after the redrive: %+v, %v; want %s holding the slot", s, err, wf)
	}

	// a now runs the follow-ups of the failed state it read.
	if err := a.reconcile(r.ctx, wf, stale, d); err != nil {
		t.Fatal(err)
	}
	s, err := r.store.ReadSlots(r.ctx, "q", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Holders) != 1 || s.Holders[0] != wf {
		// Show what it leads to: another run of the key is admitted
		// while the redriven one runs.
		const other = "r2"
		r.start(other, "q")
		b.handle(r.ctx, next(t, ext))
		n, _ := r.count(other, func(ev events.Event) bool { return ev.WorkflowAdmitted != nil })
		t.Fatalf("a give-back of the failed state, read before the redrive, freed the slot of the redriven run %s, which runs "+
			"(slots now %+v); %s admitted %d time(s) beside it, at limit 1", wf, s, other, n)
	}
}
