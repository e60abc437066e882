package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A parent that fails leaves its running children running, as the docs
// say: a redrive of the parent takes their results.
func TestDefect11_ChildKeepsRunningWhenParentFails(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "language.md"))
	if err != nil {
		t.Fatal(err)
	}
	const says = "When the parent fails, a child that still runs is **not** canceled"
	if !strings.Contains(strings.Join(strings.Fields(string(doc)), " "), says) {
		t.Errorf("docs/language.md does not say %q", says)
	}

	e := newEnv(t, envOpts{})
	e.putDef(`
name: waiter
steps:
  - { id: gate, wait: { signal: go } }
output: "${ steps.gate.output }"
`)
	e.putDef(`
name: impatient
timeout: 2s
steps:
  - { id: kid, workflow: waiter }
`)
	id := e.start("impatient", "", `{}`)
	childID := workflow.ChildID(id, "kid", 1)
	eventually(t, 20*time.Second, "child to wait", func() bool {
		resp, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: childID}))
		return err == nil && stepStatus(resp.Msg.Workflow, "gate") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("parent: status %v error %v", w.Status, w.Error)
	}
	// Give a cancel, if one were sent, time to land.
	time.Sleep(time.Second)
	if w := e.get(childID); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("child of the failed parent: status %v, want RUNNING", w.Status)
	}
	if err := e.signal(childID, "go", `"yes"`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(childID, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("child: status %v error %v", w.Status, w.Error)
	}
	if _, err := e.wf.RetryWorkflow(ctx(t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"yes"` {
		t.Fatalf("redriven parent: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	n := 0
	for _, ev := range e.history(id) {
		if ev.Type == "ChildStarted" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the parent started %d children, want 1", n)
	}
}
