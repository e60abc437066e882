package orchestrator

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// lastScheduled returns the path, generation and record sequence of the
// last step command in wf's history.
func (r *rig) lastScheduled(wf string) (path string, gen int, seq uint64) {
	r.t.Helper()
	for _, m := range r.history(wf) {
		for _, ev := range m.Record.Events {
			if s := ev.StepScheduled; s != nil {
				path, gen, seq = s.Path, s.Gen, m.Seq
			}
		}
	}
	if seq == 0 {
		r.t.Fatalf("%s has no step command", wf)
	}
	return path, gen, seq
}

// completeLast publishes a completed result of the last step command in
// wf's history.
func (r *rig) completeLast(wf string) {
	r.t.Helper()
	path, gen, cmd := r.lastScheduled(wf)
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: path, Gen: gen, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}); err != nil {
		r.t.Fatal(err)
	}
}

// An orchestrator follows up a queued run's state read before the run was
// admitted (a signal to the queued run, delivered again after its ack was
// lost, finds the state cached, with nothing to decide). Meanwhile the run
// was admitted, failed, was redriven and admitted again, so the stale
// follow-up enqueues generation 0 while generation 1 holds the slot:
// Enqueue hands the slot over to generation 0 (and admits the running run
// a second time). When generation 1 completes, its give-back names
// generation 1 and leaves the slot be: the run queued behind it is not
// admitted, and the key's only slot stays held by a completed run until a
// waiting run's timer happens on freeClosedHolders (every 30 s at best,
// every 2 min once it has waited long, every 30 min after a day).
//
// The interleaving is made by hand: orchestrator a reads the queued run
// (as loadFor does), b handles everything else, then a runs the follow-ups
// of what it read (as process's reconcile does, with nothing to commit).
func TestAStaleEnqueueOfAnEarlierGenerationDoesNotKeepTheSlotAfterTheRedrivenRunCompletes(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const holder, wf, other = "h0", "r1", "r2"
	r.start(holder, "q")
	b.handle(r.ctx, next(t, ext)) // h0 queued, admitted
	b.handle(r.ctx, next(t, ext)) // h0's step scheduled
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // r1 queued behind h0

	// A signal to the queued run, for a to handle: a reads r1, queued.
	if _, err := r.store.AppendExternalAtEnd(r.ctx, wf, 0, "signal/"+wf, events.Event{Type: events.TypeSignalReceived,
		Time: time.Now().UTC(), SignalReceived: &events.SignalReceived{Name: "nudge"}}); err != nil {
		t.Fatal(err)
	}
	d := next(t, ext)
	stale, _, err := a.load(r.ctx, wf, d.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if !stale.st.Queued || stale.st.Admitted || stale.st.Retries != 0 {
		t.Fatalf("a read r1 as %+v; want it queued, not admitted", stale.st)
	}

	// Meanwhile, at b: h0 completes and r1 takes its slot, runs, fails,
	// and is redriven and admitted again.
	r.completeLast(holder)
	b.handle(r.ctx, next(t, results)) // h0 completes; r1 admitted
	b.handle(r.ctx, next(t, ext))     // r1's admission: step a scheduled
	_, _, cmd := r.lastScheduled(wf)
	r.failStep(wf, cmd, 1)
	b.handle(r.ctx, next(t, results)) // r1 fails; its slot given back
	if err := retry(t, r, wf); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, ext)) // the redrive: queued, slot taken, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled again
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || !slices.Equal(s.Holders, []string{wf}) {
		t.Fatalf("after the redrive: %+v, %v; want %s holding the slot", s, err, wf)
	}

	// a now runs the follow-ups of the queued state it read.
	if err := a.reconcile(r.ctx, wf, stale, d); err != nil {
		t.Fatal(err)
	}
	if r.admissions(wf) > 2 {
		b.handle(r.ctx, next(t, ext)) // the admission a appended again, for b
	}

	r.completeWithOneQueued(b, b, ext, results, wf, other,
		"a stale enqueue of generation 0 took the slot over from generation 1, whose give-back left it be")
}

