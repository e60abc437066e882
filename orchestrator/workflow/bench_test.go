package workflow_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// BenchmarkFoldApply applies a StepCompleted event to a state with n
// running steps.
func BenchmarkFoldApply(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("steps=%d", n), func(b *testing.B) {
			h := hist(started(0, nil))
			for i := range n {
				h = append(h, task(0, fmt.Sprintf("step%d", i), "t", map[string]any{"i": int64(i)}))
			}
			st := fold(b, h)
			ev := completed(time.Second, fmt.Sprintf("step%d", n/2), 1, map[string]any{"ok": true})
			b.ReportAllocs()
			for b.Loop() {
				if err := st.Apply(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFold folds a whole three-step history from scratch.
func BenchmarkFold(b *testing.B) {
	h := pipelineDone()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := workflow.Fold(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecide decides for the three-step pipeline definition.
func BenchmarkDecide(b *testing.B) {
	def := parse(b, pipelineYAML)
	cases := []struct {
		name string
		h    []events.Event
	}{
		{"start", hist(started(0, pipelineInput))},
		{"next step", pipelineDone()[:3]},
		{"last step", pipelineDone()[:5]},
		{"complete", pipelineDone()},
		{"running", pipelineDone()[:2]},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			st := fold(b, c.h)
			b.ReportAllocs()
			for b.Loop() {
				workflow.Decide(st, def)
			}
		})
	}
}
