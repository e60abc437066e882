package chaos

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// suspendHistory builds a history from "Type[@attempt][:path]" items, a
// SignalReceived item naming its signal after the colon.
func suspendHistory(items ...string) []*weftv1.HistoryEvent {
	var out []*weftv1.HistoryEvent
	for i, it := range items {
		ev := &weftv1.HistoryEvent{Sequence: uint64(i + 1)}
		it, ev.StepPath, _ = strings.Cut(it, ":")
		typ, att, _ := strings.Cut(it, "@")
		ev.Type = typ
		if att != "" {
			ev.Attempt = int32(att[0] - '0')
		}
		if typ == "SignalReceived" {
			ev.Data = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"name": structpb.NewStringValue(ev.StepPath)}})
			ev.StepPath = ""
		}
		out = append(out, ev)
	}
	return out
}

// checkSuspended finds what a suspended run's history must not show.
func TestCheckSuspended(t *testing.T) {
	p := newPlan(0, 0, shapeSuspended, "http://127.0.0.1:1")
	if p.suspend == nil || len(p.signals) != 1 {
		t.Fatalf("the first suspended plan has no suspension or no signal: %+v", p)
	}
	refused := map[string]KeyCount{p.key(suspendStep): {Calls: 4, Refused: 2, OK: 1}}
	good := []string{"WorkflowStarted", "StepScheduled@1:charge", "StepAttemptFailed@1:charge", "StepSuspended@2:charge",
		"SignalReceived:receipt", "WorkflowResumed", "StepScheduled@3:charge", "StepCompleted@3:charge",
		"WaitStarted:receipt", "StepCompleted:receipt", "StepScheduled@1:after", "StepCompleted@1:after", "WorkflowCompleted"}
	tests := []struct {
		name   string
		hist   []string
		ledger map[string]KeyCount
		want   string // a problem that must be found; "" for none
	}{
		{"as planned", good, refused, ""},
		{"suspended again", []string{"StepScheduled@1:charge", "StepSuspended@2:charge", "SignalReceived:receipt",
			"WorkflowResumed", "StepScheduled@3:charge", "StepSuspended@4:charge", "WorkflowResumed",
			"StepScheduled@5:charge", "StepCompleted@5:charge"}, refused, ""},
		{"suspended early", []string{"StepScheduled@1:charge", "StepSuspended@1:charge", "SignalReceived:receipt",
			"WorkflowResumed", "StepScheduled@2:charge", "StepCompleted@2:charge"}, refused, "first suspended at attempt 1, want 2"},
		{"attempts start over", []string{"StepScheduled@1:charge", "StepSuspended@2:charge", "SignalReceived:receipt",
			"WorkflowResumed", "StepScheduled@1:charge", "StepCompleted@1:charge"}, refused, "from attempt 1, want 3"},
		{"moved while suspended", []string{"StepScheduled@1:charge", "StepSuspended@2:charge", "SignalReceived:receipt",
			"WaitStarted:receipt", "WorkflowResumed", "StepScheduled@3:charge", "StepCompleted@3:charge"}, refused,
			"WaitStarted of \"receipt\" at sequence 4 while the run was suspended"},
		{"never suspended", []string{"StepScheduled@1:charge", "SignalReceived:receipt", "StepCompleted@1:charge"}, refused,
			"never suspended"},
		{"not resumed", []string{"StepScheduled@1:charge", "StepSuspended@2:charge", "SignalReceived:receipt"}, refused,
			"suspended 1 times and resumed 0 times"},
		{"signal after the resume", []string{"StepScheduled@1:charge", "StepSuspended@2:charge", "WorkflowResumed",
			"SignalReceived:receipt", "StepScheduled@3:charge", "StepCompleted@3:charge"}, refused, "signal receipt not received"},
		{"not refused", good, map[string]KeyCount{p.key(suspendStep): {Calls: 1, OK: 1}}, "the ledger refused step charge 0 times"},
	}
	for _, tt := range tests {
		got := strings.Join(checkSuspended(p, suspendHistory(tt.hist...), tt.ledger), "\n")
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: problems %q, want %q", tt.name, got, tt.want)
		}
	}
}

// fakeResumes is a WorkflowService whose ResumeWorkflow answers lost
// first: the first call records the resume when landing is set and
// answers UNAVAILABLE; a later call with the request id recorded is
// answered OK, as the API answers a repeat, and any other
// FAILED_PRECONDITION, as for a run no longer suspended.
type fakeResumes struct {
	weftv1connect.UnimplementedWorkflowServiceHandler
	landing bool
	calls   atomic.Int64
	resumed atomic.Bool
	mu      sync.Mutex
	ids     []string // the request id of each call
}

func (f *fakeResumes) ResumeWorkflow(_ context.Context, req *connect.Request[weftv1.ResumeWorkflowRequest]) (*connect.Response[weftv1.ResumeWorkflowResponse], error) {
	f.mu.Lock()
	f.ids = append(f.ids, req.Msg.RequestId)
	first := f.ids[0]
	f.mu.Unlock()
	if f.calls.Add(1) == 1 {
		f.resumed.Store(f.landing)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("answer lost"))
	}
	if f.resumed.Load() && req.Msg.RequestId != "" && req.Msg.RequestId == first {
		return connect.NewResponse(&weftv1.ResumeWorkflowResponse{}), nil
	}
	return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("only SUSPENDED workflows can be resumed"))
}

func (f *fakeResumes) GetHistory(context.Context, *connect.Request[weftv1.GetHistoryRequest]) (*connect.Response[weftv1.GetHistoryResponse], error) {
	items := []string{"StepSuspended@2:charge"}
	if f.resumed.Load() {
		items = append(items, "WorkflowResumed")
	}
	return connect.NewResponse(&weftv1.GetHistoryResponse{Events: suspendHistory(items...)}), nil
}

// A resume whose answer was lost is asked again with the same request id:
// answered OK when it landed, and not applied twice; a
// FAILED_PRECONDITION for a resume that did not land is an error.
func TestResumeWhoseAnswerWasLost(t *testing.T) {
	for _, landing := range []bool{true, false} {
		f := &fakeResumes{landing: landing}
		d := awaitDriver(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := d.resumeOnce(ctx, "suspended", 1)
		cancel()
		switch {
		case landing && (err != nil || f.calls.Load() != 2):
			t.Errorf("landed: %v after %d calls; want nil after 2", err, f.calls.Load())
		case !landing && connect.CodeOf(err) != connect.CodeFailedPrecondition:
			t.Errorf("not landed: %v after %d calls; want FAILED_PRECONDITION", err, f.calls.Load())
		}
		f.mu.Lock()
		for _, id := range f.ids {
			if id == "" || id != f.ids[0] {
				t.Errorf("the tries named request ids %q; want one, the same on each", f.ids)
				break
			}
		}
		f.mu.Unlock()
	}
}
