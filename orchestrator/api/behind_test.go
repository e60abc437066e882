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

// storeLater stores ev in wf's history after its record at sequence
// after, 100ms from now, once this process's follower has passed it on (a
// stream that delivered a record before its reads show it).
func storeLater(t *testing.T, s *Server, wf string, after uint64, ev events.Event) {
	t.Helper()
	s.interest.record(eventstore.Followed{Workflow: wf, Seq: after + 1, Prev: after, HasPrev: true})
	time.AfterFunc(100*time.Millisecond, func() {
		prev := after
		seq, err := s.store.AppendExternal(context.Background(), wf, &prev, "later/"+wf, ev)
		if err != nil || seq != after+1 {
			t.Errorf("%s was stored at %d (%v); the test expected %d", ev.Type, seq, err, after+1)
		}
	})
}

// failed is a run's failure, as recorded.
var failed = events.Event{Type: events.TypeWorkflowFailed, Time: time.Unix(102, 0).UTC(),
	WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "failed"}}}

// A retry of a run this process's follower saw fail is not refused as
// "RUNNING" by a read that comes back behind that record: the read is
// made again until it reaches it, and the retry is applied. (Chaos seed
// 43: a client awaited a run's failure, and its retry was refused.)
func TestARetryIsNotRefusedByAReadBehindTheFollower(t *testing.T) {
	ctx := context.Background()
	const wf = "retry-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	storeLater(t, s, wf, first, failed)
	if _, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"})); err != nil {
		t.Fatalf("retry of a run the follower saw fail: %v", err)
	}
	msgs, err := s.store.Read(ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1]; len(msgs) != 3 || last.Record.Events[0].Type != events.TypeWorkflowRetried {
		t.Fatalf("history after the retry: %d records, the last %v", len(msgs), last.Record.Events)
	}
}

// A read that stays behind what the follower passed on answers a retry
// Unavailable (try again), never FailedPrecondition: the run may have
// failed, as the follower's record says.
func TestARetryReadStayingBehindIsUnavailable(t *testing.T) {
	ctx := context.Background()
	const wf = "retry-stays-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	s.interest.followed.note(wf, first+10) // never stored
	_, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("retry of a run read behind the follower: %v; want unavailable", err)
	}
	// Without a record seen beyond the read, a running run is refused.
	s.interest.followed.clear()
	_, err = s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("retry of a running run: %v; want failed_precondition", err)
	}
}

// A cancel of a run this process's follower saw redriven is not refused
// as "FAILED" by a read that comes back behind the redrive: the read is
// made again until it reaches it, and the cancel is recorded.
func TestACancelIsNotRefusedByAReadBehindTheFollower(t *testing.T) {
	ctx := context.Background()
	const wf = "cancel-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	after := first
	failedAt, err := s.store.AppendExternal(ctx, wf, &after, "fail/"+wf, failed)
	if err != nil {
		t.Fatal(err)
	}
	storeLater(t, s, wf, failedAt, events.Event{Type: events.TypeWorkflowRetried, Time: time.Unix(103, 0).UTC(),
		WorkflowRetried: &events.WorkflowRetried{Reason: "x"}})
	_, err = s.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf, RequestId: "c1"}))
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		t.Fatalf("cancel of a run the follower saw retried was refused from a read behind it: %v", err)
	}
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	msgs, err := s.store.Read(ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1]; len(msgs) != 4 || last.Record.Events[0].Type != events.TypeCancelRequested {
		t.Fatalf("history after the cancel: %d records, the last %v", len(msgs), last.Record.Events)
	}
}
