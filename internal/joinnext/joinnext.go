// Package joinnext shares one call among every caller waiting at the time:
// a caller joins the next call to start (never one already on its way,
// which may have been answered before the caller asked), and a call starts
// once the one before it has returned. So a thousand callers a second
// cost as many calls as fit one after another in that second, and each
// caller's answer was made after it asked.
package joinnext

import (
	"context"
	"sync"
	"time"
)

// Calls makes the shared calls of fn. The zero value is not usable: set
// Fn, and Timeout, which bounds each call (a call serves many callers: no
// one's context ends it).
type Calls[T any] struct {
	Fn      func(context.Context) (T, error)
	Timeout time.Duration

	mu      sync.Mutex
	next    *call[T] // the call the next callers join; nil: none yet
	running bool
}

// call is one call: done is closed once v or err is set.
type call[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// Do returns the answer of a call that started after Do was called, or
// ctx's error if ctx ends first.
func (c *Calls[T]) Do(ctx context.Context) (T, error) {
	c.mu.Lock()
	r := c.next
	if r == nil {
		r = &call[T]{done: make(chan struct{})}
		c.next = r
		if !c.running {
			c.start()
		}
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// start starts the next call; c.mu is held.
func (c *Calls[T]) start() {
	r := c.next
	c.next, c.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		r.v, r.err = c.Fn(ctx)
		cancel()
		close(r.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.running = false
		if c.next != nil {
			c.start()
		}
	}()
}
