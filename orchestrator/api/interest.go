package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// interest wakes the calls waiting on workflows (awaits, watches) when
// their histories grow, from one Follower shared by all of them: waiting
// costs memory, not JetStream consumers. The follower is made when the
// first call comes and, with linger set, ended when none has been left
// for that long.
//
// A wake is only a hint to read again: a call reads the workflow after
// it is registered and the follower is in place (so nothing stored before
// is missed), then again after each wake. When the follower fails, every
// call is woken once its replacement is in place.
type interest struct {
	follow func(context.Context) (*eventstore.Follower, error)
	linger time.Duration // 0: follow for the life of base
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

// waiting returns how many calls are registered.
func (in *interest) waiting() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.count
}

// waiter is one call's registration: wake has room for one hint.
type waiter struct {
	wf   string
	wake chan struct{}
}

func newInterest(follow func(context.Context) (*eventstore.Follower, error), linger time.Duration, log *slog.Logger) *interest {
	return &interest{follow: follow, linger: linger, log: log, waiters: map[string]map[*waiter]struct{}{}}
}

// setBase sets the context followers live in (the server's Start context).
func (in *interest) setBase(ctx context.Context) {
	in.mu.Lock()
	in.base = ctx
	in.mu.Unlock()
}

// add registers a call waiting on wf and returns once the follower is in
// place, or ctx's error (the call is then not registered).
func (in *interest) add(ctx context.Context, wf string) (*waiter, error) {
	w := &waiter{wf: wf, wake: make(chan struct{}, 1)}
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
	if in.count == 0 && in.linger > 0 && in.stop != nil {
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
		if err := f.Run(ctx, func(wf string, _ uint64) { in.wakeOne(wf) }); err != nil {
			in.log.Warn("following workflow histories stopped; following again", "err", err)
		}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen == gen && in.stop != nil {
		in.stop = nil // the base context ended
	}
}

func (in *interest) wakeOne(wf string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for w := range in.waiters[wf] {
		w.poke()
	}
}

func (in *interest) wakeAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, set := range in.waiters {
		for w := range set {
			w.poke()
		}
	}
}

func (w *waiter) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}
