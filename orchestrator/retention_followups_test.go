package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A deletion reads the run afresh, and so follows up what the state calls
// for before the run goes: here an orchestrator recorded the parent's
// cancel and died before canceling its child and giving its concurrency
// slot back, and the run's retention ran out before that input came
// again (a retention shorter than the ack wait, or follow-ups failing
// that long). Deleted as it was, the parent could never cancel its child,
// which waits for its signal for ever with no one to tell of it, and its
// slot stayed held until another run of the key waited on it.
func TestADeletionFollowsUpTheRunFirst(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nretention: 1h\nconcurrency: { limit: 1 }\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "mum-del"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // queued, takes the free slot, admitted
	for range 2 {                  // the admission (the child started), the child's start
		sh.handle(r.ctx, next(t, ext))
	}
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the child did not start: %v", err)
	}
	r.requestCancel(wf, "test")
	revive := dieAfterCommitsOf(t, wf)
	r.shard().handle(r.ctx, next(t, ext)) // the cancel: recorded, then the orchestrator dies
	revive()
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCanceled != nil }); n != 1 {
		t.Fatalf("the parent was canceled %d times, want once", n)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 0 {
		t.Fatalf("the child was asked to cancel: the test needs that follow-up cut short")
	}
	// Its retention runs out before the cancel comes again.
	del := r.shard()
	del.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := del.expire(r.ctx, wf); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the parent is not deleted: %v", err)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 1 {
		t.Errorf("the deleted parent's child was asked to cancel %d times, want once: it waits for ever", n)
	}
	if s, err := r.store.ReadSlots(r.ctx, "mum", ""); err != nil || len(s.Holders)+len(s.Queue) != 0 {
		t.Errorf("the deleted run's slot: %+v, %v; want it given back", s, err)
	}
}

// A deletion that purged the run's history up to the record it read, and
// was cut short (its orchestrator died) before it purged the records
// appended after that one (a late result of a failed run, recorded on top
// of its WorkflowExpired), leaves a history with no start. The deletion
// comes again and finishes it: kept, as a history that does not fold, it
// would stay for good, its id taken from every new run.
func TestADeletionCutShortBetweenItsHistoryPurgesIsFinished(t *testing.T) {
	r := newRig(t)
	r.putDef("f", "name: f\nretention: 1h\nsteps:\n  - { id: slow, task: work }\n")
	const wf = "f-late"
	at := time.Now().Add(-3 * time.Hour).UTC()
	start := startEvent(wf, "f")
	start.Time = at
	seq, err := r.store.Append(r.ctx, wf, 0, start, events.Event{Type: events.TypeWorkflowFailed, Time: at,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "boom"}}})
	if err != nil {
		t.Fatal(err)
	}
	read, err := r.store.Append(r.ctx, wf, seq, events.Event{Type: events.TypeWorkflowExpired, Time: at.Add(time.Hour),
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.Append(r.ctx, wf, read, events.Event{Type: events.TypeStepCompleted, Time: at.Add(time.Hour),
		StepCompleted: &events.StepCompleted{Path: "slow", Gen: 1, Attempt: 1, Output: "late"}}); err != nil {
		t.Fatal(err)
	}
	// The deletion's purge of the history up to the record it read; then
	// its orchestrator dies.
	js, err := jetstream.New(r.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	hist, err := js.Stream(r.ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := hist.Purge(r.ctx, jetstream.WithPurgeSubject("weft.h."+wf+".>"), jetstream.WithPurgeSequence(read+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); err != nil {
		t.Fatalf("control: the late record is gone too: %v", err)
	}
	// The deletion comes again.
	sh := r.shard()
	if err := sh.expire(r.ctx, wf); err != nil {
		t.Fatal(err)
	}
	if last, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("after the deletion came again the history still holds seq %d (%v): a record of the deleted run with no start", last, err)
	}
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/again", startEvent(wf, "f")); err != nil {
		t.Fatalf("a new run under the id of the deleted run: %v", err)
	}
}
