package e2e

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// GetWorkflow answers polls of a running workflow from the state the API
// keeps current, and still holds everything stored before the call: here
// a signal recorded through one API process is in the very next
// GetWorkflow answered by another, again and again.
func TestGetWorkflowSeesWhatWasStoredBeforeIt(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	other := e.startNode(envOpts{}, false, true)
	reader, _ := newClients(other.APIURL)
	id := e.start("parked", "poll-fresh", `{}`)
	get := func() *weftv1.Workflow {
		t.Helper()
		resp, err := reader.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.Workflow
	}
	eventually(t, 20*time.Second, "the wait to start", func() bool {
		return stepStatus(get(), "w") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	for i := range 50 {
		before := get().HistoryLength
		// A signal no step waits for yet is recorded and kept: the run
		// stays running, one event longer.
		if err := e.signal(id, "note", `1`); err != nil {
			t.Fatal(err)
		}
		w := get()
		if w.HistoryLength <= before {
			t.Fatalf("round %d: GetWorkflow after the signal shows %d events, as many as before it (%d)", i, w.HistoryLength, before)
		}
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
			t.Fatalf("round %d: the run is %s", i, w.Status)
		}
	}
	if err := e.signal(id, "go", `2`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the run to close", func() bool {
		return get().Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	})
}
