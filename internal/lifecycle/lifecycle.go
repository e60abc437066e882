// Package lifecycle holds the Start and Stop plumbing the long-running
// parts share (the orchestrator, the executor's worker, the trigger
// engine): a guard that makes a second Start fail and a second Stop do
// nothing, and the wait for in-flight work when a part stops.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Guard serializes a part's Start, Stop and whatever must not race them,
// and knows whether the part runs. The zero value is a stopped part.
type Guard struct {
	mu      sync.Mutex
	running bool
}

// Start runs start unless the part runs already (an error naming part),
// and marks the part running when start succeeds.
func (g *Guard) Start(part string, start func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running {
		return fmt.Errorf("%s: already started", part)
	}
	if err := start(); err != nil {
		return err
	}
	g.running = true
	return nil
}

// Stop marks the part stopped and runs stop; a part that does not run is
// left alone and Stop returns nil, so stopping twice is fine.
func (g *Guard) Stop(stop func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.running {
		return nil
	}
	g.running = false
	return stop()
}

// Locked runs fn, told whether the part runs, with Start and Stop held off.
func (g *Guard) Locked(fn func(running bool) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return fn(g.running)
}

// Drain waits for wait, which returns once the part's in-flight work has
// finished, then calls cancel, which ends the context that work ran
// under. When ctx ends first, cancel is called at once to cut the work
// short, and Drain returns ctx's error once wait has returned.
func Drain(ctx context.Context, wait, cancel func()) error {
	done := waiting(wait)
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}

// Await waits for wait to return, or for ctx to end: then it returns
// ctx's error and leaves wait to finish in the background.
func Await(ctx context.Context, wait func()) error {
	select {
	case <-waiting(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waiting runs wait in the background and returns a channel closed when
// it returns.
func waiting(wait func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait()
	}()
	return done
}
