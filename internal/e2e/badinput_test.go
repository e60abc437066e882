package e2e

import (
	"context"
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
