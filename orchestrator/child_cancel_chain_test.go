package orchestrator

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A cancel goes down a chain of children, whichever level's follow-up is
// cut short: here each of the parent and its child dies once between
// recording its cancel and canceling its own child. The input comes
// again, and the grandchild, waiting for a signal that never comes, ends
// canceled too.
func TestACancelReachesAGrandchildThoughEachLevelIsCutShortOnce(t *testing.T) {
	r := newRig(t)
	r.putDef("gk", "name: gk\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("kid", "name: kid\nsteps:\n  - { id: g, workflow: gk }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid }\n")
	const wf = "mum-chain"
	kid := workflow.ChildID(wf, "k", 1)
	gk := workflow.ChildID(kid, "g", 1)
	var mu sync.Mutex
	armed := map[string]bool{}
	testHookAfterCommit = func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		if armed[id] {
			armed[id] = false
			return errors.New("the orchestrator died")
		}
		return nil
	}
	t.Cleanup(func() { testHookAfterCommit = nil })
	r.run()
	r.start(wf, "mum")
	eventually(t, 10*time.Second, "the grandchild waiting", func() bool {
		n, _ := r.count(gk, func(ev events.Event) bool { return ev.WaitStarted != nil })
		return n == 1
	})
	mu.Lock()
	armed[wf], armed[kid] = true, true
	mu.Unlock()
	r.requestCancel(wf, "by hand")
	canceled := func(id string) bool {
		n, _ := r.count(id, func(ev events.Event) bool { return ev.WorkflowCanceled != nil })
		return n == 1
	}
	eventually(t, 20*time.Second, "every level canceled", func() bool {
		return canceled(wf) && canceled(kid) && canceled(gk)
	})
	mu.Lock()
	defer mu.Unlock()
	if armed[wf] || armed[kid] {
		t.Fatalf("a level's cancel was not cut short (parent %v, child %v): the test checks nothing", armed[wf], armed[kid])
	}
}
