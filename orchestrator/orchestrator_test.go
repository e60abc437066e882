package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// rig is a store on an embedded NATS server of its own; workflows are
// started and results sent by hand, as the API and executors would.
type rig struct {
	t     *testing.T
	ctx   context.Context
	ns    *natstest.Server
	store *eventstore.Store
}

var quiet = slog.New(slog.DiscardHandler)

// requestCancel appends a cancel of wf, for reason, as the API does.
func (r *rig) requestCancel(wf, reason string) {
	r.t.Helper()
	if _, err := r.store.AppendExternalAtEnd(r.ctx, wf, 0, "cancel/"+wf, events.Event{Type: events.TypeCancelRequested,
		Time: time.Now().UTC(), CancelRequested: &events.CancelRequested{Reason: reason}}); err != nil {
		r.t.Fatal(err)
	}
}

// dieAfterCommitsOf has the orchestrator die after it commits a decision
// of wf, leaving that decision's follow-ups undone, until revive is
// called or the test ends.
func dieAfterCommitsOf(t *testing.T, wf string) (revive func()) {
	testHookAfterCommit = func(id string) error {
		if id == wf {
			return errors.New("the orchestrator died")
		}
		return nil
	}
	revive = func() { testHookAfterCommit = nil }
	t.Cleanup(revive)
	return revive
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, ctx: ctx, ns: ns, store: store}
}

// run starts an orchestrator, stopped when the test ends.
func (r *rig) run() *Orchestrator {
	r.t.Helper()
	o, err := New(r.store, Config{Logger: quiet})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := o.Start(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = o.Stop(context.Background()) })
	return o
}

// shard returns a shard of an orchestrator that is not started, for
// handing it deliveries one at a time.
func (r *rig) shard() *shard {
	r.t.Helper()
	o, err := New(r.store, Config{Logger: quiet})
	if err != nil {
		r.t.Fatal(err)
	}
	o.ix = newIndexer(r.store, quiet)
	r.t.Cleanup(o.ix.close)
	return &shard{o: o, cache: map[string]*entry{}}
}

func (r *rig) putDef(name, src string) *definition.Definition {
	r.t.Helper()
	if _, _, err := r.store.PutDefinition(r.ctx, name, src, "test", time.Now()); err != nil {
		r.t.Fatal(err)
	}
	def, err := definition.Parse([]byte(src))
	if err != nil {
		r.t.Fatal(err)
	}
	return def
}

func startEvent(wf, def string) events.Event {
	return events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: def, Revision: 1}}
}

// start appends wf's start as the API does and returns its sequence.
func (r *rig) start(wf, def string) uint64 {
	r.t.Helper()
	var zero uint64
	seq, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf, startEvent(wf, def))
	if err != nil {
		r.t.Fatal(err)
	}
	return seq
}

