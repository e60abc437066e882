package orchestrator

import (
	"fmt"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A closed parent leaves the cache, and each of its canceled children,
// closing, tells it so: each such input reads the parent afresh and runs
// its follow-ups again. The children its shard already asked to cancel
// are not looked up again at each of them (one look per child, not one
// per child per child: a foreach of thousands of child steps, canceled,
// and redriven a few times, would hold its shard for hours).
func TestAClosedParentDoesNotLookUpItsCanceledChildrenAtEachOfTheirOutcomes(t *testing.T) {
	const n = 12
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("fan", fmt.Sprintf("name: fan\nsteps:\n  - id: each\n    foreach: \"${ lists.range(%d) }\"\n    concurrency: %d\n    do:\n      - { id: k, workflow: kid }\n", n, n))
	ext, results := r.feeds()
	sh := r.shard()
	const wf = "fan-1"
	kids := make([]string, n)
	for i := range kids {
		kids[i] = workflow.ChildID(wf, fmt.Sprintf("each[%d].k", i), 1)
	}
	all := func(match func(events.Event) bool) func() bool {
		return func() bool {
			for _, k := range kids {
				if c, _ := r.count(k, match); c == 0 {
					return false
				}
			}
			return true
		}
	}
	handleUntil := func(done func() bool) {
		t.Helper()
		for i := 0; !done(); i++ {
			if i > 4*n {
				t.Fatal("the children did not get there")
			}
			sh.handle(r.ctx, next(t, ext))
		}
	}
	r.start(wf, "fan")
	handleUntil(all(func(ev events.Event) bool { return ev.WaitStarted != nil })) // the children wait
	r.requestCancel(wf, "test")
	handleUntil(all(func(ev events.Event) bool { return ev.WorkflowCanceled != nil })) // the parent, then its children
	looked := 0
	testHookCancelCheck = func(string) { looked++ }
	defer func() { testHookCancelCheck = nil }()
	for range n { // each child's outcome, to its closed parent
		sh.handle(r.ctx, next(t, results))
	}
	if looked != 0 {
		t.Fatalf("the children's %d outcomes made the closed parent look its children up %d times; want none (its shard asked each to cancel)", n, looked)
	}
}
