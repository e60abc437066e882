package api

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A failed run whose deletion began (retention appended WorkflowExpired)
// is not retried: the retry would be deleted with it, answered as applied
// and lost. The API refuses it and says why; the history shows the event.
func TestARunBeingDeletedIsNotRetried(t *testing.T) {
	const wf = "expiring"
	ctx, store, s := startGate(t, wf, "go")
	now := time.Now().UTC()
	for _, ev := range []events.Event{
		{Type: events.TypeWorkflowFailed, Time: now, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "no"}}},
		{Type: events.TypeWorkflowExpired, Time: now, WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}},
	} {
		last, err := store.LastSeq(ctx, wf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, wf, last, ev); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "again"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "past its retention") {
		t.Fatalf("RetryWorkflow of a run being deleted: %v; want FailedPrecondition naming its retention", err)
	}
	got, err := s.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: wf}))
	if err != nil || got.Msg.Workflow.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("GetWorkflow of a run being deleted: %v, %v; want it FAILED", got, err)
	}
	h, err := s.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	last := h.Msg.Events[len(h.Msg.Events)-1]
	if last.Type != "WorkflowExpired" || last.Data.GetStructValue().GetFields()["retention"].GetStringValue() != "1h0m0s" {
		t.Fatalf("the history's last event: %v; want WorkflowExpired with its retention", last)
	}
}
