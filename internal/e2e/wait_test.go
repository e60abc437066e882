package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

const approval = `
name: approval
steps:
  - id: prepare
    task: echo
    input: "${ input }"
  - id: approve
    wait: { signal: approve, timeout: "${TIMEOUT}" }
  - id: done
    task: echo
    input: "${ steps.approve.output }"
output: "${ {'approved': steps.approve.output, 'by': steps.done.output.by} }"
`

func approvalDef(timeout string) string {
	return replace(approval, "${TIMEOUT}", timeout)
}

func replace(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	return s
}

func (e *env) signal(id, name, payload string) error {
	_, err := e.wf.SignalWorkflow(ctx(e.t), connect.NewRequest(&weftv1.SignalWorkflowRequest{
		WorkflowId: id, Name: name, Payload: jsonValue(e.t, payload)}))
	return err
}

func stepStatus(w *weftv1.Workflow, path string) weftv1.StepStatus {
	for _, s := range w.Steps {
		if s.Path == path {
			return s.Status
		}
	}
	return weftv1.StepStatus_STEP_STATUS_UNSPECIFIED
}

func TestWaitCompletesOnSignal(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	eventually(t, 20*time.Second, "wait to start", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if err := e.signal(id, "other", `1`); err != nil {
		t.Fatal(err)
	}
	if err := e.signal(id, "approve", `{"by": "ann"}`); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if got := toJSON(w.Output); got != `{"approved":{"by":"ann"},"by":"ann"}` {
		t.Fatalf("output %s", got)
	}
	// Signalling a closed workflow is refused.
	err := e.signal(id, "approve", `{}`)
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("signal after completion: %v", err)
	}
}

// A signal sent before the workflow reaches its wait is kept for it.
func TestSignalBeforeWaitIsKept(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: early
steps:
  - id: first
    wait: { signal: go }
  - id: second
    wait: { signal: approve }
output: "${ [steps.first.output, steps.second.output] }"
`)
	id := e.start("early", "", ``)
	// Both signals arrive while the workflow still waits on "go".
	if err := e.signal(id, "approve", `"yes"`); err != nil {
		t.Fatal(err)
	}
	if err := e.signal(id, "go", `1`); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `[1,"yes"]` {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
}

// A wait's timeout is a durable timer: it fires after the server and
// Weft restart, and fails the step.
func TestWaitTimeoutFiresAfterRestart(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("3s"))
	id := e.start("approval", "", `{}`)
	eventually(t, 20*time.Second, "wait to start", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	// Stop Weft and NATS, then bring both back on the same store.
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	e.ns.Restart()
	e.node = e.startNode(envOpts{}, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)

	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "timeout" || w.Error.StepPath != "approve" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	var fired int
	var waitStarted, timerFired time.Time
	for _, ev := range e.history(id) {
		switch ev.Type {
		case "WaitStarted":
			waitStarted = ev.Time.AsTime()
		case "TimerFired":
			fired++
			timerFired = ev.Time.AsTime()
		}
	}
	if fired != 1 {
		t.Fatalf("timer fired %d times", fired)
	}
	if d := timerFired.Sub(waitStarted); d < 3*time.Second {
		t.Fatalf("timer fired %s after the wait started, want >= 3s", d)
	}
}

func TestCancelWorkflow(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{}`)
	eventually(t, 20*time.Second, "wait to start", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id, Reason: "not needed"})); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED || stepStatus(w, "approve") != weftv1.StepStatus_STEP_STATUS_CANCELED {
		t.Fatalf("status %v steps %v", w.Status, w.Steps)
	}
	_, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("second cancel: %v", err)
	}
	// The listing index follows the history.
	eventually(t, 10*time.Second, "index to show the cancel", func() bool {
		resp, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED}))
		return err == nil && len(resp.Msg.Workflows) == 1 && resp.Msg.Workflows[0].Id == id
	})
}

// A signal repeated with the same request id is delivered once.
func TestSignalRequestIDDeduplicates(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: twice
steps:
  - id: one
    wait: { signal: go }
  - id: two
    wait: { signal: go }
`)
	id := e.start("twice", "", ``)
	for range 3 {
		if _, err := e.wf.SignalWorkflow(ctx(t), connect.NewRequest(&weftv1.SignalWorkflowRequest{
			WorkflowId: id, Name: "go", Payload: jsonValue(t, `1`), RequestId: "same"})); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "first wait to complete", func() bool {
		return stepStatus(e.get(id), "one") == weftv1.StepStatus_STEP_STATUS_COMPLETED
	})
	if s := stepStatus(e.get(id), "two"); s != weftv1.StepStatus_STEP_STATUS_WAITING {
		t.Fatalf("second wait is %v: a repeated signal satisfied it", s)
	}
	if err := e.signal(id, "go", `2`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 10*time.Second); toJSON(w.Output) != "2" {
		t.Fatalf("output %s", toJSON(w.Output))
	}
}

// The listing follows a workflow's status: a waiting workflow is listed
// running, and completed once its signal arrived.
func TestListingFollowsStatus(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "", `{"amount": 5}`)
	listed := func() weftv1.WorkflowStatus {
		resp, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "approval"}))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range resp.Msg.Workflows {
			if w.Id == id {
				return w.Status
			}
		}
		return weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED
	}
	eventually(t, 20*time.Second, "the waiting workflow to be listed running", func() bool {
		return listed() == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
	if err := e.signal(id, "approve", `{"by": "ann"}`); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(id, 20*time.Second)
	eventually(t, 20*time.Second, "the workflow to be listed completed", func() bool {
		return listed() == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	})
}

// Pages of the listing follow each other even when workflows start between
// two calls: each listed workflow shows up once, on one page.
func TestListingPagesStayPut(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	list := func(tok string) ([]string, string) {
		resp, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "approval", PageSize: 2, PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, w := range resp.Msg.Workflows {
			ids = append(ids, w.Id)
		}
		return ids, resp.Msg.NextPageToken
	}
	listedAll := func(n int) func() bool {
		return func() bool {
			resp, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "approval"}))
			return err == nil && len(resp.Msg.Workflows) == n
		}
	}
	for i := range 5 {
		e.start("approval", fmt.Sprintf("page-%d", i), `{"amount": 5}`)
	}
	eventually(t, 20*time.Second, "five workflows to be listed", listedAll(5))
	first, tok := list("")
	if len(first) != 2 || tok == "" {
		t.Fatalf("first page: %v, next %q", first, tok)
	}
	// Two more start: newer, so listed before the first page.
	for i := range 2 {
		e.start("approval", fmt.Sprintf("page-new-%d", i), `{"amount": 5}`)
	}
	eventually(t, 20*time.Second, "seven workflows to be listed", listedAll(7))
	seen := map[string]int{}
	for _, id := range first {
		seen[id]++
	}
	for tok != "" {
		var ids []string
		ids, tok = list(tok)
		for _, id := range ids {
			seen[id]++
		}
	}
	for i := range 5 {
		if id := fmt.Sprintf("page-%d", i); seen[id] != 1 {
			t.Errorf("%s listed %d times across the pages, want once (pages: %v)", id, seen[id], seen)
		}
	}
	if len(seen) != 5 {
		t.Errorf("pages after the first listed %v; want only the five there when paging began", seen)
	}
	if _, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{PageToken: "3"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("a malformed page token: %v, want InvalidArgument", err)
	}
}
