package api

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/metrics"
)

// reads lets at most a few of the calls that only read workflows
// (readProcedures) be answered at once; the others wait their turn. A
// client that polls GetWorkflow as fast as it is answered asks again as
// soon as it has an answer: without a bound, sixty-four such clients take
// about half of a two-core machine from the runs they poll. With one, runs
// keep their pace and the polls are answered in turn. Waiting calls
// (AwaitWorkflow, WatchWorkflow) and writes do not take a turn.
type reads struct {
	turns   chan struct{} // nil: no bound
	waiting atomic.Int64  // calls waiting for a turn
	metrics *metrics.Reads
}

// readProcedures are the calls that take a turn.
var readProcedures = map[string]bool{
	weftv1connect.WorkflowServiceGetWorkflowProcedure:    true,
	weftv1connect.WorkflowServiceGetHistoryProcedure:     true,
	weftv1connect.WorkflowServiceListWorkflowsProcedure:  true,
	weftv1connect.WorkflowServiceCountWorkflowsProcedure: true,
}

// newReads bounds the reads answered at once to n: 0 is one a core
// (GOMAXPROCS), a negative n no bound.
func newReads(n int, m *metrics.Reads) *reads {
	r := &reads{metrics: m}
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	if n > 0 {
		r.turns = make(chan struct{}, n)
	}
	return r
}

// WrapUnary implements connect.Interceptor.
func (r *reads) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	if r.turns == nil {
		return next
	}
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !readProcedures[req.Spec().Procedure] {
			return next(ctx, req)
		}
		if err := r.take(ctx); err != nil {
			return nil, err
		}
		defer func() { <-r.turns }()
		return next(ctx, req)
	}
}

// take waits for a turn, or for ctx to end.
func (r *reads) take(ctx context.Context) error {
	select {
	case r.turns <- struct{}{}:
		r.metrics.Waited(0)
		return nil
	default:
	}
	began := time.Now()
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case r.turns <- struct{}{}:
		r.metrics.Waited(time.Since(began))
		return nil
	case <-ctx.Done():
		return errorf(connect.CodeOf(toConnect(ctx.Err())), "the call ended (%v) after waiting %s for its turn: this server answers %d reads at once and %d were waiting for one, this call among them; try again, or ask its operator for more (--max-reads)",
			ctx.Err(), time.Since(began).Round(time.Millisecond), cap(r.turns), r.waiting.Load())
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (r *reads) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor.
func (r *reads) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
