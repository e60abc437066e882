package orchestrator

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// admissions returns how many times wf's history records it admitted.
func (r *rig) admissions(wf string) int {
	n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowAdmitted != nil })
	return n
}

// failStep publishes a failed result of wf's step a, scheduled by the
// record at cmd.
func (r *rig) failStep(wf string, cmd uint64, attempt int) {
	r.t.Helper()
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: attempt, Cmd: cmd,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: "boom", Message: "no"}, Time: time.Now().UTC()}); err != nil {
		r.t.Fatal(err)
	}
}

// A give-back of a failed run's slot looks at the run's history first (a
// redrive reopens it), then writes its key's slots. A redrive that lands
// between the look and the write, and is admitted there by another
// orchestrator, loses its slot to the give-back of the failed generation:
// the next run of the key is admitted beside it, past the limit.
func TestAGiveBackRacingARedriveKeepsTheRedrivenRunsSlot(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const wf = "r1"
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // queued, takes the free slot, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	r.failStep(wf, cmd, 1)
	b.handle(r.ctx, next(t, results)) // the run fails; b gives its slot back
	// A late input of the failed generation, for a to handle.
	r.failStep(wf, cmd, 2)
	late := next(t, results)

	// Between a's look at the run (still failed) and its write, the run is
	// redriven and b queues and admits it again.
	a.o.beforeGiveBack = func(string) {
		a.o.beforeGiveBack = nil
		last, err := r.store.LastSeq(r.ctx, wf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.AppendExternal(r.ctx, wf, &last, "retry/"+wf, events.Event{Type: events.TypeWorkflowRetried,
			Time: time.Now().UTC(), WorkflowRetried: &events.WorkflowRetried{}}); err != nil {
			t.Fatal(err)
		}
		b.handle(r.ctx, next(t, ext)) // the redrive: queued, takes the slot, admitted
		if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || !slices.Equal(s.Holders, []string{wf}) {
			t.Fatalf("after the redrive: %+v, %v; want %s holding the slot", s, err, wf)
		}
	}
	a.handle(r.ctx, late)
	if a.o.beforeGiveBack != nil {
		t.Fatal("a did not give the failed run's slot back")
	}
	s, err := r.store.ReadSlots(r.ctx, "q", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Holders, []string{wf}) {
		const other = "r2"
		r.start(other, "q")
		b.handle(r.ctx, next(t, ext)) // the admission of the redrive
		b.handle(r.ctx, next(t, ext)) // r2's start
		t.Fatalf("the give-back of the failed generation freed the slot of the redriven run %s, which runs (slots now %+v); "+
			"%s admitted %d time(s) beside it, at limit 1", wf, s, other, r.admissions(other))
	}
}

// A closed run whose give-back failed, deleted by retention before it was
// tried again, leaves its slot held under its id. freeClosedHolders frees
// such a slot once the id has no history; but once a run of another
// definition is started under the id, the slot is taken for that run's
// and never freed: the key's queue waits for ever.
func TestAGhostSlotOfAnIdStartedAgainIsFreed(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	r.putDef("w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	a, b := r.shard(), r.shard()
	ext, results := r.feeds()
	const wf = "r1"
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // queued, admitted
	b.handle(r.ctx, next(t, ext)) // step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	r.failStep(wf, cmd, 1)
	// a records the failure, but its give-back fails (NATS went away).
	ctx, cancel := context.WithCancel(r.ctx)
	a.o.beforeGiveBack = func(string) { cancel() }
	a.handle(ctx, next(t, results))
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || !slices.Equal(s.Holders, []string{wf}) {
		t.Fatalf("after the failed give-back: %+v, %v; want %s holding the slot", s, err, wf)
	}
	// Retention deletes the run before the give-back is tried again, and a
	// run of another definition is started under its id.
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/again", startEvent(wf, "w")); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, ext)) // the new r1: waits for its signal

	const other = "r2"
	r.start(other, "q")
	b.handle(r.ctx, next(t, ext)) // queued: the key's slot is held
	if n := r.admissions(other); n != 1 {
		s, _ := r.store.ReadSlots(r.ctx, "q", "")
		t.Fatalf("%s admitted %d times; the slots of q: %+v (the slot of the deleted %s is held for a run of w)", other, n, s, wf)
	}
}

// The same for a queued run: canceled while it waits, its give-back fails
// and retention deletes it first, so its id stays in its key's queue. Once
// its id is a run of another definition with concurrency, queued there,
// the slot the key hands to the id admits that run: past its own
// definition's limit.
func TestAQueuedGhostDoesNotAdmitARunOfAnotherDefinition(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	r.putDef("p", "name: p\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard()
	ext, results := r.feeds()
	const holder, wf, pHolder = "h0", "r1", "p0"
	r.start(holder, "q")
	b.handle(r.ctx, next(t, ext)) // h0 queued, admitted
	b.handle(r.ctx, next(t, ext)) // h0's step scheduled
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // r1 queued behind h0
	r.requestCancel(wf, "test")
	// a records the cancel, but its give-back fails.
	ctx, cancel := context.WithCancel(r.ctx)
	a.o.beforeGiveBack = func(string) { cancel() }
	a.handle(ctx, next(t, ext))
	a.o.beforeGiveBack = nil
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Queue) != 1 || s.Queue[0].ID != wf {
		t.Fatalf("after the failed give-back: %+v, %v; want %s queued", s, err, wf)
	}
	// Retention deletes r1; a run of p is started under its id and queued
	// behind p0, which holds p's only slot.
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	r.start(pHolder, "p")
	b.handle(r.ctx, next(t, ext)) // p0 queued, admitted
	b.handle(r.ctx, next(t, ext)) // p0's step scheduled
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/again", startEvent(wf, "p")); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, ext)) // the new r1: queued in p behind p0
	if s, err := r.store.ReadSlots(r.ctx, "p", ""); err != nil || !slices.Equal(s.Holders, []string{pHolder}) {
		t.Fatalf("the slots of p: %+v, %v", s, err)
	}
	// h0 completes: q's slot goes to the id at the head of q's queue.
	_, cmd := r.count(holder, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: holder, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, results))
	if n := r.admissions(wf); n != 0 {
		t.Fatalf("the run of p %s was admitted %d time(s) by a slot of q, while %s holds p's only slot", wf, n, pHolder)
	}
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("the slots of q: %+v, %v; want none held (the ghost %s given back)", s, err, wf)
	}
}
