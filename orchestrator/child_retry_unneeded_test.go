package orchestrator

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child that failed just as its parent was canceled (the parent's
// cancel recorded before the child's outcome) is left alone by the
// parent: a closed child needs no cancel. A retry of that child would run
// it for no one, and nothing would ever cancel it (the parent asks a
// child to cancel only while it runs): the API refuses it and says why.
// A child whose failure failed its parent is retried as before (the
// parent's own retry may take its result).
func TestARetryOfAChildItsParentNoLongerNeedsIsRefused(t *testing.T) {
	for _, canceled := range []bool{true, false} {
		t.Run(map[bool]string{true: "parent canceled first", false: "parent failed by it"}[canceled], func(t *testing.T) {
			retryChild(t, canceled)
		})
	}
}

// retryChild runs a parent whose child fails, cancels the parent before
// the child's outcome reaches it if canceled, and retries the child.
func retryChild(t *testing.T, canceled bool) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: boom, task: work }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	ext, results := r.feeds()
	sh := r.shard()
	const wf = "mum-gone"
	kid := workflow.ChildID(wf, "k", 1)
	r.start(wf, "mum")
	sh.handle(r.ctx, next(t, ext)) // the parent starts its child
	sh.handle(r.ctx, next(t, ext)) // the child schedules boom
	path, gen, cmd := r.lastScheduled(kid)
	if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: kid, Path: path, Gen: gen, Attempt: 1, Cmd: cmd,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: "boom", Message: "no"}, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	sh.handle(r.ctx, next(t, results)) // the child fails; its outcome is on its way to the parent
	if canceled {
		r.requestCancel(wf, "test")
		sh.handle(r.ctx, next(t, ext)) // the parent is canceled first
	} else {
		sh.handle(r.ctx, next(t, results)) // the parent takes the child's failure, and fails
	}
	if n, _ := r.count(wf, func(ev events.Event) bool { return ev.WorkflowCanceled != nil || ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("the parent closed %d times; want once", n)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.WorkflowFailed != nil }); n != 1 {
		t.Fatalf("the child recorded %d WorkflowFailed; want 1", n)
	}
	s, err := api.New(r.store, api.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RetryWorkflow(r.ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: kid, RequestId: "again"}))
	if !canceled {
		if err != nil {
			t.Fatalf("RetryWorkflow of a child whose failure failed its parent: %v", err)
		}
		return
	}
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "no longer needs it") ||
		!strings.Contains(err.Error(), wf) {
		t.Fatalf("RetryWorkflow of a child its canceled parent no longer needs: %v; want FailedPrecondition naming the parent", err)
	}
	if n, _ := r.count(kid, func(ev events.Event) bool { return ev.WorkflowRetried != nil }); n != 0 {
		t.Fatalf("the child was retried")
	}
}
