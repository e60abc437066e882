package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// parallel, set/vars, if, catch and succeed together.
func TestControlFlow(t *testing.T) {
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"boom": func(ctx context.Context, task *executor.Task) (any, error) {
			return nil, executor.NonRetryable(executor.NewError("bad_request", "no such account"))
		},
	}})
	e.putDef(`
name: control
steps:
  - id: both
    parallel:
      branches:
        left:  [ { id: l1, task: echo, input: "${ input.x + 1 }" } ]
        right: [ { id: r1, task: echo, input: "${ input.x * 10 }" }, { id: r2, task: echo, input: "${ steps.r1.output + 1 }" } ]
  - id: remember
    set: { total: "${ steps.both.output.left + steps.both.output.right }" }
  - id: skipped
    if: "${ vars.total > 1000 }"
    task: echo
    input: never
  - id: risky
    task: boom
    catch:
      - errors: [timeout]
        do: [ { id: never, task: echo, input: no } ]
      - errors: [bad_request]
        do: [ { id: recover, task: echo, input: "${ error.type + ' recovered from ' + string(steps.both.output.right) }" } ]
  - id: early
    if: "${ input.stop }"
    succeed: { output: "${ {'total': vars.total, 'risky': steps.risky.output} }" }
  - id: unreachable
    fail: { message: "should have stopped", type: oops }
`)
	id := e.start("control", "", `{"x": 4, "stop": true}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if got := toJSON(w.Output); got != `{"risky":"bad_request recovered from 41","total":46}` {
		t.Fatalf("output %s", got)
	}
	if s := stepStatus(w, "skipped"); s != weftv1.StepStatus_STEP_STATUS_SKIPPED {
		t.Fatalf("skipped step is %v", s)
	}
	if s := stepStatus(w, "never"); s != weftv1.StepStatus_STEP_STATUS_PENDING && s != weftv1.StepStatus_STEP_STATUS_UNSPECIFIED {
		t.Fatalf("the non-matching catch ran: %v", s)
	}

	// Without stop, the fail step fails the workflow with its type.
	id = e.start("control", "", `{"x": 4, "stop": false}`)
	w = e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "oops" || w.Error.StepPath != "unreachable" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	e.healthy()
}

// A workflow-level timeout fails the run.
func TestWorkflowTimeout(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: slowpoke
timeout: 2s
steps:
  - { id: forever, wait: { signal: never } }
`)
	id := e.start("slowpoke", "", ``)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "timeout" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if d := w.ClosedTime.AsTime().Sub(w.CreatedTime.AsTime()); d < 2*time.Second {
		t.Fatalf("timed out after %s", d)
	}
	e.healthy()
}

// A failed parallel branch fails the step unless on_error: continue.
func TestParallelOnError(t *testing.T) {
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"boom": func(ctx context.Context, task *executor.Task) (any, error) {
			return nil, executor.NonRetryable(errors.New("down"))
		},
	}})
	e.putDef(`
name: par
steps:
  - id: fan
    on_error: continue
    parallel:
      branches:
        ok: [ { id: fine, task: echo, input: 1 } ]
        bad: [ { id: broken, task: boom } ]
`)
	w := e.waitClosed(e.start("par", "", ``), 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED ||
		toJSON(w.Output) != `{"bad":{"error":{"message":"down","step":"broken","type":"error"}},"ok":1}` {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	e.healthy()
}
