package workflow_test

import (
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Each evaluation of a foreach's filter stays under the cost limit, but
// there is one per item: 100,000 items at ~15 ms each held the decision
// (and the orchestrator's shard) for about 25 minutes. The decision's
// evaluations together are bounded, and the run fails with a clear error.
func TestAFilterOverManyItemsSpendsTheDecisionsBudget(t *testing.T) {
	def := parse(t, `
name: f
steps:
  - id: each
    foreach: "lists.range(input.n)"
    filter: "lists.range(30000).exists(x, x == -1 - item)"
    do:
      - { id: one, task: t, input: "${ item }" }
`)
	st := fold(t, hist(started(0, map[string]any{"n": int64(100000)})))
	// The budget is what ends the decision: without it the filters run
	// for minutes and the decision has no error. (How long the budget's
	// share takes is the machine's: a bound in time here failed on a
	// loaded one.)
	t0 := time.Now()
	_, err := workflow.Advance(st, def)
	t.Logf("err=%v took %v", err, time.Since(t0))
	if !errors.Is(err, definition.ErrDecisionCost) {
		t.Errorf("Advance = %v, want ErrDecisionCost", err)
	}
}
