// Package callagain makes a Connect call again while its server cannot
// answer it. It is the one retry loop of Weft's API clients: the CLI's
// writes and the bench's clients.
//
// A call made again may have been made already (its answer was lost): a
// write must carry the request id of its first try, so that the server
// applies it once however many tries reach it.
package callagain

import (
	"context"
	"time"

	"connectrpc.com/connect"
)

// Retryable reports whether a call that failed with err may be made
// again: the server could not answer it (Unavailable: it could not be
// reached or is restarting; DeadlineExceeded: NATS did not answer it in
// time; Canceled: it stopped while answering), or the write met another
// at the same history (Aborted: a try of its own whose answer was lost,
// say). Any other failure is an answer.
func Retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled, connect.CodeAborted:
		return true
	}
	return false
}

// Policy says how long and how often a call is made again.
type Policy struct {
	// For is how long after its first Retryable failure a call is made
	// again. Required.
	For time.Duration
	// Pause is the wait before the first call made again; it doubles at
	// each next one up to MaxPause. Both required.
	Pause, MaxPause time.Duration
}

// Do calls call until it returns nil or a failure that is not Retryable,
// ctx ends, or p.For has passed since its first Retryable failure,
// pausing between calls as p says. Before each pause it calls again (if
// not nil) with the number of the call it is about to make again (1 for
// the first) and the failure that makes it. It returns how many calls it
// made again and the last call's error; when ctx ends during a pause that
// is the last call's failure too, not ctx's error.
func Do(ctx context.Context, p Policy, call func() error, again func(n int, err error)) (int, error) {
	var first time.Time
	pause := p.Pause
	for n := 0; ; n++ {
		err := call()
		if err == nil || !Retryable(err) || ctx.Err() != nil {
			return n, err
		}
		if first.IsZero() {
			first = time.Now()
		} else if time.Since(first) > p.For {
			return n, err
		}
		if again != nil {
			again(n+1, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return n, err
		}
		pause = min(2*pause, p.MaxPause)
	}
}
