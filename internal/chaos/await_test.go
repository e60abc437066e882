package chaos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// fakeAwaits is a WorkflowService whose one run closes after failures
// answers to AwaitWorkflow (never when failures is negative), each with
// code fail: DEADLINE_EXCEEDED once the request's timeout passed, or
// after hold when it is set. GetWorkflow shows the run RUNNING with a step
// WAITING.
type fakeAwaits struct {
	weftv1connect.UnimplementedWorkflowServiceHandler
	failures int64
	fail     connect.Code
	hold     time.Duration
	awaits   atomic.Int64
	gets     atomic.Int64
}

func (f *fakeAwaits) AwaitWorkflow(ctx context.Context, req *connect.Request[weftv1.AwaitWorkflowRequest]) (*connect.Response[weftv1.AwaitWorkflowResponse], error) {
	n := f.awaits.Add(1)
	if f.failures < 0 || n <= f.failures {
		if f.fail != connect.CodeDeadlineExceeded {
			return nil, connect.NewError(f.fail, errors.New("fake"))
		}
		wait := req.Msg.Timeout.AsDuration()
		if f.hold > 0 {
			wait = min(wait, f.hold)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		return nil, connect.NewError(connect.CodeDeadlineExceeded, errors.New("still running"))
	}
	return connect.NewResponse(&weftv1.AwaitWorkflowResponse{Workflow: &weftv1.Workflow{
		Id: req.Msg.WorkflowId, Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED}}), nil
}

func (f *fakeAwaits) GetWorkflow(_ context.Context, req *connect.Request[weftv1.GetWorkflowRequest]) (*connect.Response[weftv1.GetWorkflowResponse], error) {
	f.gets.Add(1)
	return connect.NewResponse(&weftv1.GetWorkflowResponse{Workflow: &weftv1.Workflow{
		Id: req.Msg.WorkflowId, Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING,
		Steps: []*weftv1.StepState{{Path: "gate", Status: weftv1.StepStatus_STEP_STATUS_WAITING}}}}), nil
}

// awaitDriver serves f over h2c and returns a driver whose clients call it.
func awaitDriver(t *testing.T, f weftv1connect.WorkflowServiceHandler) *driver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(weftv1connect.NewWorkflowServiceHandler(f))
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h := &Harness{apiURL: "http://" + ln.Addr().String(), logf: t.Logf}
	h.client = &http.Client{Timeout: 20 * time.Second}
	h.wf = weftv1connect.NewWorkflowServiceClient(h.client, h.apiURL)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	h.awaitClient = &http.Client{Transport: &http.Transport{Protocols: h2c}}
	h.awaits = weftv1connect.NewWorkflowServiceClient(h.awaitClient, h.apiURL)
	t.Cleanup(func() { h.client.CloseIdleConnections(); h.awaitClient.CloseIdleConnections() })
	return &driver{h: h, c: &counters{}, polls: make(chan struct{}, 1)}
}

// A run that never closes ends the await before the caller's deadline,
// with the run as last read, so the checks report where it was left. The
// first call waits out its timeout, which leaves no time for another.
func TestAwaitGivesUpOnARunThatNeverCloses(t *testing.T) {
	f := &fakeAwaits{failures: -1, fail: connect.CodeDeadlineExceeded}
	d := awaitDriver(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), awaitReserve+2*time.Second)
	defer cancel()
	t0 := time.Now()
	wf, err := d.await(ctx, "stuck", true)
	if !errors.Is(err, errNotClosed) {
		t.Fatalf("await: %v; want errNotClosed", err)
	}
	if wf.GetStatus() != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING || len(wf.GetSteps()) != 1 {
		t.Fatalf("got %v; want the run as read, RUNNING with its waiting step", wf)
	}
	if ctx.Err() != nil {
		t.Fatalf("the await ended after the caller's deadline (%s)", time.Since(t0))
	}
	if f.awaits.Load() == 0 || f.gets.Load() != 1 {
		t.Fatalf("%d awaits and %d reads; want at least one await and one read", f.awaits.Load(), f.gets.Load())
	}
}

// Awaits that fail while the API is away, or with NotFound for a run
// whose start is not stored yet, are made again until one answers.
func TestAwaitRetriesTransientFailures(t *testing.T) {
	for _, code := range []connect.Code{connect.CodeUnavailable, connect.CodeNotFound, connect.CodeDeadlineExceeded} {
		t.Run(code.String(), func(t *testing.T) {
			// DEADLINE_EXCEEDED before the call's timeout passed, as the API
			// answers when its own reads time out.
			f := &fakeAwaits{failures: 3, fail: code, hold: 200 * time.Millisecond}
			d := awaitDriver(t, f)
			ctx, cancel := context.WithTimeout(context.Background(), awaitReserve+10*time.Second)
			defer cancel()
			wf, err := d.await(ctx, "flaky", true)
			if err != nil || wf.GetStatus() != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
				t.Fatalf("await: %v %v; want COMPLETED", wf, err)
			}
			if got, want := f.awaits.Load(), f.failures+1; got != want {
				t.Fatalf("%d awaits; want %d", got, want)
			}
			if code == connect.CodeNotFound && d.c.notFoundStarts.Load() != 3 {
				t.Fatalf("%d NotFound answers counted; want 3", d.c.notFoundStarts.Load())
			}
		})
	}
}

// NotFound for a run its retention may have deleted ends the await with
// errDeleted once the driver's deleted says so (every effect succeeded),
// and is retried as a transient answer before.
func TestAwaitEndsOnADeletedRun(t *testing.T) {
	f := &fakeAwaits{failures: -1, fail: connect.CodeNotFound}
	d := awaitDriver(t, f)
	var looks atomic.Int64
	d.deleted = func() bool { return looks.Add(1) > 2 }
	ctx, cancel := context.WithTimeout(context.Background(), awaitReserve+10*time.Second)
	defer cancel()
	wf, err := d.await(ctx, "retained", true)
	if !errors.Is(err, errDeleted) || wf != nil {
		t.Fatalf("await: %v %v; want errDeleted", wf, err)
	}
	if got := f.awaits.Load(); got != 3 {
		t.Fatalf("%d awaits; want 3", got)
	}
}
