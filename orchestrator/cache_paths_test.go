package orchestrator

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const loopThenTasks = `
name: loop
steps:
  - id: each
    foreach: "[1, 2, 3, 4, 5, 6]"
    concurrency: 2
    do:
      - { id: one, task: work, input: "${ item }" }
  - { id: after, task: work }
  - { id: last, task: work }
`

// comparable returns st as a snapshot restores it, so a cached state and
// one folded afresh compare on what they record, not on what decisions
// learned on the way (loop progress) or what the cache counts.
func comparable(t *testing.T, st *workflow.State) *workflow.State {
	t.Helper()
	b, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	out, err := workflow.DecodeSnapshot(b, st.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	out.Bytes = 0
	return out
}

// Two orchestrators decide the same runs in turn, with room for one state
// each and a snapshot every two events: whatever path reached a cached
// state (seeded, caught up from the other's records, loaded from a
// snapshot, reloaded after eviction), it is the history's, and a load
// from the snapshot gives what folding the whole history gives.
func TestTwoOrchestratorsInTurnHoldTheHistorysState(t *testing.T) {
	r := newRig(t)
	r.putDef("loop", loopThenTasks)
	a, b := r.shard(), r.shard()
	for _, sh := range []*shard{a, b} {
		sh.o.cfg.CacheSize, sh.o.cfg.SnapshotEvery = 1, 2
	}
	ext, results := r.feeds()
	wfs := []string{"turn-1", "turn-2"}
	for i, wf := range wfs {
		r.start(wf, "loop")
		[]*shard{a, b}[i].handle(r.ctx, next(t, ext))
	}
	done := map[string]bool{}
	snapped := 0
	check := func(when string) {
		t.Helper()
		for _, wf := range wfs {
			full := &workflow.State{}
			if m, err := runs.Fold(full, r.history(wf), nil); m != nil {
				t.Fatalf("%s: %s does not fold: %v", when, wf, err)
			}
			want := comparable(t, full)
			l, err := runs.ReadFromSnapshot(r.ctx, r.store, wf)
			if err != nil || l.Passed != nil {
				t.Fatalf("%s: read %s from its snapshot: %v %v", when, wf, err, l.Passed)
			}
			if l.SnapshotSeq > 0 {
				snapped++
			}
			if m, err := runs.Fold(l.State, l.Msgs, nil); m != nil {
				t.Fatalf("%s: %s from its snapshot does not fold: %v", when, wf, err)
			}
			if got := comparable(t, l.State); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: %s loaded from its snapshot at %d differs from its history folded", when, wf, l.SnapshotSeq)
			}
			for n, sh := range []*shard{a, b} {
				e := sh.cache[wf]
				if e == nil || e.st.LastSeq != full.LastSeq {
					continue // not cached, or behind (caught up at its next input)
				}
				if got := comparable(t, e.st); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: orchestrator %d holds a state of %s that differs from its history folded", when, n, wf)
				}
			}
		}
	}
	for i := 0; ; i++ {
		wf := wfs[i%len(wfs)]
		sh := []*shard{a, b}[(i/2)%2]
		var path string
		var gen int
		var cmd uint64
		for _, m := range r.history(wf) {
			for _, ev := range m.Record.Events {
				if s := ev.StepScheduled; s != nil && path == "" && !done[fmt.Sprint(wf, s.Path, s.Gen)] {
					path, gen, cmd = s.Path, s.Gen, m.Seq
				}
			}
		}
		if path == "" {
			if done[wf] = true; done[wfs[0]] && done[wfs[1]] {
				break
			}
			continue
		}
		done[fmt.Sprint(wf, path, gen)] = true
		if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: path, Gen: gen, Attempt: 1, Cmd: cmd,
			Outcome: events.OutcomeCompleted, Output: path, Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		sh.handle(r.ctx, next(t, results))
		check(fmt.Sprintf("input %d (%s, %s)", i, wf, path))
		if i > 200 {
			t.Fatal("the runs did not end")
		}
	}
	if snapped == 0 {
		t.Fatal("no load started from a snapshot")
	}
	for _, wf := range wfs {
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCompleted != nil }); n != 1 {
			t.Fatalf("%s completed %d times", wf, n)
		}
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil }); n != 8 {
			t.Fatalf("%s has %d step commands, want 8", wf, n)
		}
	}
}

const parentOfTwo = `
name: parent
steps:
  - id: both
    parallel:
      branches:
        a: [{ id: k1, workflow: kid }]
        b: [{ id: k2, workflow: kid }]
  - { id: after, task: work }
`

