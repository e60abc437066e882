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
	refusedAtTriggerDoors(t, e, "tail", `{"n": 1}] {"n": 9}`, "after the value", "after the value")
}

// refusedAtTriggerDoors checks that definition name's two triggers (the
// subject name.in and the webhook name-hook, whose ids are name-N and
// namehook-N for the payload's n) refuse the payload bad, which has n 1:
// the event behind it on the subject starts its run, the webhook answers
// 400 with an error holding hookSays, no run of n 1 starts, and both
// refusals are recorded with bad whole and a reason holding reason.
func refusedAtTriggerDoors(t *testing.T, e *env, name, bad, hookSays, reason string) {
	t.Helper()
	if w := e.publishThenClosed(name+".in", name+"-2", bad, `{"n": 2}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the event behind: %v", w.Status)
	}
	url := e.node.APIURL + "/hooks/" + name + "-hook"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, []byte(bad), nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), hookSays) {
		t.Errorf("webhook body %s: %d %v; want 400 saying %q", bad, code, out, hookSays)
	}
	for _, id := range []string{name + "-1", name + "hook-1"} {
		if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id})); err == nil {
			t.Errorf("run %s started from the payload %s", id, bad)
		}
	}
	eventually(t, 20*time.Second, "both refusals to be recorded with their payloads", func() bool {
		n := 0
		for _, f := range e.failures() {
			if string(f.Payload) == bad && strings.Contains(f.Reason, reason) {
				n++
			}
		}
		return n == 2
	})
}
