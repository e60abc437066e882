package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

const chargeDef = `
name: charge
steps:
  - id: charge
    task: charge
    retry: { max_attempts: 2, initial_interval: 50ms, exhausted: suspend }
  - id: receipt
    wait: { signal: receipt }
output: "${ {'charged': steps.charge.output, 'receipt': steps.receipt.output} }"
`

// A step whose attempts run out under exhausted: suspend suspends its run:
// nothing else moves, it is listed as suspended, doctor says it waits, a
// signal sent meanwhile is kept; a resume gives the step fresh attempts and
// the run completes, the step's effect made once for its idempotency key.
func TestSuspendedRunResumesAndCompletes(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	effects := map[string]int{}
	var attempts []int
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"charge": func(ctx context.Context, task *executor.Task) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			attempts = append(attempts, task.Attempt)
			if down.Load() {
				return nil, errors.New("the payment service is down")
			}
			effects[task.IdempotencyKey]++
			return "ok", nil
		},
	}})
	e.putDef(chargeDef)
	id := e.start("charge", "charge-1", `{}`)
	e.waitStep(id, "charge", weftv1.StepStatus_STEP_STATUS_SUSPENDED)
	w := e.get(id)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED {
		t.Fatalf("run status %v, want SUSPENDED", w.Status)
	}
	for _, s := range w.Steps {
		if s.Path == "charge" && (s.Attempts != 2 || !strings.Contains(s.GetLastError().GetMessage(), "down")) {
			t.Fatalf("suspended step: %v", s)
		}
		if s.Path == "receipt" && s.Status != weftv1.StepStatus_STEP_STATUS_PENDING {
			t.Fatalf("a step after the suspended one started: %v", s)
		}
	}
	eventually(t, 10*time.Second, "the run listed as suspended", func() bool {
		res, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED}))
		return err == nil && len(res.Msg.Workflows) == 1 && res.Msg.Workflows[0].Id == id
	})
	e.healthy() // suspended is waiting, not stuck
	// A signal sent while suspended is kept for the wait after the step.
	if err := e.signal(id, "receipt", `"r-1"`); err != nil {
		t.Fatal(err)
	}
	// A resume of a run that is not suspended is refused, naming why.
	other := e.start("charge", "charge-2", `{}`)
	e.waitStep(other, "charge", weftv1.StepStatus_STEP_STATUS_SUSPENDED)
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: other, Reason: "give up"})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(other, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("canceled suspended run: %v", w.Status)
	}
	_, err := e.wf.ResumeWorkflow(ctx(t), connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: other}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "only SUSPENDED workflows can be resumed") {
		t.Fatalf("resume of a canceled run: %v", err)
	}

	down.Store(false)
	if _, err := e.wf.ResumeWorkflow(ctx(t), connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: id, Reason: "service fixed"})); err != nil {
		t.Fatal(err)
	}
	w = e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `{"charged":"ok","receipt":"r-1"}` {
		t.Fatalf("after resume: %v %s %v", w.Status, toJSON(w.Output), w.Error)
	}
	mu.Lock()
	if effects["charge-1/charge"] != 1 || len(effects) != 1 {
		t.Errorf("effects %v, want one for charge-1/charge", effects)
	}
	mu.Unlock()
	var types []string
	for _, ev := range e.history(id) {
		switch ev.Type {
		case "StepSuspended", "WorkflowResumed":
			types = append(types, ev.Type)
		case "StepScheduled":
			if ev.StepPath == "charge" {
				types = append(types, fmt.Sprintf("%s@%d", ev.Type, ev.Attempt))
			}
		}
	}
	if got := strings.Join(types, " "); got != "StepScheduled@1 StepSuspended WorkflowResumed StepScheduled@3" {
		t.Errorf("history: %s", got)
	}
	e.healthy()
}
