package joinnext

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// Callers that come while a call is on its way all join the next one, and
// each gets an answer made after it asked; a caller whose context ends
// stops waiting.
func TestCallersJoinTheNextCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int64
		release := make(chan struct{})
		c := &Calls[int64]{Timeout: time.Minute, Fn: func(context.Context) (int64, error) {
			i := n.Add(1)
			if i == 1 {
				<-release
			}
			return i, nil
		}}
		first := make(chan int64, 1)
		go func() {
			v, _ := c.Do(context.Background())
			first <- v
		}()
		synctest.Wait() // the first call is on its way
		var wg sync.WaitGroup
		got := make([]int64, 10)
		for i := range got {
			wg.Go(func() { got[i], _ = c.Do(context.Background()) })
		}
		synctest.Wait() // every caller waits for the next call
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.Do(ctx); err == nil {
			t.Fatal("a caller whose context ended got an answer")
		}
		close(release)
		if v := <-first; v != 1 {
			t.Fatalf("first caller got %d, want 1", v)
		}
		wg.Wait()
		for i, v := range got {
			if v != 2 {
				t.Fatalf("caller %d got the answer of call %d, want 2 (the call after the one on its way when it asked)", i, v)
			}
		}
		if calls := n.Load(); calls != 2 {
			t.Fatalf("%d calls for 12 callers, want 2", calls)
		}
	})
}
