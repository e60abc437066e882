package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A corrupt record in one workflow's history fails that workflow with a
// clear error; the others carry on.
func TestCorruptHistoryFailsOnlyThatWorkflow(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	bad := e.start("approval", "victim", `{}`)
	good := e.start("approval", "bystander", `{}`)
	for _, id := range []string{bad, good} {
		eventually(t, 20*time.Second, id+" to wait", func() bool {
			return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
		})
	}
	nc := e.ns.Connect(t)
	if err := nc.Publish("weft.h.victim.ev", []byte("\xc1 definitely not msgpack")); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	if err := e.signal(good, "approve", `{"by": "ann"}`); err != nil {
		t.Fatal(err)
	}
	// The victim's history no longer folds: it shows as failed at once.
	_ = e.signal(bad, "approve", `{"by": "ann"}`)
	w := e.waitClosed(bad, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "corrupt_history" {
		t.Fatalf("victim: %v %v", w.Status, w.Error)
	}
	if w := e.waitClosed(good, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("bystander: %v %v", w.Status, w.Error)
	}
	var types []string
	for _, ev := range e.history(bad) {
		types = append(types, ev.Type)
	}
	if !strings.Contains(strings.Join(types, " "), "CorruptRecord") {
		t.Fatalf("history %v", types)
	}
}

// A handler returning an output too large to record fails its step, not
// the orchestrator.
func TestOversizedOutputFailsTheStep(t *testing.T) {
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"huge": func(ctx context.Context, task *executor.Task) (any, error) {
			return strings.Repeat("x", 2<<20), nil
		},
	}})
	e.putDef(`
name: huge
steps:
  - { id: big, task: huge }
`)
	w := e.waitClosed(e.start("huge", "", ``), 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "invalid_output" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
}

// endlessLoopDef repeats an echo step until its runs' history limit (an
// env with maxHistory 20) fails them with type limit.
const endlessLoopDef = `
name: loop
steps:
  - id: many
    repeat:
      do: [ { id: tick, task: echo, input: "${ iteration }" } ]
      until: "${ false }"
      max_iterations: 1000
`

// Oversized inputs, signals and definitions get InvalidArgument naming the
// limit; a workflow whose history would pass its limit fails with type limit.
func TestLimits(t *testing.T) {
	e := newEnv(t, envOpts{maxHistory: 20})
	e.putDef(endlessLoopDef)
	big := `"` + strings.Repeat("x", 1100<<10) + `"`
	_, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "loop", Input: jsonValue(t, big)}))
	wantCode(t, "oversized input", err, connect.CodeInvalidArgument, "limit is 1048576 bytes")
	id := e.start("loop", "", ``)
	err = e.signal(id, "x", big)
	wantCode(t, "oversized signal", err, connect.CodeInvalidArgument, "limit is 1048576 bytes")
	_, err = e.defs.PutDefinition(ctx(t), connect.NewRequest(&weftv1.PutDefinitionRequest{Source: "name: x\n#" + strings.Repeat("y", 300<<10)}))
	wantCode(t, "oversized definition", err, connect.CodeInvalidArgument, "limit is")
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "limit" {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
}

// A definition accepted by PutDefinition builds a string that is not
// valid UTF-8 (CEL's format() of bytes) into a search attribute and a
// fail step's message. What a run records must read back: GetWorkflow,
// GetHistory, and ListWorkflows (for this run and for the others).
func TestAnInvalidUTF8StringBuiltByAnExpressionReadsBack(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: okdef
steps:
  - { id: a, task: echo, input: 1 }
`)
	e.putDef(`
name: badsearch
search:
  tag: "${ '%s'.format([base64.decode(input.blob)]) }"
steps:
  - { id: a, task: echo, input: 1 }
`)
	e.putDef(`
name: badfail
steps:
  - id: boom
    fail: { message: "${ 'bad: %s'.format([base64.decode(input.blob)]) }" }
`)
	ok := e.start("okdef", "ok-1", "")
	e.waitClosed(ok, 10*time.Second)
	bs := e.start("badsearch", "bs-1", `{"blob": "/w=="}`)
	bf := e.start("badfail", "bf-1", `{"blob": "/w=="}`)
	for _, id := range []string{bs, bf} {
		if w := e.waitClosed(id, 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
			t.Errorf("%s is %v, want FAILED", id, w.Status)
		}
	}

	for _, id := range []string{bs, bf} {
		if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id})); err != nil {
			t.Errorf("GetWorkflow %s: %v", id, err)
		}
		if _, err := e.wf.GetHistory(ctx(t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id})); err != nil {
			t.Errorf("GetHistory %s: %v", id, err)
		}
	}
	if _, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{})); err != nil {
		t.Errorf("ListWorkflows (every run, ok-1 included): %v", err)
	}
	if _, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "okdef"})); err != nil {
		t.Errorf("ListWorkflows okdef: %v", err)
	}
}

// A run-concurrency key is an expression over the input; an input string
// the API accepts (5,000 bytes, far under 1 MiB) must not stop the run,
// nor the runs of others.
func TestALongConcurrencyKeyRuns(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: keyed
concurrency: { key: "${ input.customer }", limit: 1 }
steps:
  - { id: a, task: echo, input: 1 }
`)
	e.putDef(`
name: plain
steps:
  - { id: a, task: echo, input: 1 }
`)
	// 2,200 bytes: the longest kind still named as it is; 5,000: by its hash.
	for i, n := range []int{2200, 5000} {
		id := e.start("keyed", fmt.Sprintf("keyed-%d", i), `{"customer": "`+strings.Repeat("c", n)+`"}`)
		if w := e.waitClosed(id, 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Errorf("%s, its key of %d bytes, is %v (%v), want COMPLETED", id, n, w.Status, w.Error)
		}
	}
	p := e.start("plain", "plain-1", "")
	if w := e.waitClosed(p, 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Errorf("plain-1 is %v, want COMPLETED", w.Status)
	}
}

// The same for a step's concurrency key, which the executor uses.
func TestALongStepConcurrencyKeyRuns(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: stepkeyed
steps:
  - id: a
    task: echo
    input: 1
    concurrency: { key: "${ input.region }", limit: 5 }
`)
	e.putDef(`
name: plain
steps:
  - { id: a, task: echo, input: 1 }
`)
	long := strings.Repeat("r", 5000)
	id := e.start("stepkeyed", "sk-1", `{"region": "`+long+`"}`)
	p := e.start("plain", "plain-1", "")
	if w := e.waitClosed(p, 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Errorf("plain-1 is %v, want COMPLETED", w.Status)
	}
	if w := e.waitClosed(id, 15*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Errorf("sk-1 is %v (%v), want COMPLETED", w.Status, w.Error)
	}
}
