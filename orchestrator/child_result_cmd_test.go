package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child's outcome names a record of its parent's run that holds the
// child's start (Result.Cmd), as a task's result names its command: an
// orchestrator judges it only on a parent history that reaches it. With
// none named (Cmd 0) a parent read from a leader just elected, behind the
// ChildStarted record (or behind the parent's first record: "no
// history"), dropped the outcome for good, and the parent waited for its
// child for ever.
func TestAChildsOutcomeNamesTheParentRecordThatStartedIt(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: charge, task: work }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "mum-1"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent records ChildStarted and starts the child
	_, startedAt := r.count(wf, func(ev events.Event) bool { return ev.ChildStarted != nil })
	if startedAt == 0 {
		t.Fatal("the parent recorded no ChildStarted")
	}
	sh.handle(r.ctx, next(t, ext)) // the child schedules its task
	_, cmd := r.count(kid, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: kid, Path: "charge", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results)) // the child completes and tells its parent
	d := next(t, results)
	if d.WorkflowID != wf {
		t.Fatalf("got a result for %s, want the child's outcome for %s", d.WorkflowID, wf)
	}
	if d.Result.Cmd < startedAt {
		t.Fatalf("the child's outcome names parent record %d, before the ChildStarted record %d: a parent history read behind it drops the outcome", d.Result.Cmd, startedAt)
	}
	// Judged on a parent history that does not reach the record (a read
	// behind it), the outcome is tried again, not dropped.
	behind := *d
	res := *d.Result
	res.Cmd += 1000
	behind.Result = &res
	sh.forget(wf)
	var perm errPermanent
	if err := sh.processUntilSettled(r.ctx, &behind); err == nil || errors.As(err, &perm) {
		t.Fatalf("a child's outcome judged on a parent history behind it: %v; want it tried again", err)
	}
	// On the history that reaches it, it is recorded.
	sh.handle(r.ctx, d)
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepCompleted != nil }); n != 1 {
		t.Fatalf("the parent recorded %d StepCompleted for its child, want 1", n)
	}
}