// timersStream returns the timers stream, on a connection of its own,
// for a test to look at or change behind the orchestrators' back.
func (r *rig) timersStream() jetstream.Stream {
	r.t.Helper()
	js, err := jetstream.New(r.ns.Connect(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	timers, err := js.Stream(r.ctx, eventstore.TimersStream)
	if err != nil {
		r.t.Fatal(err)
	}
	return timers
}

// history returns wf's records.
func (r *rig) history(wf string) []eventstore.Message {
	r.t.Helper()
	msgs, err := r.store.Read(r.ctx, wf, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	return msgs
}

// count returns how many events of wf's history satisfy match, and the
// sequence of the record holding the last one.
func (r *rig) count(wf string, match func(events.Event) bool) (n int, seq uint64) {
	for _, m := range r.history(wf) {
		for _, ev := range m.Record.Events {
			if match(ev) {
				n, seq = n+1, m.Seq
			}
		}
	}
	return n, seq
}

// feeds returns the orchestrators' feeds of outside records and of
// results, stopped when the test ends, for handing shards their
// deliveries.
func (r *rig) feeds() (ext, results *eventstore.Feed) {
	r.t.Helper()
	var err error
	if ext, err = r.store.Feed(r.ctx, eventstore.SourceExternal, 8); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(ext.Stop)
	if results, err = r.store.Feed(r.ctx, eventstore.SourceResults, 8); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(results.Stop)
	return ext, results
}

// next returns f's next delivery, failing the test after 10 s.
func next(t *testing.T, f *eventstore.Feed) *eventstore.Delivery {
	t.Helper()
	got := make(chan *eventstore.Delivery, 1)
	go func() {
		d, err := f.Next()
		if err == nil {
			got <- d
		}
	}()
	select {
	case d := <-got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return nil
	}
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const oneTask = `
name: one
steps:
  - { id: a, task: work }
`

const twoTasks = `
name: two
steps:
  - { id: a, task: work }
  - { id: b, task: work }
`

// A result or timer for a workflow with no history can never apply: it
// is terminated, not redelivered, and makes no history.
func TestInputForWorkflowWithNoHistoryIsTerminated(t *testing.T) {
	r := newRig(t)
	r.run()
	nc := r.ns.Connect(t)
	sub, err := nc.SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>")
	if err != nil {
		t.Fatal(err)
	}
	// The server holds the subscription before the inputs go out on
	// another connection, so no advisory is sent before it listens.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: "ghost", Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if err := r.store.ScheduleTimer(r.ctx, events.TimerDue{WorkflowID: "phantom", TimerID: "t", Path: "a", Due: time.Now()}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{
		"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + eventstore.ResultsStream + "." + eventstore.ResultsConsumer: true,
		"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + eventstore.TimersStream + "." + eventstore.TimersConsumer:   true,
	}
	for len(want) > 0 {
		m, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			t.Fatalf("still waiting for terminations on %v: %v", want, err)
		}
		delete(want, m.Subject)
	}
	for _, wf := range []string{"ghost", "phantom"} {
		if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
			t.Fatalf("%s has history: %v", wf, err)
		}
	}
}

// A cached state that another writer moved past conflicts on append: the
// input is decided again on the history read afresh, and recorded once.
func TestConflictReadsAgainAndDecidesOnce(t *testing.T) {
	r := newRig(t)
	r.putDef("two", twoTasks)
	sh := r.shard()
	ext, results := r.feeds()
	wf := "conflicted"
	r.start(wf, "two")
	sh.handle(r.ctx, next(t, ext))
	scheduled, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if scheduled != 1 || sh.cache[wf] == nil || sh.cache[wf].st.LastSeq != cmd {
		t.Fatalf("after the start: %d commands, cached %+v", scheduled, sh.cache[wf])
	}
	// Another writer appends behind the shard's back.
	sig, err := r.store.AppendExternalAtEnd(r.ctx, wf, cmd, "signal/"+wf, events.Event{Type: events.TypeSignalReceived,
		Time: time.Now().UTC(), SignalReceived: &events.SignalReceived{Name: "poke"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "A", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results))

	completed, at := r.count(wf, func(ev events.Event) bool { return ev.StepCompleted != nil && ev.StepCompleted.Path == "a" })
	if completed != 1 || at <= sig {
		t.Fatalf("step a completed %d times, at seq %d (the other writer's record is at %d)", completed, at, sig)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "b" }); n != 1 {
		t.Fatalf("step b scheduled %d times", n)
	}
	if e := sh.cache[wf]; e == nil || e.st.LastSeq != r.history(wf)[len(r.history(wf))-1].Seq {
		t.Fatalf("the cache does not hold the history's end: %+v", e)
	}
}

// The indexer writes a workflow that closes before its running entry is
// due once, closed, and settles every input held for it; once closed, it
// hands inputs back.
func TestIndexerWritesAClosedEntryOnceAndSettlesHeldInputs(t *testing.T) {
	r := newRig(t)
	ix := newIndexer(r.store, quiet)
	ix.delay = time.Hour // a running entry waits for its workflow to close
	mark := new(atomic.Value)
	settled := make(chan bool, 3)
	settle := func(ok bool) { settled <- ok }
	now := time.Now().UTC()
	ix.put(eventstore.Summary{ID: "wf", Definition: "d", Revision: 1, Status: string(workflow.StatusRunning), Created: now, Seq: 2},
		indexKey{status: workflow.StatusRunning}, mark, false, settle)
	time.Sleep(100 * time.Millisecond) // (an entry due at once is written by now)
	ix.put(eventstore.Summary{ID: "wf", Definition: "d", Revision: 1, Status: string(workflow.StatusCompleted), Created: now, Closed: now, Seq: 5},
		indexKey{status: workflow.StatusCompleted}, mark, false, settle)
	for range 2 {
		select {
		case ok := <-settled:
			if !ok {
				t.Fatal("a held input was handed back")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held inputs not settled")
		}
	}
	if got, _ := mark.Load().(written); got.key.status != workflow.StatusCompleted || got.rev != 1 {
		t.Fatalf("mark %+v", got)
	}
	sum, err := r.store.GetSummary(r.ctx, "wf")
	if err != nil || sum.Status != string(workflow.StatusCompleted) || sum.Seq != 5 {
		t.Fatalf("entry %+v, %v", sum, err)
	}
	js, err := jetstream.New(r.store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(r.ctx, "KV_"+eventstore.WorkflowsBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.LastSeq != 1 {
		t.Fatalf("index written %d times, want once", info.State.LastSeq)
	}
	ix.close()
	ix.put(eventstore.Summary{ID: "late", Status: string(workflow.StatusCompleted), Seq: 1}, indexKey{status: workflow.StatusCompleted}, new(atomic.Value), true, settle)
	if ok := <-settled; ok {
		t.Fatal("an input put after close was settled as written")
	}
}

// A child its parent's history records as started, but that was never
// started (its orchestrator died in between), is started by the next
// orchestrator to handle an input of the parent, and the parent's
// decision is not repeated.
func TestReconcileStartsARecordedChild(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	mum := r.putDef("mum", `
name: mum
steps:
  - { id: kid, workflow: one }
`)
	wf := "mum-1"
	seq := r.start(wf, "mum")
	// The decision that follows the start, recorded without its follow-up.
	st := &workflow.State{}
	if err := st.Apply(startEvent(wf, "mum")); err != nil {
		t.Fatal(err)
	}
	decided, err := workflow.Advance(st, mum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(r.ctx, wf, seq, decided...); err != nil {
		t.Fatal(err)
	}
	child := ""
	for _, ev := range decided {
		if ev.ChildStarted != nil {
			child = ev.ChildStarted.WorkflowID
		}
	}
	if child == "" {
		t.Fatalf("no child in the decision %v", decided)
	}
	if _, err := r.store.LastSeq(r.ctx, child); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("child %s exists before reconciling: %v", child, err)
	}

	r.run()
	eventually(t, 10*time.Second, "the child to start", func() bool {
		first, err := r.store.First(r.ctx, child)
		if err != nil || first.Err != nil {
			return false
		}
		ws := first.Record.Events[0].WorkflowStarted
		return ws != nil && ws.Definition == "one" && ws.Parent != nil && ws.Parent.WorkflowID == wf && ws.Parent.Path == "kid"
	})
	if first, _ := r.store.First(r.ctx, child); first.Record.Events[0].Identity != "parent:"+wf {
		t.Errorf("the child was started by %q, want parent:%s", first.Record.Events[0].Identity, wf)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.ChildStarted != nil }); n != 1 {
		t.Fatalf("the child's start recorded %d times", n)
	}
}

// decide is a function of the state and its definition: nothing for a
// workflow that no longer runs, the limit for one that grows past it.
func TestDecide(t *testing.T) {
	def, err := definition.Parse([]byte(twoTasks))
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() *workflow.State {
		st := &workflow.State{}
		if err := st.Apply(startEvent("wf", "two")); err != nil {
			t.Fatal(err)
		}
		return st
	}
	evs, err := decide(fresh(), def, 1000)
	if err != nil || len(evs) == 0 || evs[len(evs)-1].StepScheduled == nil || evs[len(evs)-1].StepScheduled.Path != "a" {
		t.Fatalf("decided %v, %v", evs, err)
	}
	var broken errBroken
	if _, err := decide(fresh(), def, 1); !errors.As(err, &broken) || broken.typ != workflow.ErrTypeLimit {
		t.Fatalf("past the limit: %v", err)
	}
	closed := fresh()
	closed.Status = workflow.StatusCompleted
	if evs, err := decide(closed, nil, 1); err != nil || evs != nil {
		t.Fatalf("closed workflow decided %v, %v", evs, err)
	}
}

// A start, a result and the workflow completes; its listing entry follows.
func TestWorkflowRunsToCompletionAndIsListed(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	r.run()
	wf := "simple"
	r.start(wf, "one")
	var cmd uint64
	eventually(t, 10*time.Second, "the step's command", func() bool {
		var n int
		n, cmd = r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
		return n == 1
	})
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "done", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the workflow to be listed completed", func() bool {
		sum, err := r.store.GetSummary(r.ctx, wf)
		return err == nil && sum.Status == string(workflow.StatusCompleted)
	})
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCompleted != nil }); n != 1 {
		t.Fatalf("completed %d times", n)
	}
}

