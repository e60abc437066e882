package e2e

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A small input that an expression would blow up into hundreds of
// megabytes fails its run with error type limit, naming the expression,
// and the server allocates a bounded amount doing so.
func TestIssue13Item4_BlowupFailsTheRunWithLimit(t *testing.T) {
	ran := make(chan struct{}, 1)
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"t": func(context.Context, *executor.Task) (any, error) { ran <- struct{}{}; return nil, nil },
	}})
	for _, tt := range []struct{ name, expr string }{
		{"replace", "input.s.replace('x', input.s)"},
		{"shared", "lists.range(1000).map(i, input.s)"},
	} {
		e.putDef(fmt.Sprintf("name: %s\nsteps:\n  - id: blowup\n    task: t\n    input: { v: \"${ %s }\" }\n", tt.name, tt.expr))
	}
	input := fmt.Sprintf(`{"s": %q}`, strings.Repeat("x", 30_000))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, tt := range []struct{ name, expr string }{
		{"replace", "input.s.replace('x', input.s)"},
		{"shared", "lists.range(1000).map(i, input.s)"},
	} {
		w := e.waitClosed(e.start(tt.name, "", input), 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.GetType() != "limit" ||
			w.Error.GetStepPath() != "blowup" || !strings.Contains(w.Error.GetMessage(), fmt.Sprintf("%q", tt.expr)) {
			t.Errorf("%s: status %v error %v", tt.name, w.Status, w.Error)
		}
	}
	runtime.ReadMemStats(&after)
	t.Logf("allocated %d MiB, heap in use %d MiB (from %d MiB)", (after.TotalAlloc-before.TotalAlloc)>>20, after.HeapInuse>>20, before.HeapInuse>>20)
	if n := after.TotalAlloc - before.TotalAlloc; n > 128<<20 {
		t.Errorf("the server allocated %d MiB running the two workflows, want at most 128 MiB", n>>20)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if after.HeapAlloc > before.HeapAlloc+64<<20 {
		t.Errorf("the heap grew from %d to %d MiB", before.HeapAlloc>>20, after.HeapAlloc>>20)
	}
	select {
	case <-ran:
		t.Error("a task ran")
	default:
	}
}
