package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// Two orchestrators share the work; signals for one workflow arrive at
// both at once, so they race to decide the same state. Each decision must
// be recorded exactly once.
func TestTwoOrchestratorsDecideOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.startNode(envOpts{noExecutor: true}, true, false) // a second orchestrator
	e.putDef(`
name: race
steps:
  - id: a
    wait: { signal: a }
  - id: b
    wait: { signal: b }
  - id: c
    task: echo
    input: "${ [steps.a.output, steps.b.output] }"
  - id: d
    task: echo
    input: "${ steps.c.output }"
`)
	const n = 30
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.start("race", fmt.Sprintf("race-%d", i), ``)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		for _, sig := range []string{"b", "a"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.signal(id, sig, fmt.Sprintf("%d", i)); err != nil {
					t.Errorf("signal %s %s: %v", id, sig, err)
				}
			}()
		}
	}
	wg.Wait()
	for i, id := range ids {
		w := e.waitClosed(id, 30*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != fmt.Sprintf("[%d,%d]", i, i) {
			t.Fatalf("%s: status %v output %s error %v", id, w.Status, toJSON(w.Output), w.Error)
		}
		seen := map[string]int{}
		for _, ev := range e.history(id) {
			switch ev.Type {
			case "StepScheduled", "WaitStarted", "StepCompleted", "WorkflowCompleted":
				seen[ev.Type+"("+ev.StepPath+")"]++
			}
		}
		for k, c := range seen {
			if c != 1 {
				t.Fatalf("%s: %s recorded %d times: %v", id, k, c, seen)
			}
		}
		if len(seen) != 9 {
			t.Fatalf("%s: history %v", id, seen)
		}
	}
}
