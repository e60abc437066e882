package orchestrator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// startWith appends wf's start with input, as the API does; false when
// the start itself does not fit in a record.
func (r *rig) startWith(wf, def string, input any, parent *events.ParentRef) (uint64, bool) {
	r.t.Helper()
	ev := startEvent(wf, def)
	ev.WorkflowStarted.Input = input
	ev.WorkflowStarted.Parent = parent
	var zero uint64
	seq, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf, ev)
	if errors.Is(err, eventstore.ErrTooLarge) {
		return 0, false
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return seq, true
}

// A parent whose ChildStarted fits in a record, but whose child's start
// record (the same input plus the parent ref, identity, request id) does
// not: the child cannot be started, and the step fails with limit. (It
// once failed reconcile on every input: the parent was stranded RUNNING,
// and even a cancel's follow-ups never ran.)
func TestAChildStartTooLargeFailsItsStep(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid, input: \"${ input + input }\" }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	max := int(r.store.MaxPayload())
	stranded := 0
	for n := (max - 900) / 2; n < max/2; n += 8 {
		wf := fmt.Sprintf("mum-%d", n)
		if _, ok := r.startWith(wf, "mum", strings.Repeat("x", n), nil); !ok {
			continue
		}
		d := next(t, ext)
		for d.WorkflowID != wf { // a child's start, from an earlier round
			_ = d.Ack()
			d = next(t, ext)
		}
		err := sh.processUntilSettled(r.ctx, d)
		var broken errBroken
		switch {
		case err == nil:
		case errors.As(err, &broken):
			// The ChildStarted itself did not fit: the parent fails with limit.
		case errors.Is(err, eventstore.ErrTooLarge):
			stranded++
			if stranded == 1 {
				t.Errorf("input of %d bytes: the ChildStarted was recorded but the child cannot be started: %v", n, err)
				// Again, as a redelivery would: the same error, for ever.
				if err2 := sh.processUntilSettled(r.ctx, d); err2 == nil {
					t.Errorf("a redelivery went through")
				} else {
					t.Logf("redelivery: %v", err2)
				}
				if _, err := r.store.LastSeq(r.ctx, workflow.ChildID(wf, "k", 1)); !errors.Is(err, eventstore.ErrNotFound) {
					t.Logf("child: %v", err)
				}
				// Even a cancel cannot settle it: the cancel is recorded,
				// but its follow-ups (listing, parent, slot, deletion) never run.
				_ = d.Ack()
				r.requestCancel(wf, "give up")
				d = next(t, ext)
				for d.WorkflowID != wf {
					_ = d.Ack()
					d = next(t, ext)
				}
				sh.forget(wf)
				err3 := sh.processUntilSettled(r.ctx, d)
				_, closed, _ := sh.closed(r.ctx, wf)
				sum, serr := r.store.GetSummary(r.ctx, wf)
				t.Errorf("after a cancel: closed in history=%v, processing error=%v, listing %q (%v)", closed, err3, sum.Status, serr)
			}
		default:
			t.Fatalf("input of %d bytes: %v", n, err)
		}
		sh.forget(wf)
		_ = d.Ack()
	}
	if stranded > 0 {
		t.Errorf("%d input sizes strand the parent", stranded)
	}
}

// A child whose closing record fits, but whose result for its parent (the
// same output, plus the parent's id, path, creation and a message id
// naming them) does not: the parent's step fails with invalid_output. (It
// once failed tellParent on every input: the child's later follow-ups
// never ran, and the parent's step waited for ever.)
func TestAChildResultTooLargeFailsItsStep(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: done, succeed: { output: \"${ input + input }\" } }\n")
	sh := r.shard()
	ext, _ := r.feeds()
	max := int(r.store.MaxPayload())
	parent := strings.Repeat("p", 128) // a workflow id may be 128 characters
	// A child step nested in two foreach loops (step ids up to 64 characters).
	deep := strings.Repeat("a", 60) + "[1234]." + strings.Repeat("b", 60) + "[567]." + strings.Repeat("c", 60)
	stranded := 0
	for n := (max - 1200) / 2; n < max/2; n += 8 {
		wf := workflow.ChildID(parent, fmt.Sprintf("%s%d", deep, n), 1)
		ref := &events.ParentRef{WorkflowID: parent, Path: fmt.Sprintf("%s%d", deep, n), Gen: 1, Created: time.Now().UTC()}
		if _, ok := r.startWith(wf, "kid", strings.Repeat("x", n), ref); !ok {
			continue
		}
		d := next(t, ext)
		for d.WorkflowID != wf {
			_ = d.Ack()
			d = next(t, ext)
		}
		err := sh.processUntilSettled(r.ctx, d)
		var broken errBroken
		switch {
		case err == nil:
		case errors.As(err, &broken):
		case errors.Is(err, eventstore.ErrTooLarge):
			stranded++
			if stranded == 1 {
				last, closed, cerr := sh.closed(r.ctx, wf)
				t.Errorf("output of %d bytes: the child closed (closed=%v at %d, %v) but cannot tell its parent: %v", 2*n, closed, last, cerr, err)
				if err2 := sh.processUntilSettled(r.ctx, d); err2 != nil {
					t.Logf("redelivery: %v", err2)
				}
			}
		default:
			t.Fatalf("output of %d bytes: %v", 2*n, err)
		}
		sh.forget(wf)
		_ = d.Ack()
	}
	if stranded > 0 {
		t.Errorf("%d output sizes strand the parent", stranded)
	}
}

// A decision too large to store (a foreach of 50,000 items) while the run
// holds its definition's concurrency slot and has a parent: the run fails
// with limit, its slot goes to the next run, and its parent is told.
func TestADecisionTooLargeRunsItsFollowUps(t *testing.T) {
	r := newRig(t)
	r.putDef("big", `
name: big
concurrency: { limit: 1 }
steps:
  - id: each
    foreach: "${ lists.range(50000).map(i, 'item-padding-padding-' + string(i)) }"
    do: [ { id: t, task: work } ]
`)
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: big }\n")
	r.run()
	r.start("mum-1", "mum")
	kid := workflow.ChildID("mum-1", "k", 1)
	eventually(t, 20*time.Second, "the child to fail", func() bool {
		_, closed, _ := (&shard{o: &Orchestrator{store: r.store}}).closed(r.ctx, kid)
		return closed
	})
	r.start("big-2", "big")
	eventually(t, 20*time.Second, "big-2 to be admitted or closed", func() bool {
		n, _ := r.count("big-2", func(ev events.Event) bool { return ev.WorkflowAdmitted != nil || ev.Terminal() })
		return n > 0
	})
	eventually(t, 20*time.Second, "mum-1 to fail", func() bool {
		n, _ := r.count("mum-1", func(ev events.Event) bool { return ev.WorkflowFailed != nil })
		return n > 0
	})
	for _, m := range r.history(kid) {
		for _, ev := range m.Record.Events {
			if ev.WorkflowFailed != nil {
				t.Logf("child failed: %+v", ev.WorkflowFailed.Error)
			}
		}
	}
	eventually(t, 10*time.Second, "the child's listing", func() bool {
		s, err := r.store.GetSummary(r.ctx, kid)
		return err == nil && s.Status == string(workflow.StatusFailed)
	})
}
