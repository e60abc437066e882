package orchestrator

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// notADefinition is a stored revision this build cannot compile (one a
// later build's stricter checks refuse, say).
const notADefinition = "name: [this is not a definition"

// breakRevision stores revision rev of definition name again with a
// source this build cannot compile.
func (r *rig) breakRevision(name string, rev int) {
	r.t.Helper()
	rec, err := r.store.GetDefinition(r.ctx, name, rev)
	if err != nil {
		r.t.Fatal(err)
	}
	rec.Source = notADefinition
	data, err := msgpack.Marshal(rec)
	if err != nil {
		r.t.Fatal(err)
	}
	js, err := jetstream.New(r.ns.Connect(r.t))
	if err != nil {
		r.t.Fatal(err)
	}
	kv, err := js.KeyValue(r.ctx, eventstore.DefinitionsBucket)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := kv.Put(r.ctx, fmt.Sprintf("%s.%d", name, rev), data); err != nil {
		r.t.Fatal(err)
	}
}

// A run whose deletion began (WorkflowExpired) is deleted whatever this
// orchestrator would judge of it, even when its definition's revision no
// longer compiles: its slot's give-back, which needs the revision's
// concurrency limit, is left to the key's look at the holders of closed
// runs. Kept, the run would stay for good, its id taken.
func TestAnExpiredRunWhoseRevisionNoLongerCompilesIsDeleted(t *testing.T) {
	r := newRig(t)
	if _, _, err := r.store.PutDefinition(r.ctx, "q", notADefinition, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	const wf = "q-expired"
	at := time.Now().Add(-3 * time.Hour).UTC()
	start := startEvent(wf, "q")
	start.Time = at
	last, err := r.store.Append(r.ctx, wf, 0, start,
		events.Event{Type: events.TypeWorkflowQueued, Time: at, WorkflowQueued: &events.WorkflowQueued{Key: ""}},
		events.Event{Type: events.TypeWorkflowCanceled, Time: at, WorkflowCanceled: &events.WorkflowCanceled{Reason: "test"}},
		events.Event{Type: events.TypeWorkflowExpired, Time: at.Add(time.Hour), WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	_ = last
	if err := r.shard().expire(r.ctx, wf); err != nil {
		t.Fatalf("the deletion of a run whose deletion began fails: %v", err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the run is not deleted: %v", err)
	}
}

// A deletion cancels the children its run no longer needs (followUpLast)
// even when the child's definition no longer compiles: the child runs,
// and its cancel needs no definition. Refused, the deletion failed for
// as long as the revision stayed, and the child was never canceled.
func TestADeletionCancelsAChildWhoseDefinitionNoLongerCompiles(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nretention: 1h\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "mum-uncompilable"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent's start: the child started
	sh.handle(r.ctx, next(t, ext)) // the child's start
	if _, err := r.store.LastSeq(r.ctx, kid); err != nil {
		t.Fatalf("the child did not start: %v", err)
	}
	// The revision the child started on no longer compiles.
	r.breakRevision("kid", 1)
	r.requestCancel(wf, "test")
	revive := dieAfterCommitsOf(t, wf)
	r.shard().handle(r.ctx, next(t, ext)) // the cancel: recorded, then the orchestrator dies
	revive()
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 0 {
		t.Fatalf("the child was asked to cancel: the test needs that follow-up cut short")
	}
	del := r.shard()
	del.o.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := del.expire(r.ctx, wf); err != nil {
		t.Fatalf("the deletion fails: %v", err)
	}
	if _, err := r.store.LastSeq(r.ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the parent is not deleted: %v", err)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil }); n != 1 {
		t.Errorf("the deleted parent's child was asked to cancel %d times, want once", n)
	}
}
