package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// An event or a webhook body with text after its JSON value (a closing
// bracket and more) is not JSON: it is refused and recorded whole, not
// taken as the value before the bracket with the rest dropped. The event
// behind it starts its run.
func TestTriggerPayloadWithDataAfterTheValueIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: tail
triggers:
  - subject: tail.in
    id: "${ 'tail-' + string(event.n) }"
  - webhook: tail-hook
    id: "${ 'tailhook-' + string(event.n) }"
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
	const bad = `{"n": 1}] {"n": 9}`
	if w := e.publishThenClosed("tail.in", "tail-2", bad, `{"n": 2}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the event behind: %v", w.Status)
	}
	url := e.node.APIURL + "/hooks/tail-hook"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, []byte(bad), nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "after the value") {
		t.Errorf("webhook body with data after its value: %d %v; want 400 saying so", code, out)
	}
	for _, id := range []string{"tail-1", "tailhook-1"} {
		if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id})); err == nil {
			t.Errorf("run %s started from a payload that is not JSON", id)
		}
	}
	eventually(t, 20*time.Second, "both refusals to be recorded with their payloads", func() bool {
		n := 0
		for _, f := range e.failures() {
			if string(f.Payload) == bad && strings.Contains(f.Reason, "after the value") {
				n++
			}
		}
		return n == 2
	})
}
