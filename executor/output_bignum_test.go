package executor

import (
	"math"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
)

// A handler's output holding a whole number beyond ±2^53 fails the step
// with invalid_output, whatever its Go type: a uint64 past int64 (an id, a
// hash) was made a float64 and recorded rounded, the step completed with
// 18446744073709551616 for 18446744073709551615.
func TestAnOutputWholeNumberBeyond2p53FailsTheStepInEveryGoType(t *testing.T) {
	policy := events.RetryPolicy{MaxAttempts: 1}
	for _, out := range []any{int64(1<<53 + 1), uint64(math.MaxUint64), uint64(1<<63 + 1)} {
		var res events.Result
		outcome(&res, policy, map[string]any{"id": out}, nil, 1, 1)
		if res.Outcome == events.OutcomeCompleted {
			t.Errorf("output {id: %v (%T)} completed the step, recorded as %v (%T)", out, out,
				res.Output.(map[string]any)["id"], res.Output.(map[string]any)["id"])
		}
	}
}
