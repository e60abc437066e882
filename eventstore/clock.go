package eventstore

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Clock is a process's clock bounded by the JetStream servers': where the
// machine's clock runs ahead of the time the history stream's leader
// reports, it reads the leader's time instead. One machine whose clock
// runs ahead (an API stamping a start or a signal, an orchestrator firing
// timers) then cannot move workflows' time (workflow.now, the due times of
// their timers) ahead on its own: that takes the stream leader's clock
// running ahead too. A clock that runs behind is left alone: it delays,
// never skips.
type Clock struct {
	local func() time.Time
	store *Store
	ahead atomic.Int64 // nanoseconds local runs ahead of the server, at least
	last  atomic.Int64 // the latest reading (Unix nanoseconds): readings never go back
}

// NewClock returns a Clock over local (time.Now when nil) that reads as
// local until Sync has compared it with the servers'.
func (s *Store) NewClock(local func() time.Time) *Clock {
	if local == nil {
		local = time.Now
	}
	return &Clock{local: local, store: s}
}

// Now returns the bounded time. It never reads earlier than it read
// before: when a new comparison finds the local clock further ahead, the
// clock stands still until the bounded time catches up.
func (c *Clock) Now() time.Time {
	t := c.local().Add(-time.Duration(c.ahead.Load()))
	for {
		last := c.last.Load()
		if t.UnixNano() <= last {
			return time.Unix(0, last).In(t.Location())
		}
		if c.last.CompareAndSwap(last, t.UnixNano()) {
			return t
		}
	}
}

// Ahead returns how far the local clock was found ahead of the servers'
// at the last Sync: a lower bound, 0 when it is not ahead.
func (c *Clock) Ahead() time.Duration { return time.Duration(c.ahead.Load()) }

// Sync compares the local clock with the time the history stream's leader
// reports in a stream info reply. The server's reading lies between the
// request and the reply, so the local clock is known ahead by at least the
// request's local time minus the server's reading; Sync keeps that.
func (c *Clock) Sync(ctx context.Context) error {
	sent := c.local()
	info, err := c.store.history.Info(ctx)
	if err != nil {
		return err
	}
	if info.TimeStamp.IsZero() { // a server that does not say: keep what is known
		return nil
	}
	c.ahead.Store(int64(max(0, sent.Sub(info.TimeStamp))))
	return nil
}

// Run syncs every interval until ctx ends (the first after one interval:
// a node syncs once as it starts), logging a clock found ahead by more
// than a second once each time it is found so, and failures to compare
// at the first and then every 30th.
func (c *Clock) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	warned, failures := false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := c.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if failures%30 == 0 {
				log.Warn("cannot compare the clock with JetStream's; keeping the last comparison", "err", err, "failures", failures+1)
			}
			failures++
			continue
		}
		failures = 0
		if ahead := c.Ahead(); ahead > time.Second && !warned {
			log.Warn("this machine's clock runs ahead of the JetStream servers'; using theirs", "ahead", ahead.String())
			warned = true
		} else if ahead <= time.Second {
			warned = false
		}
	}
}
