package e2e

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// TestAPIClockAheadDoesNotMoveWorkflowTime: an API node whose clock runs
// an hour ahead stamps a start with JetStream's time instead, so a
// one-second sleep decided from it is due in a second, not in an hour and
// a second, on an orchestrator whose clock is right.
func TestAPIClockAheadDoesNotMoveWorkflowTime(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: nap
steps:
  - id: nap
    sleep: 1s
  - id: done
    set: { ok: "${ true }" }
`)
	ahead := e.startNode(envOpts{noExecutor: true, localClock: func() time.Time { return time.Now().Add(time.Hour) }}, false, true)
	if got := ahead.Clock.Ahead(); got < 59*time.Minute {
		t.Fatalf("the node found its clock ahead by %v; want about an hour", got)
	}
	wf, _ := newClients(ahead.APIURL)
	res, err := wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "nap", WorkflowId: "nap-1"}))
	if err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(res.Msg.GetWorkflowId(), 30*time.Second)
	if w.GetStatus() != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v, error %v", w.GetStatus(), w.GetError())
	}
	started := e.history("nap-1")[0].GetTime().AsTime()
	if d := started.Sub(time.Now()); d > time.Minute || d < -time.Minute {
		t.Fatalf("the start is stamped %v from now; want the servers' time", d)
	}
}
