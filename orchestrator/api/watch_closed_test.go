package api

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A failed run records the late result of a step after its close (so a
// redrive does not run it again): its last record is not a closing one.
// A watch of such a run must still end once it has sent the close, as
// an await returns it FAILED.
func TestAWatchOfAFailedRunWithALateResultEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const wf = "failed-late"
	store, _, client := serveAPI(t, natstest.Start(t))
	last := startRun(t, store, wf, "d", 100, 0)
	var err error
	if last, err = store.Append(ctx, wf, last, events.Event{Type: events.TypeStepScheduled, Time: time.Unix(101, 0).UTC(),
		StepScheduled: &events.StepScheduled{Path: "s", Task: "t"}}); err != nil {
		t.Fatal(err)
	}
	if last, err = store.Append(ctx, wf, last, events.Event{Type: events.TypeWorkflowFailed, Time: time.Unix(102, 0).UTC(),
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "timeout", Message: "workflow timed out"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err = store.Append(ctx, wf, last, events.Event{Type: events.TypeStepCompleted, Time: time.Unix(103, 0).UTC(),
		StepCompleted: &events.StepCompleted{Path: "s", Attempt: 1, Output: "late"}}); err != nil {
		t.Fatal(err)
	}
	// The await answers FAILED at once.
	r, err := client.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: wf}))
	if err != nil || r.Msg.Workflow.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("await: %v %v; want FAILED", r, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	stream, err := client.WatchWorkflow(wctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var types []string
	for stream.Receive() {
		types = append(types, stream.Msg().Event.Type)
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the watch of a closed run sent %v and then did not end: %v", types, err)
	}
}