// Two orchestrators handle a parent's and its children's inputs in turn,
// with room for one state each and a snapshot at every event, and every
// other decision is cut short once recorded (the orchestrator dies before
// its follow-ups; the input comes back): each child is started once and
// tells its parent, and the parent completes.
func TestTwoOrchestratorsCutShortInTurnFollowEveryState(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: c, task: work }\n")
	r.putDef("parent", parentOfTwo)
	a, b := r.shard(), r.shard()
	for _, sh := range []*shard{a, b} {
		sh.o.cfg.CacheSize, sh.o.cfg.SnapshotEvery = 1, 1
	}
	ext, results := r.feeds()
	in, end := make(chan *eventstore.Delivery), make(chan struct{})
	t.Cleanup(func() { close(end) })
	for _, f := range []*eventstore.Feed{ext, results} {
		go func() {
			for {
				d, err := f.Next()
				if err != nil {
					return
				}
				select {
				case in <- d:
				case <-end:
					return
				}
			}
		}()
	}
	commits := 0
	testHookAfterCommit = func(string) error {
		if commits++; commits%2 == 0 {
			return errors.New("the orchestrator died")
		}
		return nil
	}
	t.Cleanup(func() { testHookAfterCommit = nil })
	const wf = "p"
	r.start(wf, "parent")
	completed := func(id string) bool {
		n, _ := r.count(id, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowCompleted })
		return n > 0
	}
	kids := func() []string {
		var out []string
		for _, m := range r.history(wf) {
			for _, ev := range m.Record.Events {
				if c := ev.ChildStarted; c != nil {
					out = append(out, c.WorkflowID)
				}
			}
		}
		return out
	}
	done := map[string]bool{}
	turn := 0
	deadline := time.Now().Add(60 * time.Second)
	for !completed(wf) {
		if time.Now().After(deadline) {
			t.Fatal("the parent did not complete")
		}
		// Complete every task command, once.
		for _, id := range append([]string{wf}, kids()...) {
			for _, m := range r.history(id) {
				for _, ev := range m.Record.Events {
					if s := ev.StepScheduled; s != nil && !done[fmt.Sprint(id, s.Path, s.Gen)] {
						done[fmt.Sprint(id, s.Path, s.Gen)] = true
						if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: id, Path: s.Path, Gen: s.Gen, Attempt: 1,
							Cmd: m.Seq, Outcome: events.OutcomeCompleted, Output: s.Path, Time: time.Now().UTC()}); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		}
		select {
		case d := <-in:
			turn++
			[]*shard{a, b}[turn%2].handle(r.ctx, d)
		case <-time.After(200 * time.Millisecond):
		}
	}
	if commits < 6 {
		t.Fatalf("%d decisions recorded, every other one cut short; want more", commits)
	}
	if ks := kids(); len(ks) != 2 {
		t.Fatalf("children recorded: %v", ks)
	}
	for _, kid := range kids() {
		if n, _ := r.count(kid, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowStarted }); n != 1 || !completed(kid) {
			t.Fatalf("child %s started %d times, completed %v", kid, n, completed(kid))
		}
	}
}

// A snapshot of an earlier run of the id (deleted by retention), stored
// late over the new run's own, is never taken for the new run's state: the
// new run's records lead reads to a snapshot that is not one of its own
// records, which is passed by, and the run is folded from its first record.
func TestASnapshotOfAnEarlierRunIsPassedBy(t *testing.T) {
	r := newRig(t)
	r.putDef("three", "name: three\nsteps:\n  - { id: a, task: work }\n  - { id: b, task: work }\n  - { id: c, task: work }\n")
	sh := r.shard()
	sh.o.cfg.SnapshotEvery = 1
	ext, results := r.feeds()
	const wf = "again"
	run := func() (uint64, []byte) {
		t.Helper()
		sh.handle(r.ctx, next(t, ext))
		r.completeLast(wf)
		sh.handle(r.ctx, next(t, results)) // step b scheduled: a snapshot taken
		r.completeLast(wf)
		sh.handle(r.ctx, next(t, results)) // step c scheduled, its record naming that snapshot
		seq, data, err := r.store.GetSnapshot(r.ctx, wf)
		if err != nil {
			t.Fatal(err)
		}
		return seq, data
	}
	r.start(wf, "three")
	oldSeq, oldSnap := run()
	r.completeLast(wf)
	sh.handle(r.ctx, next(t, results)) // completed
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/second", startEvent(wf, "three")); err != nil {
		t.Fatal(err)
	}
	if newSeq, _ := run(); newSeq <= oldSeq {
		t.Fatalf("the new run's snapshot at %d, the old one's at %d", newSeq, oldSeq)
	}
	if h := r.history(wf); h[len(h)-1].Seq <= oldSeq {
		t.Fatal("the new run's history is not after the old one's")
	}
	if l, err := runs.ReadFromSnapshot(r.ctx, r.store, wf); err != nil || l.SnapshotSeq == 0 {
		t.Fatalf("the new run's records lead to no snapshot of its own: %+v, %v", l.SnapshotSeq, err)
	}
	if err := r.store.PutSnapshot(r.ctx, wf, oldSeq, oldSnap); err != nil { // the old run's, stored late
		t.Fatal(err)
	}
	l, err := runs.ReadFromSnapshot(r.ctx, r.store, wf)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := runs.Fold(l.State, l.Msgs, nil); m != nil {
		t.Fatal(err)
	}
	full := &workflow.State{}
	runs.Fold(full, r.history(wf), nil)
	if l.SnapshotSeq != 0 || !reflect.DeepEqual(comparable(t, l.State), comparable(t, full)) {
		t.Fatalf("the new run loaded from the snapshot at %d, not folded from its history", l.SnapshotSeq)
	}
	// The orchestrator, its cache emptied, takes the new run on from there.
	sh.forget(wf)
	r.completeLast(wf)
	sh.handle(r.ctx, next(t, results))
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowCompleted }); n != 1 {
		t.Fatalf("the new run completed %d times", n)
	}
}
