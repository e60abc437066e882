package workflow_test

import (
	"strings"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A value a workflow builds deeper than value.MaxBuiltDepth fails the step
// that builds it (expression), and is never recorded: here a repeat that
// wraps a variable in one more list per iteration.
func TestIssue13Item1_BuiltValueTooDeepFailsStep(t *testing.T) {
	def := parse(t, `
name: grow
steps:
  - id: init
    set: { x: "[]" }
  - id: grow
    repeat:
      do: [ { id: wrap, set: { x: "[vars.x]" } } ]
      until: "false"
      max_iterations: 1000
`)
	st := fold(t, hist(started(0, nil)))
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != workflow.StatusFailed {
		t.Fatalf("status %v", st.Status)
	}
	if e := st.Error; e == nil || e.Type != workflow.ErrTypeExpression || st.ErrorPath != "grow" ||
		!strings.Contains(e.Message, "set.x: result") || !strings.Contains(e.Message, "deeper than 128 levels") {
		t.Fatalf("error %+v at %q", e, st.ErrorPath)
	}
	for _, ev := range evs {
		if ev.StepCompleted != nil {
			if err := value.Check("vars", ev.StepCompleted.Vars, value.Limits{MaxDepth: value.MaxBuiltDepth + 1}); err != nil {
				t.Fatalf("recorded %s: %v", ev.StepCompleted.Path, err)
			}
		}
	}
	// The last iteration recorded a value exactly at the limit.
	if it := st.Steps["grow"].Iteration; it != value.MaxBuiltDepth-1 {
		t.Fatalf("failed in iteration %d", it)
	}
}

// A value that entered at value.MaxDepth can still be wrapped by templates.
func TestIssue13Item1_AcceptedValueCanBeWrapped(t *testing.T) {
	in := any(int64(1))
	for range value.MaxDepth {
		in = []any{in}
	}
	r := startRun(t, `
name: wrap
steps:
  - { id: a, task: t, input: { wrapped: [ "${ input }" ] } }
`, in)
	expect(t, r.hist[1:], events.TypeStepScheduled)
}
