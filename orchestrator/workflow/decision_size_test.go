package workflow_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/orchestrator/workflow"
)

// A repeat of set steps that each build a fresh 1 MiB value, never
// waiting, is decided in one Advance: it must fail the decision once it
// holds too much, not hold a value per iteration until maxDecisions
// events (about 50 GB here).
func TestARepeatOfLargeSetsFailsItsDecision(t *testing.T) {
	def := parse(t, `
name: grow
steps:
  - id: r
    repeat:
      do:
        - { id: a, set: { s: "input.s + string(iteration)" } }
      until: "false"
      max_iterations: 100000
`)
	st := fold(t, hist(started(0, map[string]any{"s": strings.Repeat("x", 1<<20)})))
	var peak uint64
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak {
				peak = m.HeapAlloc
			}
			if m.HeapAlloc > 2<<30 {
				panic(fmt.Sprintf("Advance holds %d MiB and counting", m.HeapAlloc>>20))
			}
		}
	}()
	_, err := workflow.Advance(st, def)
	close(stop)
	<-watched // peak is the watcher's until it ends
	if err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("Advance = %v, want an error about the decision's size", err)
	}
	t.Logf("err=%v peak heap %d MiB", err, peak>>20)
}
