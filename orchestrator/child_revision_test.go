package orchestrator

import (
	"context"
	"errors"
	"testing"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child starts on the revision of its definition that was the latest
// when its step started, as its ChildStarted record says, however late
// the start comes: here the orchestrator dies between the record and the
// start, and a revision whose input_schema the child's input does not
// match is put before the input comes again. The step would fail
// invalid_input where, without the crash, its child ran.
func TestARecordedChildStartsOnTheRevisionItWasDecidedAgainst(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: a, task: work }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid, input: { n: 1 } }\n")
	ext, _ := r.feeds()
	sh := r.shard()
	const wf = "mum-rev"
	r.start(wf, "mum")
	testHookAfterCommit = func(string) error { return errors.New("the orchestrator died") }
	sh.handle(r.ctx, next(t, ext)) // the decision recorded, the child not started
	testHookAfterCommit = nil
	kid := workflow.ChildID(wf, "k", 1)
	if _, err := r.store.LastSeq(r.ctx, kid); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("the child exists (%v): the test needs its start cut short", err)
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.ChildStarted != nil && ev.ChildStarted.Revision == 1 }); n != 1 {
		t.Fatalf("%d ChildStarted records name revision 1; want 1", n)
	}
	r.putDef("kid", "name: kid\ninput_schema: { type: object, required: [customer] }\nsteps:\n  - { id: a, task: work }\n")
	sh.handle(context.WithoutCancel(r.ctx), next(t, ext)) // the start, delivered again: reconcile starts the child
	first, err := r.store.First(r.ctx, kid)
	if err != nil || first.Err != nil {
		n, _ := r.count(wf, func(ev events.Event) bool {
			return ev.StepFailed != nil && ev.StepFailed.Error.Type == workflow.ErrTypeInvalidInput
		})
		t.Fatalf("the recorded child was not started (%v, %v; its step failed invalid_input %d time(s))", err, first.Err, n)
	}
	if rev := first.Record.Events[0].WorkflowStarted.Revision; rev != 1 {
		t.Fatalf("the child started on revision %d of kid; its step started when revision 1 was the latest", rev)
	}
}