// A queued run that cannot go on is failed where it waits (its history
// grew past the limit, say), and its give-back fails: generation 0 stays
// in its key's queue. The run is redriven, and the slot that frees before
// the redrive is handled goes to the queued generation 0: admitOne looks
// only at which run of the id it is (its start), not at its redrive, and
// admits generation 1 by it. Generation 1 then runs with the slot held in
// generation 0's name, and its give-back when it completes names
// generation 1 and leaves the slot be: the run queued behind it is not
// admitted, and the slot stays held by a completed run until a waiting
// run's timer happens on freeClosedHolders.
func TestARedrivenRunAdmittedByItsEarlierGenerationsQueuePlaceGivesItsSlotBack(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const holder, wf, other = "h0", "r1", "r2"
	r.start(holder, "q")
	b.handle(r.ctx, next(t, ext)) // h0 queued, admitted
	b.handle(r.ctx, next(t, ext)) // h0's step scheduled
	r.start(wf, "q")
	d := next(t, ext)
	b.handle(r.ctx, d) // r1 queued behind h0

	// r1 cannot go on: a fails it (as failBroken does), but its give-back
	// fails.
	if err := a.failWorkflow(r.ctx, wf, errBroken{workflow.ErrTypeLimit, errors.New("history too long")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	a.o.beforeGiveBack = func(string) { cancel() }
	if err := a.afterBroken(ctx, d); err == nil {
		t.Fatal("the give-back did not fail")
	}
	a.o.beforeGiveBack = nil
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Queue) != 1 || s.Queue[0].ID != wf || s.Queue[0].Retries != 0 {
		t.Fatalf("after the failed give-back: %+v, %v; want generation 0 of %s queued", s, err, wf)
	}

	// r1 is redriven; before that is handled, h0 completes and its slot
	// goes to the queued generation 0.
	if err := retry(t, r, wf); err != nil {
		t.Fatal(err)
	}
	r.completeLast(holder)
	b.handle(r.ctx, next(t, results)) // h0 completes; r1 admitted by generation 0's place
	b.handle(r.ctx, next(t, ext))     // the redrive, admitted already: step a scheduled
	b.handle(r.ctx, next(t, ext))     // the admission
	if n := r.admissions(wf); n != 1 {
		t.Fatalf("%s admitted %d time(s), want 1", wf, n)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil }); n != 1 {
		t.Fatalf("the redriven %s scheduled %d commands, want 1", wf, n)
	}

	r.completeWithOneQueued(b, b, ext, results, wf, other,
		"generation 1 was admitted by generation 0's queue place, and its give-back left generation 0's slot be")
}

// An orchestrator that gave a failed run's slot back, and kept the run's
// state cached (its reconcile failed after the give-back, so the closed
// entry stayed), knows the run "gave its slot up". The run is redriven
// and admitted by another orchestrator; when the redriven run completes
// on the first one, that knowledge must not stand for the new
// generation's give-back: the slot would stay held by a completed run.
func TestAGiveBackRememberedOfAFailedGenerationDoesNotSkipTheRedrivensOwn(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const wf, other = "r1", "r2"
	r.start(wf, "q")
	b.handle(r.ctx, next(t, ext)) // r1 queued, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled
	_, _, cmd := r.lastScheduled(wf)
	r.failStep(wf, cmd, 1)
	b.handle(r.ctx, next(t, results)) // r1 fails; its slot given back

	// a reads the failed run and gives its slot back too (nothing to
	// give), then keeps the entry, as a reconcile that failed after
	// reconcileSlot does.
	e, _, err := a.load(r.ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.reconcileSlot(r.ctx, wf, e); err != nil {
		t.Fatal(err)
	}
	if a.cache[wf] == nil {
		t.Fatal("a does not keep the failed run's entry; this test needs it kept")
	}

	// b handles the redrive: queued, admitted, its step scheduled again.
	if err := retry(t, r, wf); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, ext)) // the redrive: queued, slot taken, admitted
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled again
	// r2 is queued behind r1; the redriven step's result comes to a,
	// whose entry catches up.
	r.completeWithOneQueued(b, a, ext, results, wf, other,
		"the orchestrator took the failed generation's give-back for the redriven one's")
}

// completeWithOneQueued queues other behind wf (handled by q), completes
// wf's last step command (its result handled by fin) and checks that
// wf's slot went to other; why says how it may not have.
func (r *rig) completeWithOneQueued(q, fin *shard, ext, results *eventstore.Feed, wf, other, why string) {
	t := r.t
	t.Helper()
	r.start(other, "q")
	q.handle(r.ctx, next(t, ext)) // other queued
	if n := r.admissions(other); n != 0 {
		t.Fatalf("%s admitted %d time(s) while %s runs, at limit 1", other, n, wf)
	}
	r.completeLast(wf)
	fin.handle(r.ctx, next(t, results)) // wf completes: its slot goes to other
	s, err := r.store.ReadSlots(r.ctx, "q", "")
	if err != nil {
		t.Fatal(err)
	}
	if n := r.admissions(other); n != 1 || !slices.Equal(s.Holders, []string{other}) {
		t.Fatalf("the redriven %s completed, but its slot was not given back: slots %+v; %s admitted %d time(s) (%s)",
			wf, s, other, n, why)
	}
}
