package api

import (
	"context"
	"errors"
	"path"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// How long AwaitWorkflow waits when the request names no timeout, and the
// longest it may name.
const (
	DefaultAwaitTimeout = time.Minute
	MaxAwaitTimeout     = 15 * time.Minute
)

// AwaitWorkflow returns the workflow's state once it is closed. It
// registers for the workflow's records, reads it (what is stored from
// then on is followed, so a close is never missed) and looks again each
// time a closing record of the workflow is stored, until one shows it
// closed or the timeout passes. The records followed meanwhile are folded
// into the cached state, so the look at a close reads nothing.
func (s *Server) AwaitWorkflow(ctx context.Context, req *connect.Request[weftv1.AwaitWorkflowRequest]) (*connect.Response[weftv1.AwaitWorkflowResponse], error) {
	wf := req.Msg.WorkflowId
	timeout, err := awaitTimeout(req.Msg)
	if err != nil {
		return nil, err
	}
	reg := s.interest.add(wf, true)
	defer s.interest.remove(reg)
	// The timeout wakes the call like a record does; the call waits on its
	// wake channel and on its context's end. Thousands of calls park
	// here: a wait on the context's own channel costs nothing more, where
	// a function run when it ends is a context of its own for each.
	deadline := time.Now().Add(timeout)
	expiry := time.AfterFunc(timeout, reg.interrupt)
	defer expiry.Stop()
	// The first look reads what is new whatever woke the call already: a
	// record followed meanwhile may be older than what the call must see.
	// The run the first look finds is the one awaited: one started under
	// its id after it was deleted is not.
	var run time.Time
	var behind time.Duration // the wait before the next look of a look behind its wake
	for need := uint64(0); ; need = reg.look() {
		// What the look must reach: the record it was woken for, or the
		// last the follower passed on (whose wake may have come before
		// the call registered).
		want := max(need, s.interest.followed.of(wf))
		w, created, seen, err := s.lookClosed(ctx, wf, need, run, deadline)
		if err != nil || w != nil {
			return awaited(w, err, wf, timeout)
		}
		run = created
		if s.ending.Load() {
			return nil, errStopping(wf)
		}
		// A look that read less than it was woken for (a stream leader
		// still storing what it delivered) is made again, a while later
		// each time, as a watch's read is: the wake came before the read
		// and does not come again.
		var again *time.Timer
		if seen < want {
			behind = nextBehindWait(behind)
			again = time.AfterFunc(behind, reg.interrupt)
		} else {
			behind = 0
		}
		reg.sleep(ctx.Done())
		if again != nil {
			again.Stop()
		}
		if err := ctx.Err(); err != nil {
			return awaited(nil, toConnect(err), wf, timeout)
		}
		if s.ending.Load() {
			return nil, errStopping(wf)
		}
		if !time.Now().Before(deadline) {
			return awaited(nil, context.DeadlineExceeded, wf, timeout)
		}
	}
}

// lookClosed is closedWorkflow, ending by the await's deadline. It runs
// on a goroutine of its own: a look (a read of the stream, a fold, the
// answer built) goes deep, and the stack of the goroutine that then stays
// parked for the rest of the await would keep the size that depth needed.
// So a parked await holds an 8 KiB stack, not 16. At most maxLooks looks
// run at once: ten thousand awaits that come together would otherwise
// grow ten thousand deep stacks at once, memory the runtime keeps long
// after.
//
// The look's context ends at the deadline or when the call returns, which
// it does as soon as its own context ends; it is not made a child of the
// call's context, which would give that context a table of its children
// for the rest of the await (half a kilobyte each, parked).
func (s *Server) lookClosed(ctx context.Context, wf string, need uint64, run, deadline time.Time) (*weftv1.Workflow, time.Time, uint64, error) {
	lctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	select {
	case s.looks <- struct{}{}:
	case <-ctx.Done():
		return nil, run, 0, toConnect(ctx.Err())
	case <-lctx.Done():
		return nil, run, 0, toConnect(lctx.Err())
	}
	type answer struct {
		w       *weftv1.Workflow
		created time.Time
		seen    uint64
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		defer func() { <-s.looks }()
		w, created, seen, err := s.closedWorkflow(lctx, wf, need, run)
		done <- answer{w, created, seen, err}
	}()
	select {
	case a := <-done:
		return a.w, a.created, a.seen, a.err
	case <-ctx.Done():
		return nil, run, 0, toConnect(ctx.Err())
	}
}

// EndAwaits ends the AwaitWorkflow calls open now, and those that come
// later, with Unavailable: the process stops, and an await would hold its
// stop for as long as its run lasts. Their callers await again, on
// another API process or this one started again. Other calls in flight
// are left to finish.
func (s *Server) EndAwaits() {
	s.ending.Store(true)
	s.interest.wakeAll()
}

// errStopping is what an await of wf ended by EndAwaits answers.
func errStopping(wf string) error {
	return errorf(connect.CodeUnavailable, "this API process is stopping: await workflow %q again", wf)
}

// maxLooks is how many of the awaits' looks run at once.
const maxLooks = 64

// Waiting returns how many AwaitWorkflow calls wait for a close and how
// many WatchWorkflow calls follow a history in this process.
func (s *Server) Waiting() (awaits, watches int) {
	return s.interest.waiting()
}

// awaitTimeout is the request's timeout, checked, or the default.
func awaitTimeout(m *weftv1.AwaitWorkflowRequest) (time.Duration, error) {
	if err := checkWorkflowID(m.WorkflowId); err != nil {
		return 0, err
	}
	if m.Timeout == nil {
		return DefaultAwaitTimeout, nil
	}
	if err := m.Timeout.CheckValid(); err != nil {
		return 0, errorf(connect.CodeInvalidArgument, "timeout: %v", err)
	}
	switch d := m.Timeout.AsDuration(); {
	case d < 0:
		return 0, errorf(connect.CodeInvalidArgument, "timeout must not be negative, got %s", d)
	case d == 0:
		return DefaultAwaitTimeout, nil
	case d > MaxAwaitTimeout:
		return 0, errorf(connect.CodeInvalidArgument, "timeout must be at most %s, got %s: await again after it passes", MaxAwaitTimeout, d)
	default:
		return d, nil
	}
}

// awaited answers an await: the closed workflow, or why there is none.
func awaited(w *weftv1.Workflow, err error, wf string, timeout time.Duration) (*connect.Response[weftv1.AwaitWorkflowResponse], error) {
	if errors.Is(err, context.DeadlineExceeded) || connect.CodeOf(err) == connect.CodeDeadlineExceeded {
		return nil, errorf(connect.CodeDeadlineExceeded, "workflow %q was still open (running, suspended or queued) when the await ended (timeout %s): await it again", wf, timeout)
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.AwaitWorkflowResponse{Workflow: w}), nil
}

// closedWorkflow returns wf's state when it is closed, and nil while it
// runs, with when the run it found was created and the stream sequence
// of the last record the state holds. A cached state that
// reaches stream sequence need is taken as it is; need 0 asks for
// everything stored before the call (the first look, and one after the
// follower was made again), from the cache when the follower keeps it
// current (withCurrentState). A run created at another time than run
// (when set) is another run of the id, started after the one awaited was
// deleted: NotFound.
func (s *Server) closedWorkflow(ctx context.Context, wf string, need uint64, run time.Time) (*weftv1.Workflow, time.Time, uint64, error) {
	var w *weftv1.Workflow
	var seen uint64
	created := run
	look := func(v *stateView) error {
		if !run.IsZero() && !v.st.Created.Equal(run) {
			return errorf(connect.CodeNotFound, "workflow %q was deleted while it was awaited (its id names a run started since)", wf)
		}
		created, seen = v.st.Created, v.st.LastSeq
		if v.st.Status == workflow.StatusRunning {
			return nil
		}
		var err error
		w, err = s.workflowProto(ctx, v)
		return err
	}
	var err error
	if need == 0 {
		err = s.withCurrentState(ctx, wf, look)
	} else {
		err = s.withState(ctx, wf, need, look)
	}
	return w, created, seen, err
}

// stopInterceptor answers a read cut short by its process's stop
// (EndAwaits, then the node ends watches and calls in flight) with
// Unavailable, which tells its caller to call again, on another API
// process or this one started again, rather than Canceled, which says
// the caller hung up. A write cut short is left as it is: it may have
// been made, and one without a request_id (a start with no workflow_id,
// a signal) made again would be made twice.
type stopInterceptor struct{ s *Server }

// WrapUnary answers a unary call cut short by the stop with Unavailable.
func (i stopInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		return res, i.s.stopped(req.Spec().Procedure, err)
	}
}

// WrapStreamingClient leaves clients alone.
func (i stopInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler answers a stream cut short by the stop with
// Unavailable.
func (i stopInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		return i.s.stopped(conn.Spec().Procedure, next(ctx, conn))
	}
}

// stopped returns err, or Unavailable for a read (a procedure RoleRead
// may call) that the process's stop canceled.
func (s *Server) stopped(procedure string, err error) error {
	if err != nil && s.ending.Load() && connect.CodeOf(err) == connect.CodeCanceled && pathRole(procedure) == RoleRead {
		return errorf(connect.CodeUnavailable, "this API process is stopping: call %s again", path.Base(procedure))
	}
	return err
}