// Start twice fails, Stop twice is fine, and a negative count is refused.
func TestOrchestratorLifecycle(t *testing.T) {
	r := newRig(t)
	o := r.run()
	if err := o.Start(r.ctx); err == nil || err.Error() != "orchestrator: already started" {
		t.Fatalf("second Start: %v", err)
	}
	for range 2 {
		if err := o.Stop(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := New(r.store, Config{Shards: -1}); err == nil || err.Error() != "orchestrator: Shards must not be negative, got -1" {
		t.Fatalf("negative Shards: %v", err)
	}
}

// A shard that cached a run still running, which another orchestrator then
// closed and retention deleted, reads the run started again under the same
// id afresh: the new run's first record is never folded onto the stale
// state (it would not apply, and the new run would be failed as a corrupt
// history). The new run is decided as any new run is.
func TestARunStartedAgainIsNotFoldedOntoAStaleCache(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	a, b := r.shard(), r.shard()
	ext, results := r.feeds()
	const wf = "again"
	r.start(wf, "one")
	a.handle(r.ctx, next(t, ext)) // a caches it, running
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "A", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, results)) // b closes it
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCompleted != nil }); n != 1 || a.cache[wf] == nil {
		t.Fatalf("closed %d times, cached by a: %v; want 1 and cached", n, a.cache[wf] != nil)
	}
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil { // retention, as b would
		t.Fatal(err)
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/second", startEvent(wf, "one")); err != nil {
		t.Fatal(err)
	}
	a.handle(r.ctx, next(t, ext))
	h := r.history(wf)
	var types []events.Type
	for _, m := range h {
		for _, ev := range m.Record.Events {
			types = append(types, ev.Type)
		}
	}
	if len(types) != 2 || types[0] != events.TypeWorkflowStarted || types[1] != events.TypeStepScheduled {
		t.Fatalf("the run started again: %v; want it started and its step scheduled", types)
	}
}

