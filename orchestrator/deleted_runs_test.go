package orchestrator

import (
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A task result of a run that retention deleted meanwhile (the run was
// canceled, or failed on its timeout, while the task ran) can never
// apply: its history reads as none from a stream past its command, and it
// is dropped, not taken for a read behind the command for ever.
func TestAResultOfADeletedRunIsDropped(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "gone"
	r.start(wf, "one")
	sh.handle(r.ctx, next(t, ext))
	_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil { // retention, after a cancel
		t.Fatal(err)
	}
	sh.forget(wf)
	// The executor that ran the command reports its result after the deletion.
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeCompleted, Output: "late", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	d := next(t, results)
	err := sh.processUntilSettled(r.ctx, d)
	var perm errPermanent
	if !errors.As(err, &perm) {
		t.Fatalf("a result of a deleted run: %v; want it dropped (errPermanent), not redelivered for ever", err)
	}
	// One whose command the stream has not stored yet (a read behind it:
	// a replica that applied the command first handed it out) is tried
	// again, not dropped.
	d.WorkflowID, d.Result.WorkflowID, d.Result.Cmd = "not-yet", "not-yet", cmd+1000
	if err := sh.processUntilSettled(r.ctx, d); err == nil || errors.As(err, &perm) {
		t.Fatalf("a result whose command the stream has not reached: %v; want it tried again", err)
	}
}

// A run deleted by retention and started again under its id does not take
// the old run's late task result for its own: the result names the old
// command (Cmd), older than the new run's first record.
func TestARunStartedAgainDoesNotTakeTheOldRunsTaskResult(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	sh := r.shard()
	ext, results := r.feeds()
	const wf = "again2"
	r.start(wf, "one")
	sh.handle(r.ctx, next(t, ext))
	_, oldCmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	sh.forget(wf)
	var zero uint64
	if _, err := r.store.AppendExternal(r.ctx, wf, &zero, "start/"+wf+"/second", startEvent(wf, "one")); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, ext)) // the new run schedules its own step a
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: oldCmd,
		Outcome: events.OutcomeCompleted, Output: "OLD RUN", Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results))
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepCompleted != nil }); n != 0 {
		t.Fatalf("the new run recorded the deleted run's result as its own step a's (%d StepCompleted)", n)
	}
}

// One decision of a parallel records a child's start, then cancels the
// child step (its sibling branch failed) and fails the workflow. The child
// is started with its cancel in its first record: no orchestrator that
// takes the start can decide its first step before the cancel.
func TestAChildCanceledInTheDecisionThatStartedItRunsNoStep(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: charge, task: work }\n")
	r.putDef("p", `
name: p
steps:
  - id: fan
    parallel:
      branches:
        a: [ { id: kid, workflow: kid } ]
        b: [ { id: boom, fail: { message: no } } ]
`)
	r.run()
	r.run()
	ran := 0
	const n = 20
	for i := range n {
		wf := "p" + string(rune('a'+i))
		r.start(wf, "p")
		kid := workflowChildID(wf)
		eventually(t, 10*time.Second, "the child canceled", func() bool {
			c, _ := r.count(kid, func(ev events.Event) bool { return ev.WorkflowCanceled != nil })
			return c == 1
		})
		if s, _ := r.count(kid, func(ev events.Event) bool { return ev.StepScheduled != nil }); s > 0 {
			ran++
		}
	}
	if ran > 0 {
		t.Fatalf("%d of %d children the parent canceled in the decision that recorded them had their first step scheduled", ran, n)
	}
}

func workflowChildID(wf string) string { return workflow.ChildID(wf, "kid", 1) }

// A start, signal or cancel whose history reads as none is never dropped
// on the orchestrator's word: the record is the input itself, and a read
// that missed it may come from a leader just elected. It is tried again;
// if its run was deleted, the stream hands it out no more.
func TestAnOutsideInputThatReadsAsNoneIsTriedAgain(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	sh := r.shard()
	ext, _ := r.feeds()
	const wf = "gone-ext"
	r.start(wf, "one")
	d := next(t, ext)
	if err := r.store.DeleteRun(r.ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	err := sh.processUntilSettled(r.ctx, d)
	var perm errPermanent
	if err == nil || errors.As(err, &perm) {
		t.Fatalf("a start whose history reads as none: %v; want it tried again, not dropped", err)
	}
	_ = d.Nak(0)
	eventually(t, 10*time.Second, "the deleted start settled by the stream", func() bool {
		in, err := r.store.ExternalInputsOf(r.ctx)
		return err == nil && in.AckFloor >= d.Seq
	})
}
