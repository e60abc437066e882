package e2e

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A definition that starts itself without a case that stops it starts a
// chain of child workflows no cost limit bounds: each run starts the
// next, for ever, until the store is full. The chain ends at the
// orchestrator's MaxChildDepth: the deepest run's workflow step fails
// with error type limit, saying why and what to change, and the failure
// reaches the root; no further run starts.
func TestAChainOfChildWorkflowsEndsAtItsDepthLimit(t *testing.T) {
	const depth = 4
	e := newEnv(t, envOpts{maxChildDepth: depth})
	e.putDef("name: forever\nsteps:\n  - { id: again, workflow: forever }\n")
	root := e.start("forever", "forever-root", "null")
	w := e.waitClosed(root, 60*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("the root closed %v (%v); want FAILED", w.Status, w.Error)
	}
	ids := []string{root}
	for range depth {
		ids = append(ids, workflow.ChildID(ids[len(ids)-1], "again", 1))
	}
	deepest := e.get(ids[depth])
	if deepest.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || deepest.Error.GetType() != workflow.ErrTypeLimit ||
		!strings.Contains(deepest.Error.GetMessage(), "MaxChildDepth") || !strings.Contains(deepest.Error.GetMessage(), "a case that stops it") {
		t.Fatalf("the run %d deep closed %v with %v; want FAILED, error type limit naming MaxChildDepth and what to do", depth, deepest.Status, deepest.Error)
	}
	count := func() int64 {
		res, err := e.wf.CountWorkflows(ctx(t), connect.NewRequest(&weftv1.CountWorkflowsRequest{Definition: "forever"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.Total
	}
	eventually(t, 10*time.Second, "the listing counts the root and its children", func() bool { return count() == depth+1 })
	next := workflow.ChildID(ids[depth], "again", 1)
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: next})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the run past the limit: %v; want NotFound", err)
	}
	e.healthy()
}
