package workflow_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A search attribute whose expression computes a whole number beyond
// ±2^53 is a value the API cannot carry exactly (GetWorkflow, ListWorkflows
// and GetHistory show it as a float64: 9007199254740993 reads back as
// 9007199254740992). Every other value a workflow builds is checked by
// value.Check and fails with `expression`; a search value that cannot be
// recorded fails the run with invalid_search_attribute. It was recorded
// as is.
func TestASearchAttributeBeyond2p53FailsTheRun(t *testing.T) {
	r := startRun(t, `
name: s
steps:
  - id: a
    task: t
    search: { n: "${ steps.a.output + 1 }" }
`, nil)
	// 2^53 itself is a valid output (it passes value.Check).
	r.result(time.Second, "a", 1, events.OutcomeCompleted, int64(1<<53), nil)
	if v, ok := r.st.Search["n"]; ok {
		t.Fatalf("search attribute n recorded as %v (%T): the API shows it as %v; want the run failed with %s",
			v, v, float64(v.(int64)), workflow.ErrTypeInvalidSearch)
	}
	if r.st.Status != workflow.StatusFailed || r.st.Error == nil || r.st.Error.Type != workflow.ErrTypeInvalidSearch {
		t.Fatalf("status %s error %+v; want failed with %s", r.st.Status, r.st.Error, workflow.ErrTypeInvalidSearch)
	}
}