// A start delivered again to an orchestrator whose cached state of the
// run is out of date (another orchestrator admitted, ran and closed it)
// once queued the closed run again, which took the free slot: admitting
// it, the orchestrator found it closed and gave the slot back. The run is
// now read afresh first, and not queued at all; later runs of the key are
// not held.
func TestAClosedRunHandedASlotGivesItBack(t *testing.T) {
	r, a, start := closedBehindACache(t)
	a.handle(r.ctx, start) // the start again (its ack was late or lost)
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("closed run r1 is back in its key's slots: %+v, %v", s, err)
	}
}

// closedBehindACache starts run r1 of a definition with concurrency 1:
// orchestrator a queues it (and caches it queued), b admits it, runs it
// and closes it, giving its slot back. It returns a and r1's start, which
// a has not acked.
func closedBehindACache(t *testing.T) (*rig, *shard, *eventstore.Delivery) {
	t.Helper()
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	a, b := r.shard(), r.shard() // two orchestrators
	ext, results := r.feeds()
	const wf = "r1"
	r.start(wf, "q")
	start := next(t, ext)
	a.handle(r.ctx, start) // queued, takes the free slot, admitted; a caches it queued
	if e := a.cache[wf]; e == nil || !e.st.Queued || e.st.Admitted {
		t.Fatalf("a's cached state: %+v", e)
	}
	b.handle(r.ctx, next(t, ext)) // the admission: step a scheduled
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	b.handle(r.ctx, next(t, results)) // closed; its slot given back
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("after the close: %+v, %v", s, err)
	}
	return r, a, start
}

