package callagain

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
)

var policy = Policy{For: time.Minute, Pause: 50 * time.Millisecond, MaxPause: time.Second}

// A call the server could not answer is made again until it is answered;
// an answer that is a failure is returned at once.
func TestACallIsMadeAgainUntilAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, code := range []connect.Code{connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeCanceled, connect.CodeAborted} {
			calls := 0
			var noted []int
			n, err := Do(t.Context(), policy, func() error {
				if calls++; calls < 4 {
					return connect.NewError(code, errors.New("not now"))
				}
				return connect.NewError(connect.CodeNotFound, errors.New("no such run"))
			}, func(n int, _ error) { noted = append(noted, n) })
			if n != 3 || connect.CodeOf(err) != connect.CodeNotFound || len(noted) != 3 || noted[0] != 1 || noted[2] != 3 {
				t.Errorf("%v: made again %d times (noted %v), %v; want 3 times, then not_found", code, n, noted, err)
			}
		}
	})
}

// A server that cannot answer for longer than Policy.For after the first
// failure is given up on, with its last failure.
func TestACallIsGivenUpAfterFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		begin := time.Now()
		n, err := Do(t.Context(), policy, func() error {
			return connect.NewError(connect.CodeUnavailable, errors.New("restarting"))
		}, nil)
		took := time.Since(begin)
		if connect.CodeOf(err) != connect.CodeUnavailable || took < policy.For || took > policy.For+2*policy.MaxPause || n < 60 || n > 70 {
			t.Errorf("given up after %s and %d calls made again, %v; want unavailable after about %s", took, n, err, policy.For)
		}
	})
}

// A context that ends during a pause ends the calls, with the last call's
// failure.
func TestACallIsGivenUpWhenItsContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		n, err := Do(ctx, policy, func() error {
			return connect.NewError(connect.CodeDeadlineExceeded, errors.New("nats did not answer"))
		}, nil)
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded || n == 0 {
			t.Errorf("made again %d times, %v; want deadline_exceeded, the last call's", n, err)
		}
		if ctx.Err() == nil {
			t.Error("returned before its context ended")
		}
	})
}
