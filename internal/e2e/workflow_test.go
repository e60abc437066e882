package e2e

import (
	"slices"
	"testing"
	"time"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

const threeSteps = `
name: three
steps:
  - id: a
    task: echo
    input: { n: "${ input.n }" }
  - id: b
    task: echo
    input: "${ steps.a.output.n + 1 }"
  - id: c
    task: echo
    input: "${ 'n=' + string(steps.b.output) }"
output: "${ {'a': steps.a.output, 'b': steps.b.output, 'c': steps.c.output} }"
`

func TestThreeStepWorkflowCompletes(t *testing.T) {
	e := newEnv(t, envOpts{})
	if got := e.putDef(threeSteps); got.Name != "three" || got.Revision != 1 || !got.Changed {
		t.Fatalf("PutDefinition = %v", got)
	}
	id := e.start("three", "", `{"n": 41}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v, error %v", w.Status, w.Error)
	}
	if got, want := toJSON(w.Output), `{"a":{"n":41},"b":42,"c":"n=42"}`; got != want {
		t.Fatalf("output %s, want %s", got, want)
	}
	h := e.history(id)
	want := []string{"WorkflowStarted", "StepScheduled(a)", "StepCompleted(a)", "StepScheduled(b)",
		"StepCompleted(b)", "StepScheduled(c)", "StepCompleted(c)", "WorkflowCompleted"}
	if got := types(h); !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	for i, ev := range h {
		if ev.Sequence != uint64(i+1) {
			t.Fatalf("event %d has sequence %d", i, ev.Sequence)
		}
		if ev.Type == "StepCompleted" && ev.Attempt != 1 {
			t.Fatalf("%s attempt %d, want 1", ev.Type, ev.Attempt)
		}
		if i > 0 && ev.Time.AsTime().Before(h[i-1].Time.AsTime()) {
			t.Fatalf("event %d time goes backwards", i)
		}
	}
	if len(w.Steps) != 3 || w.Steps[1].Path != "b" || toJSON(w.Steps[1].Output) != "42" || w.Steps[1].Attempts != 1 {
		t.Fatalf("steps %v", w.Steps)
	}
}
