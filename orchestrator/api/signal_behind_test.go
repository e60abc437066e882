package api

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A cancel of a run this process's follower saw redriven is not refused
// as "FAILED" by a read that comes back behind the redrive: the read is
// made again until it reaches it, and the cancel is recorded.
func TestACancelIsNotRefusedByAReadBehindTheFollower(t *testing.T) {
	ctx := context.Background()
	const wf = "cancel-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	after := first
	failed, err := s.store.AppendExternal(ctx, wf, &after, "fail/"+wf, events.Event{Type: events.TypeWorkflowFailed, Time: time.Unix(102, 0).UTC(),
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "failed"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.interest.record(eventstore.Followed{Workflow: wf, Seq: failed + 1, Prev: failed, HasPrev: true})
	time.AfterFunc(100*time.Millisecond, func() {
		prev := failed
		if _, err := s.store.AppendExternal(context.Background(), wf, &prev, "retry/"+wf, events.Event{Type: events.TypeWorkflowRetried, Time: time.Unix(103, 0).UTC(),
			WorkflowRetried: &events.WorkflowRetried{Reason: "x"}}); err != nil {
			t.Error(err)
		}
	})
	_, err = s.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf, RequestId: "c1"}))
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		t.Fatalf("cancel of a run the follower saw retried was refused from a read behind it: %v", err)
	}
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
}
