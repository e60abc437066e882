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

// loopYAML is a foreach over input.items, one task per item, ten at a time.
const loopYAML = `
name: loop
steps:
  - id: each
    foreach: input.items
    concurrency: 10
    do:
      - { id: one, task: t, input: "${ item }" }
`

// BenchmarkDecideForeach decides for a foreach of n items (concurrency 10)
// halfway through: the cost should not grow with n.
func BenchmarkDecideForeach(b *testing.B) {
	def := parse(b, loopYAML)
	for _, n := range []int{100, 1000, 3000} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) {
			items := make([]any, n)
			for i := range items {
				items[i] = int64(i)
			}
			st := fold(b, hist(started(0, map[string]any{"items": items})))
			running := map[string]bool{}
			at := time.Second
			for done := 0; done < n/2; {
				evs, err := workflow.Advance(st, def)
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range evs {
					if e.StepScheduled != nil {
						running[e.StepScheduled.Path] = true
					}
				}
				for path := range running {
					if err := st.Apply(completed(at, path, 1, int64(1))); err != nil {
						b.Fatal(err)
					}
					delete(running, path)
					done++
					break
				}
			}
			if _, err := workflow.Advance(st, def); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				workflow.Decide(st, def)
			}
		})
	}
}

// BenchmarkSnapshot encodes and decodes the state of a finished foreach of
// n items: what an orchestrator writes every SnapshotEvery events of a
// long workflow, and reads back instead of folding its history.
func BenchmarkSnapshot(b *testing.B) {
	def := parse(b, loopYAML)
	for _, n := range []int{100, 1000, 3000} {
		items := make([]any, n)
		for i := range items {
			items[i] = int64(i)
		}
		st := fold(b, hist(started(0, map[string]any{"items": items})))
		for {
			evs, err := workflow.Advance(st, def)
			if err != nil {
				b.Fatal(err)
			}
			if st.Status != workflow.StatusRunning {
				break
			}
			for _, e := range evs {
				if p := e.StepScheduled; p != nil {
					if err := st.Apply(completed(time.Second, p.Path, 1, map[string]any{"n": int64(1)})); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
		data, err := workflow.EncodeSnapshot(st)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("encode/items=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := workflow.EncodeSnapshot(st); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("decode/items=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := workflow.DecodeSnapshot(data, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