// A child its parent's history records as started is started even when
// the parent failed (on its workflow timeout, say) before that was done:
// a failed parent's running children run on, for a redrive to take.
func TestAFailedParentsRecordedChildIsStarted(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("parent", "name: parent\ntimeout: 1h\nsteps:\n  - { id: k, workflow: kid }\n")
	ext, err := r.store.Feed(r.ctx, eventstore.SourceExternal, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Stop()
	const wf = "p1"
	kid := workflow.ChildID(wf, "k", 1)
	first := r.start(wf, "parent")
	// Recorded, then failed, with no orchestrator there to start the child.
	now := time.Now().UTC()
	if _, err := r.store.Append(r.ctx, wf, first,
		events.Event{Type: events.TypeChildStarted, Time: now, ChildStarted: &events.ChildStarted{Path: "k", Gen: 1, WorkflowID: kid, Definition: "kid"}},
		events.Event{Type: events.TypeWorkflowFailed, Time: now, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: workflow.ErrTypeTimeout, Message: "by hand"}}},
	); err != nil {
		t.Fatal(err)
	}
	r.shard().handle(r.ctx, next(t, ext)) // the start, delivered now
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the recorded child of the failed parent: %v", err)
	}
}

// A slot held by a run that closed or is gone (a give-back that failed
// after the slot was handed on) is given back when a queued run finds its
// key's slots all held: the queued run is admitted.
func TestAQueuedRunFreesASlotAClosedRunHolds(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	if _, _, err := r.store.UpdateSlots(r.ctx, "q", "", 1, func(s *eventstore.Slots) { s.Holders = []string{"gone-1"} }); err != nil {
		t.Fatal(err)
	}
	const wf = "r2"
	r.start(wf, "q")
	sh.handle(r.ctx, next(t, ext))
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders) != 1 || s.Holders[0] != wf {
		t.Fatalf("the slots: %+v, %v; want %s holding the slot", s, err, wf)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowAdmitted != nil }); n != 1 {
		t.Fatalf("%s admitted %d times", wf, n)
	}
}

