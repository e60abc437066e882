package workflow_test

import (
	"strings"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A run's failure whose message quotes a value (an output expression's
// evaluation error naming a key of a megabyte) is recorded cut to
// MaxRunErrorMessage: kept whole, its record was too large to store and
// the run failed with limit instead, its reason lost.
func TestARunsFailureQuotingALargeValueIsCut(t *testing.T) {
	def := parse(t, `
name: quote
output: '${ {"k": 1}[input.s] }'
steps:
  - { id: a, set: { x: "1" } }
`)
	st := fold(t, hist(started(0, map[string]any{"s": strings.Repeat("x", 1<<20)})))
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if f := ev.WorkflowFailed; f != nil {
			if n := len(f.Error.Message); n > events.MaxRunErrorMessage || !strings.HasPrefix(f.Error.Message, "output: ") {
				t.Fatalf("the run's failure holds %d bytes (%.60q...), want its start within %d", n, f.Error.Message, events.MaxRunErrorMessage)
			}
			return
		}
	}
	t.Fatalf("no WorkflowFailed in %d events", len(evs))
}

// A run started without input whose step reads a field of it fails saying
// that its input is null, in the expression that read it.
func TestARunWithoutInputFailsSayingItsInputIsNull(t *testing.T) {
	def := parse(t, `
name: greet
steps:
  - id: hello
    task: echo
    input: "${ 'hello ' + input.name }"
`)
	evs, err := workflow.Advance(fold(t, hist(started(0, nil))), def)
	if err != nil {
		t.Fatal(err)
	}
	const want = `evaluate input: expression "'hello ' + input.name": input is null, so it has no key "name": ` +
		`the run was started without input (give it with weft start --input, or the start request's input)`
	for _, ev := range evs {
		if f := ev.StepFailed; f != nil {
			if f.Path != "hello" || f.Error.Type != workflow.ErrTypeExpression || f.Error.Message != want {
				t.Fatalf("step %s failed with %s: %q\nwant %s: %q", f.Path, f.Error.Type, f.Error.Message, workflow.ErrTypeExpression, want)
			}
			return
		}
	}
	t.Fatalf("no StepFailed in %d events", len(evs))
}
