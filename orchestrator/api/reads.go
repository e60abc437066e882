package api

import (
	"context"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/internal/metrics"
)

// reads lets at most a few calls of one kind that only read (the reads
// of one run, GetWorkflow and GetHistory; or the listing's, ListWorkflows
// and CountWorkflows) be answered at once; the others wait their turn. A
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

// newReads bounds the reads answered at once to n; n <= 0 is no bound.
func newReads(n int, m *metrics.Reads) *reads {
	r := &reads{metrics: m}
	if n > 0 {
		r.turns = make(chan struct{}, n)
	}
	return r
}

// take waits for a turn, or for ctx to end, and returns what gives it
// back. Each read call takes one before anything else.
func (r *reads) take(ctx context.Context) (release func(), err error) {
	if r.turns == nil {
		return func() {}, nil
	}
	select {
	case r.turns <- struct{}{}:
		r.metrics.Waited(0)
		return r.release, nil
	default:
	}
	began := time.Now()
	r.waiting.Add(1)
	defer r.waiting.Add(-1)
	select {
	case r.turns <- struct{}{}:
		r.metrics.Waited(time.Since(began))
		return r.release, nil
	case <-ctx.Done():
		return nil, errorf(connect.CodeOf(toConnect(ctx.Err())), "the call ended (%v) after waiting %s for its turn: this server answers %d such reads at once and %d were waiting for one, this call among them; try again, or ask its operator for more (--max-reads)",
			ctx.Err(), time.Since(began).Round(time.Millisecond), cap(r.turns), r.waiting.Load())
	}
}

// release gives a turn back.
func (r *reads) release() { <-r.turns }
