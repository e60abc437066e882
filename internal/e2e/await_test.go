package e2e

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/node"
)

// parkedDef waits for a signal "go" and outputs its payload.
const parkedDef = `
name: parked
steps:
  - id: w
    wait: { signal: go }
output: "${ steps.w.output }"
`

func await(ctx context.Context, c weftv1connect.WorkflowServiceClient, id string, timeout time.Duration) (*weftv1.Workflow, error) {
	req := &weftv1.AwaitWorkflowRequest{WorkflowId: id}
	if timeout != 0 {
		req.Timeout = durationpb.New(timeout)
	}
	resp, err := c.AwaitWorkflow(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Workflow, nil
}

func slicesContain(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// awaiting reports how many awaits the node's API holds open.
func awaiting(n *node.Node) int {
	a, _ := n.API.Waiting()
	return a
}

func TestAwaitStartedBeforeTheCloseReturnsTheResult(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	id := e.start("parked", "await-before", `{}`)
	eventually(t, 20*time.Second, "the wait to start", func() bool {
		return stepStatus(e.get(id), "w") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	type result struct {
		w   *weftv1.Workflow
		err error
	}
	done := make(chan result, 1)
	go func() {
		w, err := await(context.Background(), e.wf, id, 30*time.Second)
		done <- result{w, err}
	}()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(e.node) == 1 })
	select {
	case r := <-done:
		t.Fatalf("await returned before the run closed: %v %v", r.w, r.err)
	default:
	}
	if err := e.signal(id, "go", `{"ok": 1}`); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(r.w.Output) != `{"ok":1}` {
		t.Fatalf("await returned %v with output %s; want COMPLETED with the signal's payload", r.w.Status, toJSON(r.w.Output))
	}
}

func TestAwaitAfterTheCloseReturnsAtOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	id := e.start("parked", "await-after", `{}`)
	if err := e.signal(id, "go", `"early"`); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(id, 20*time.Second)
	// Through the API that read the run, and through one that has read
	// nothing of it (which reads it afresh).
	fresh := e.freshAPI()
	for _, c := range []weftv1connect.WorkflowServiceClient{e.wf, fresh} {
		w, err := await(ctx(t), c, id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"early"` {
			t.Fatalf("got %v output %s", w.Status, toJSON(w.Output))
		}
	}
}

func TestAwaitTimeoutUnknownAndBadRequests(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	id := e.start("parked", "await-timeout", `{}`)
	begin := time.Now()
	_, err := await(ctx(t), e.wf, id, 300*time.Millisecond)
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "await it again") {
		t.Fatalf("await of a running workflow with a 300ms timeout: %v; want DeadlineExceeded saying to await again", err)
	}
	if took := time.Since(begin); took < 300*time.Millisecond {
		t.Fatalf("the await gave up after %s, before its timeout", took)
	}
	if _, err := await(ctx(t), e.wf, "no-such-run", time.Second); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("await of an unknown id: %v; want NotFound", err)
	}
	for _, bad := range []time.Duration{-time.Second, 16 * time.Minute} {
		if _, err := await(ctx(t), e.wf, id, bad); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "timeout") {
			t.Fatalf("await with timeout %s: %v; want InvalidArgument naming the timeout", bad, err)
		}
	}
	if _, err := await(ctx(t), e.wf, "bad id!", time.Second); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("await of an invalid id: %v; want InvalidArgument", err)
	}
	// The run was not disturbed by any of it.
	if err := e.signal(id, "go", `1`); err != nil {
		t.Fatal(err)
	}
	if w, err := await(ctx(t), e.wf, id, 20*time.Second); err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("final await: %v %v", w, err)
	}
}

// A client that hangs up ends its await at once: nothing of it stays
// registered, and the run is not disturbed.
func TestAwaitEndsWhenTheClientHangsUp(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	id := e.start("parked", "await-hangup", `{}`)
	cctx, hangUp := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := await(cctx, e.wf, id, 10*time.Minute)
		done <- err
	}()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(e.node) == 1 })
	hangUp()
	if err := <-done; connect.CodeOf(err) != connect.CodeCanceled {
		t.Fatalf("the client's await after hanging up: %v; want Canceled", err)
	}
	eventually(t, 20*time.Second, "the server to let the await go", func() bool { return awaiting(e.node) == 0 })
	if err := e.signal(id, "go", `2`); err != nil {
		t.Fatal(err)
	}
	if w, err := await(ctx(t), e.wf, id, 20*time.Second); err != nil || toJSON(w.Output) != `2` {
		t.Fatalf("await after the hang-up: %v %v", w, err)
	}
}

// An API process that stops while a client awaits ends the call; the
// client awaits again on another API process and gets the result.
func TestAwaitAcrossAnAPIRestart(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	id := e.start("parked", "await-restart", `{}`)
	first := e.startNode(envOpts{noExecutor: true}, false, true)
	c1, _ := newClients(first.APIURL)
	failed := make(chan error, 1)
	go func() {
		_, err := await(context.Background(), c1, id, time.Minute)
		failed <- err
	}()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(first) == 1 })
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = first.Stop(stopCtx)
	select {
	case err := <-failed:
		if err == nil {
			t.Fatal("the await returned a result although its API stopped before the run closed")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the await on a stopped API did not end")
	}
	second := e.startNode(envOpts{noExecutor: true}, false, true)
	c2, _ := newClients(second.APIURL)
	got := make(chan *weftv1.Workflow, 1)
	go func() {
		// The client retries until it has an answer.
		for {
			w, err := await(context.Background(), c2, id, time.Minute)
			if err == nil {
				got <- w
				return
			}
		}
	}()
	if err := e.signal(id, "go", `"after restart"`); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-got:
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"after restart"` {
			t.Fatalf("got %v output %s", w.Status, toJSON(w.Output))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the retried await never returned")
	}
}

// A run retried after an await returned its failure is awaited again by a
// new call, which returns the retried run's result.
func TestAwaitARetriedRun(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"once": func(context.Context, *executor.Task) (any, error) {
			if fail.Load() {
				return nil, executor.NonRetryable(errors.New("down"))
			}
			return "fixed", nil
		},
	}})
	e.putDef(`
name: retried
steps:
  - { id: s, task: once }
output: "${ steps.s.output }"
`)
	id := e.start("retried", "await-retried", `{}`)
	w, err := await(ctx(t), e.wf, id, 20*time.Second)
	if err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("first await: %v %v; want FAILED", w, err)
	}
	fail.Store(false)
	e.redrive(id, "")
	// Through the API that saw the first close, and through one that has
	// read nothing of the run.
	fresh := e.freshAPI()
	for _, c := range []weftv1connect.WorkflowServiceClient{e.wf, fresh} {
		w, err = await(ctx(t), c, id, 20*time.Second)
		if err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"fixed"` {
			t.Fatalf("await after the retry: %v %v; want COMPLETED with \"fixed\"", w, err)
		}
	}
}

// A watch opened on a run retried after it failed follows it past its
// first close to its new one.
func TestWatchARetriedRun(t *testing.T) {
	once, fail, gate := failsThenWaits()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{"once": once}})
	e.putDef(`
name: watched-retried
steps:
  - { id: s, task: once }
output: "${ steps.s.output }"
`)
	id := e.start("watched-retried", "watch-retried", `{}`)
	if w, err := await(ctx(t), e.wf, id, 20*time.Second); err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("first await: %v %v; want FAILED", w, err)
	}
	fail.Store(false)
	e.redrive(id, "")
	stream, err := e.wf.WatchWorkflow(ctx(t), connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: id}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var types []string
	for stream.Receive() {
		types = append(types, stream.Msg().Event.Type)
		if stream.Msg().Event.Type == "WorkflowFailed" {
			close(gate) // the retried step may finish now: the watch has read the first close
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) == 0 || types[len(types)-1] != "WorkflowCompleted" || !slicesContain(types, "WorkflowFailed") {
		t.Fatalf("the watch saw %v; want the first close and then the run to its completion", types)
	}
}

// failsThenWaits is a handler that fails for good while fail is set, and
// once it is cleared waits for gate to close before it returns "fixed":
// a run that fails, then, retried, stays running until the test lets it on.
func failsThenWaits() (h executor.Handler, fail *atomic.Bool, gate chan struct{}) {
	fail, gate = new(atomic.Bool), make(chan struct{})
	fail.Store(true)
	h = func(ctx context.Context, _ *executor.Task) (any, error) {
		if fail.Load() {
			return nil, executor.NonRetryable(errors.New("down"))
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return "fixed", nil
	}
	return h, fail, gate
}

// freshAPI starts another API process, which has read nothing yet, and
// returns a client of it.
func (e *env) freshAPI() weftv1connect.WorkflowServiceClient {
	e.t.Helper()
	c, _ := newClients(e.startNode(envOpts{noExecutor: true}, false, true).APIURL)
	return c
}

// A run that failed on its history limit records the result that met the
// limit after its close, so its last record is not a closing one: an
// await through an API process that has read nothing of the run still
// returns it FAILED at once, not "still open" when its timeout passes.
func TestAwaitAFailedRunWithALateResult(t *testing.T) {
	e := newEnv(t, envOpts{maxHistory: 20})
	e.putDef(endlessLoopDef)
	id := e.start("loop", "", ``)
	e.waitClosed(id, 20*time.Second)
	eventually(t, 20*time.Second, "the result after the close to be recorded", func() bool {
		h := e.history(id)
		return len(h) > 0 && h[len(h)-1].Type == "StepCompleted"
	})
	fresh := e.freshAPI()
	w, err := await(ctx(t), fresh, id, 5*time.Second)
	if err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("await through a fresh API of a failed run whose last record is a late result: %v %v; want FAILED", w, err)
	}
}
