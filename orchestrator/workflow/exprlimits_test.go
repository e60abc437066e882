package workflow_test

import (
	"strings"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// An expression that would build too much fails its step with type limit,
// naming the expression; one that fails otherwise keeps type expression.
func TestIssue13Item4_MemoryLimitFailsTheStepWithTypeLimit(t *testing.T) {
	def := parse(t, `
name: big
steps:
  - id: ok
    if: "${ input.s.replace('x', 'y').size() > 0 }"
    set: { n: "${ size(input.s) }" }
  - id: blowup
    task: t
    input: { s: "${ input.s.replace('x', input.s) }" }
`)
	st := fold(t, hist(started(0, map[string]any{"s": strings.Repeat("x", 30_000)})))
	got, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	var sf *events.StepFailed
	var wf *events.WorkflowFailed
	for _, e := range got {
		switch {
		case e.StepFailed != nil:
			sf = e.StepFailed
		case e.WorkflowFailed != nil:
			wf = e.WorkflowFailed
		}
	}
	if sf == nil || wf == nil {
		t.Fatalf("decided %s, want the step and the workflow failed", showEvents(got))
	}
	if sf.Path != "blowup" || sf.Error.Type != workflow.ErrTypeLimit ||
		!strings.Contains(sf.Error.Message, `"input.s.replace('x', input.s)"`) || !strings.Contains(sf.Error.Message, "input.s") {
		t.Errorf("StepFailed = %+v", sf)
	}
	if wf.Path != "blowup" || wf.Error.Type != workflow.ErrTypeLimit {
		t.Errorf("WorkflowFailed = %+v", wf)
	}
	if v := st.Vars["n"]; v != int64(30_000) {
		t.Errorf("vars.n = %v, want 30000: the step before ran", v)
	}
}
