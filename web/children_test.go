package console_test

import (
	"testing"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A parent retried after its child failed starts the step again under a
// new child: its page lists both, the earlier one marked as replaced by
// the later (it once listed both alike, "from step call", with nothing to
// say which one the run now waits on).
func TestConsoleRedrivenChild(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	w.mustPut(defFlaky)
	w.mustPut("name: caller\nsteps:\n  - { id: call, workflow: flaky }\n")
	w.start("caller", "caller-1")
	w.waitStatus("caller-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED)
	p.open("/workflows/caller-1")
	p.until("one child listed, not replaced", `document.querySelectorAll("section[aria-label='Child runs'] li").length === 1 && !document.querySelector("section[aria-label='Child runs'] li.replaced")`)

	w.broken.Store(false)
	if _, err := w.wf.RetryWorkflow(w.ctx(), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: "caller-1"})); err != nil {
		t.Fatalf("RetryWorkflow: %v", err)
	}
	w.waitStatus("caller-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	p.open("/workflows/caller-1")
	p.until("two children listed", `document.querySelectorAll("section[aria-label='Child runs'] li").length === 2`)
	p.until("the earlier child marked as replaced by the later", `(() => {
		const [a, b] = document.querySelectorAll("section[aria-label='Child runs'] li");
		const later = b.querySelector("a").innerText;
		return a.classList.contains("replaced") && !b.classList.contains("replaced") &&
			a.innerText.includes("flaky from step call, replaced by " + later + " when the step started again");
	})()`)
}
