package api

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// interest wakes the calls waiting on workflows (awaits on a close,
// watches on every record) as their histories grow, from one Follower
// shared by all of them: waiting costs memory, not JetStream consumers.
// The follower is made when the first call comes and ended when none has
// been left for linger. Each record it sees is offered to seen first (the
// API's cache of states folds it in) and then wakes the calls.
//
// A wake is a hint to look again, with the sequence the workflow's state
// must reach: a call reads the workflow after it is registered and the
// follower is in place (so nothing stored before is missed), then after
// each wake. When the follower fails, every call is woken, with a need
// no state reaches (so each reads), once its replacement is in place.
type interest struct {
	follow func(context.Context) (*eventstore.Follower, error)
	seen   func(eventstore.Followed)
	linger time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	base    context.Context // the server's life
	waiters map[string]map[*waiter]struct{}
	count   int
	// gen counts the followers made; stop ends the current one's loop, and
	// ready is closed once it follows (replaced when it stops).
	gen   int
	stop  context.CancelFunc
	ready chan struct{}
	idle  *time.Timer
}

// waiting returns how many calls are registered for closings, and how
// many for every record.
func (in *interest) waiting() (closings, records int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, set := range in.waiters {
		for w := range set {
			if w.closing {
				closings++
			} else {
				records++
			}
		}
	}
	return closings, records
}

// waiter is one call's registration: wake has room for one hint, and
// need is the stream sequence the workflow's state must reach to show
// what woke it.
type waiter struct {
	wf      string
	closing bool // woken by closing records only
	wake    chan struct{}
	need    atomic.Uint64
}

// everything is a need no state reaches: read afresh.
const everything = math.MaxUint64

func newInterest(follow func(context.Context) (*eventstore.Follower, error), seen func(eventstore.Followed), linger time.Duration, log *slog.Logger) *interest {
	return &interest{follow: follow, seen: seen, linger: linger, log: log, waiters: map[string]map[*waiter]struct{}{}}
}

// setBase sets the context followers live in (the server's Start context).
func (in *interest) setBase(ctx context.Context) {
	in.mu.Lock()
	in.base = ctx
	in.mu.Unlock()
}

// add registers a call waiting on wf (on its closing records only, with
// closing) and returns once the follower is in place, or ctx's error (the
// call is then not registered).
func (in *interest) add(ctx context.Context, wf string, closing bool) (*waiter, error) {
	w := &waiter{wf: wf, closing: closing, wake: make(chan struct{}, 1)}
	in.mu.Lock()
	set := in.waiters[wf]
	if set == nil {
		set = map[*waiter]struct{}{}
		in.waiters[wf] = set
	}
	set[w] = struct{}{}
	in.count++
	if in.idle != nil {
		in.idle.Stop()
		in.idle = nil
	}
	if in.stop == nil {
		in.start()
	}
	ready := in.ready
	in.mu.Unlock()
	select {
	case <-ready:
		return w, nil
	case <-ctx.Done():
		in.remove(w)
		return nil, ctx.Err()
	}
}

// remove ends w's registration.
func (in *interest) remove(w *waiter) {
	in.mu.Lock()
	defer in.mu.Unlock()
	set := in.waiters[w.wf]
	if _, ok := set[w]; !ok {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(in.waiters, w.wf)
	}
	in.count--
	if in.count == 0 && in.stop != nil {
		gen := in.gen
		in.idle = time.AfterFunc(in.linger, func() {
			in.mu.Lock()
			defer in.mu.Unlock()
			if in.count == 0 && in.gen == gen && in.stop != nil {
				in.stop()
				in.stop = nil
			}
		})
	}
}

// start begins following; in.mu is held.
func (in *interest) start() {
	base := in.base
	if base == nil {
		base = context.Background()
	}
	ctx, stop := context.WithCancel(base)
	in.gen++
	in.stop, in.ready = stop, make(chan struct{})
	go in.loop(ctx, in.gen, in.ready)
}

// loop keeps a follower running until ctx ends: made again after a
// failure, with every call woken once it is in place.
func (in *interest) loop(ctx context.Context, gen int, ready chan struct{}) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		f, err := in.follow(ctx)
		if err != nil {
			in.log.Warn("cannot follow workflow histories; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if ready != nil {
			close(ready)
			ready = nil
		}
		in.wakeAll()
		if err := f.Run(ctx, in.record); err != nil {
			in.log.Warn("following workflow histories stopped; following again", "err", err)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen == gen && in.stop != nil {
		in.stop = nil // the base context ended
	}
}

// record passes a followed record on: to seen, then to its workflow's
// calls.
func (in *interest) record(r eventstore.Followed) {
	in.mu.Lock()
	n := len(in.waiters[r.Workflow])
	in.mu.Unlock()
	if n == 0 {
		return
	}
	in.seen(r)
	in.mu.Lock()
	defer in.mu.Unlock()
	for w := range in.waiters[r.Workflow] {
		if r.Closing || !w.closing {
			w.poke(r.Seq)
		}
	}
}

func (in *interest) wakeAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, set := range in.waiters {
		for w := range set {
			w.poke(everything)
		}
	}
}

// poke wakes w for a state that reaches seq.
func (w *waiter) poke(seq uint64) {
	for {
		old := w.need.Load()
		if old >= seq || w.need.CompareAndSwap(old, seq) {
			break
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
