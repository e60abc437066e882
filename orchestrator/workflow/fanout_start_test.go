package workflow_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Starting a wide foreach or parallel must not evaluate every start once
// per step command of the decision (quadratic in the fan-out).
func TestAWideFanOutStartsWithoutEvaluatingEveryStartPerCommand(t *testing.T) {
	def := parse(t, `
name: loop
steps:
  - id: each
    foreach: "lists.range(input.n)"
    concurrency: 1000000
    do:
      - { id: one, task: t, input: "${ {'item': item, 'x': input.x.map(v, v + item)} }" }
`)
	const n = 3000
	xs := make([]any, 50)
	for i := range xs {
		xs[i] = int64(i)
	}
	st := fold(t, hist(started(0, map[string]any{"n": int64(n), "x": xs})))
	t0 := time.Now()
	evs, err := workflow.Advance(st, def)
	took := time.Since(t0)
	if want := definition.MaxForeachConcurrency + 1; err != nil || len(evs) != want {
		t.Fatalf("Advance = %d events, %v; want %d", len(evs), err, want)
	}
	t.Logf("foreach of %d at once: %v", n, took)
	if took > time.Minute {
		t.Errorf("starting %d iterations took %v", n, took)
	}

	src := "name: par\nsteps:\n  - id: p\n    parallel:\n      branches:\n"
	for i := 0; i < 4000; i++ {
		src += fmt.Sprintf("        b%d: [{id: s%d, task: t, input: \"${ input.x.map(v, v + %d) }\"}]\n", i, i, i)
	}
	def = parse(t, src)
	st = fold(t, hist(started(0, map[string]any{"x": xs})))
	t0 = time.Now()
	evs, err = workflow.Advance(st, def)
	took = time.Since(t0)
	if err != nil || len(evs) != 4001 {
		t.Fatalf("Advance = %d events, %v", len(evs), err)
	}
	t.Logf("parallel of 4000 branches: %v", took)
	if took > time.Minute {
		t.Errorf("starting 4000 branches took %v", took)
	}
}
