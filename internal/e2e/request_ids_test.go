package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// countRequests returns how many events of type typ id's history holds, and
// checks that each of them names request id reqID when it is set.
func (e *env) countRequests(id, typ, reqID string) int {
	e.t.Helper()
	n := 0
	for _, ev := range e.history(id) {
		if ev.Type != typ {
			continue
		}
		n++
		if got := ev.Data.GetStructValue().GetFields()["request_id"].GetStringValue(); reqID != "" && got != reqID && n == 1 {
			e.t.Errorf("%s of %s reads back request_id %q, want %q", typ, id, got, reqID)
		}
	}
	return n
}

// A redrive asked again with its request_id, after it was applied and
// the run failed again (the client lost the first answer), is not applied
// a second time: it answers OK and the history holds one WorkflowRetried.
// Another request_id redrives it again.
func TestARedriveRepeatedWithItsRequestIDIsAppliedOnce(t *testing.T) {
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"boom": func(context.Context, *executor.Task) (any, error) {
			return nil, executor.NonRetryable(errors.New("always"))
		},
	}})
	e.putDef("name: fails\nsteps:\n  - { id: a, task: boom }\n")
	id := e.start("fails", "fails-1", `{}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("run %v, want FAILED", w.Status)
	}
	retry := func(reqID string) error {
		_, err := e.wf.RetryWorkflow(ctx(t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id, RequestId: reqID}))
		return err
	}
	failedAgain := func(n int) {
		t.Helper()
		eventually(t, 20*time.Second, "the redriven run to fail again", func() bool {
			w := e.get(id)
			return w.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED && e.countRequests(id, "WorkflowFailed", "") == n
		})
	}
	if err := retry("again-1"); err != nil {
		t.Fatal(err)
	}
	failedAgain(2)
	if err := retry("again-1"); err != nil {
		t.Fatalf("the redrive repeated with its request_id: %v; want OK", err)
	}
	if n := e.countRequests(id, "WorkflowRetried", "again-1"); n != 1 {
		t.Fatalf("%d WorkflowRetried after the repeat; want 1", n)
	}
	if err := retry("again-2"); err != nil {
		t.Fatal(err)
	}
	failedAgain(3)
	if n := e.countRequests(id, "WorkflowRetried", "again-1"); n != 2 {
		t.Fatalf("%d WorkflowRetried after another request; want 2", n)
	}
}

// A resume asked again with its request_id, after it was applied and the
// run suspended again, is not applied a second time.
func TestAResumeRepeatedWithItsRequestIDIsAppliedOnce(t *testing.T) {
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"charge": func(context.Context, *executor.Task) (any, error) {
			return nil, errors.New("the payment service is down")
		},
	}})
	e.putDef(chargeDef)
	id := e.start("charge", "charge-1", `{}`)
	e.waitStep(id, "charge", weftv1.StepStatus_STEP_STATUS_SUSPENDED)
	resume := func(reqID string) error {
		_, err := e.wf.ResumeWorkflow(ctx(t), connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: id, RequestId: reqID}))
		return err
	}
	if err := resume("go-on-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the resumed step to suspend again", func() bool {
		return e.countRequests(id, "StepSuspended", "") == 2 && e.get(id).Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED
	})
	if err := resume("go-on-1"); err != nil {
		t.Fatalf("the resume repeated with its request_id: %v; want OK", err)
	}
	if n := e.countRequests(id, "WorkflowResumed", "go-on-1"); n != 1 {
		t.Fatalf("%d WorkflowResumed after the repeat; want 1", n)
	}
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
}

// A cancel asked again with its request_id once the run closed CANCELED
// answers OK, where one without it, or with another, is refused.
func TestACancelRepeatedWithItsRequestIDAnswersOK(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef("name: waits\nsteps:\n  - { id: w, wait: { signal: go } }\n")
	id := e.start("waits", "waits-1", `{}`)
	e.waitStep(id, "w", weftv1.StepStatus_STEP_STATUS_WAITING)
	cancel := func(reqID string) error {
		_, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id, Reason: "stop", RequestId: reqID}))
		return err
	}
	if err := cancel("stop-1"); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("run %v, want CANCELED", w.Status)
	}
	if err := cancel("stop-1"); err != nil {
		t.Fatalf("the cancel repeated with its request_id: %v; want OK", err)
	}
	for _, other := range []string{"", "stop-2"} {
		if err := cancel(other); connect.CodeOf(err) != connect.CodeFailedPrecondition {
			t.Fatalf("a cancel of the closed run with request_id %q: %v; want FailedPrecondition", other, err)
		}
	}
	if n := e.countRequests(id, "CancelRequested", "stop-1"); n != 1 {
		t.Fatalf("%d CancelRequested; want 1", n)
	}
}