// A failed run still records late results after its close, so its last
// record is not its close: a slot it holds is given back all the same
// once a queued run finds every slot held.
func TestAFailedHolderWithALateResultGivesItsSlotBack(t *testing.T) {
	r := newRig(t)
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	const h = "h1"
	last := r.start(h, "q")
	now := time.Now().UTC()
	for _, evs := range [][]events.Event{{
		{Type: events.TypeWorkflowQueued, Time: now, WorkflowQueued: &events.WorkflowQueued{}},
		{Type: events.TypeWorkflowAdmitted, Time: now, WorkflowAdmitted: &events.WorkflowAdmitted{}},
		{Type: events.TypeStepScheduled, Time: now, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "work"}},
	}, {
		{Type: events.TypeWorkflowFailed, Time: now, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: workflow.ErrTypeTimeout, Message: "timed out"}}},
	}, {
		// The step's late result, recorded after the failure.
		{Type: events.TypeStepCompleted, Time: now, StepCompleted: &events.StepCompleted{Path: "a", Attempt: 1, Output: "late"}},
	}} {
		var err error
		if last, err = r.store.Append(r.ctx, h, last, evs...); err != nil {
			t.Fatal(err)
		}
	}
	// Its give-back was lost: it still holds the slot.
	if _, _, err := r.store.UpdateSlots(r.ctx, "q", "", 1, func(s *eventstore.Slots) { s.Holders = []string{h} }); err != nil {
		t.Fatal(err)
	}
	sh := r.shard()
	ext, _ := r.feeds()
	next(t, ext) // h1's start, not handed on
	const wf = "r2"
	r.start(wf, "q")
	sh.handle(r.ctx, next(t, ext))
	if s, err := r.store.ReadSlots(r.ctx, "q", ""); err != nil || len(s.Holders) != 1 || s.Holders[0] != wf {
		t.Fatalf("the slots: %+v, %v; want %s holding the slot the failed %s held", s, err, wf, h)
	}
}

// A parent deleted by retention and started again under its id, within
// the stream's duplicate window: its child's start is not taken for the
// deleted parent's, and the child starts at once.
func TestAParentStartedAgainStartsItsChildAtOnce(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "p1"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext))
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the first child: %v", err)
	}
	next(t, ext) // the child's start
	for _, id := range []string{wf, kid} {
		if err := r.store.DeleteRun(r.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/again", startEvent(wf, "mum")); err != nil {
		t.Fatal(err)
	}
	if err := r.shard().process(r.ctx, next(t, ext), true); err != nil {
		t.Errorf("the second run's start: %v", err)
	}
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Errorf("the second run's child %s: %v", kid, err)
	}
}

// closed tells a closed run from an open one whatever came after the
// close: late results keep a failed run closed, a redrive opens it again.
func TestClosedLooksPastLateRecords(t *testing.T) {
	r := newRig(t)
	r.putDef("d", "name: d\nsteps:\n  - { id: a, task: work }\n")
	now := time.Now().UTC()
	failed := events.Event{Type: events.TypeWorkflowFailed, Time: now, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: workflow.ErrTypeTimeout, Message: "timed out"}}}
	late := events.Event{Type: events.TypeStepCompleted, Time: now, StepCompleted: &events.StepCompleted{Path: "a", Attempt: 1, Output: "late"}}
	retried := events.Event{Type: events.TypeWorkflowRetried, Time: now, WorkflowRetried: &events.WorkflowRetried{}}
	scheduled := events.Event{Type: events.TypeStepScheduled, Time: now, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "work"}}
	sh := r.shard()
	last := r.start("c1", "d")
	for i, step := range []struct {
		evs    []events.Event
		closed bool
	}{
		{[]events.Event{scheduled}, false},
		{[]events.Event{failed}, true},
		{[]events.Event{late}, true},
		{[]events.Event{late}, true},
		{[]events.Event{retried}, false},
		{[]events.Event{scheduled}, false},
		{[]events.Event{failed}, true},
		{[]events.Event{late}, true},
	} {
		var err error
		if last, err = r.store.Append(r.ctx, "c1", last, step.evs...); err != nil {
			t.Fatal(err)
		}
		seq, closed, err := sh.closed(r.ctx, "c1")
		if err != nil || seq != last || closed != step.closed {
			t.Fatalf("after record %d (%s): closed %v at %d (%v), want %v at %d", i+1, step.evs[0].Type, closed, seq, err, step.closed, last)
		}
	}
	if _, _, err := sh.closed(r.ctx, "none"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("a run with no history: %v", err)
	}
}
