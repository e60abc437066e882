package api

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// interest wakes the calls waiting on workflows (awaits on a close,
// watches on every record) as their histories grow, from one Follower
// shared by all of them: waiting costs memory, not JetStream consumers.
// The follower is made when the first call (or read, see touch) comes and
// ended when none has been left for linger. Each record it sees is
// offered to seen first (the API's cache of states folds in the records
// of the runs it holds), then wakes the calls waiting on its workflow,
// then counts as passed on (pos), which is what a GetWorkflow waits for
// before it answers from the cache (withCurrentState).
//
// A wake is a hint to look again, with the stream sequence the workflow's
// state must reach. A call registers, then looks at the workflow at once
// (a call never waits for the follower), then after each wake. Whenever a
// follower is in place (the first, or one made after a failure) every call
// is woken to read afresh: what was stored before the follower began is
// read, what after it is followed, so nothing is missed.
type interest struct {
	follow func(context.Context) (*eventstore.Follower, error)
	seen   func(eventstore.Followed)
	// replaced forgets every state read or followed: the history stream
	// was made again, and its sequences started over.
	replaced func()
	linger   time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	base    context.Context // the server's life
	waiters map[string]map[*waiter]struct{}
	count   int
	// gen counts the followers' loops; stop ends the current one.
	gen  int
	stop context.CancelFunc
	idle *time.Timer

	// running is the epoch of the follower in place (0: none); epochs
	// counts them. pos is the stream sequence of the last record the
	// follower in place passed on (or the one it began after): every
	// record up to it has been offered to seen. lastUse is when a read
	// last asked for the follower (touch), in Unix nanoseconds.
	running atomic.Uint64
	epochs  atomic.Uint64
	pos     atomic.Uint64
	lastUse atomic.Int64
	// reaching are the reads waiting for pos to reach a sequence.
	rmu      sync.Mutex
	reaching map[chan struct{}]uint64
	nReach   atomic.Int32
	// followed is the last record passed on of recent workflows, by any
	// follower: what a read of one must reach.
	followed *followedSeqs
	// created is when the history stream the last follower followed was
	// made, or, before the first, the one the store opened (under mu):
	// states read before any follower was in place are of that one.
	// replacements counts the times a follower found it made again since
	// (watches end then).
	created      time.Time
	replacements atomic.Uint64
}

// followedSeqs remembers, for the workflows of recent records, the
// stream sequence of the last record passed on: by the workflow id's
// 64-bit hash (two ids of one hash are as likely as not in 2^32 runs; the
// table holds no pointers for the collector to scan), for the last
// followedKeep (or the last followedNotes records, when more
// came in that time). A read that comes back behind what the follower
// passed on is behind for moments (a stream leader still storing what it
// delivered), so a workflow is remembered for as long as such a read can
// matter, whatever other runs' records pass meanwhile.
type followedSeqs struct {
	mu    sync.Mutex
	seed  maphash.Seed
	base  time.Time              // for notes' times, on the monotonic clock
	last  map[uint64]followedSeq // by the id's hash
	notes []followedNote         // in the order noted; from head on
	head  int
	count uint64 // notes made
}

// followedSeq is a workflow's last record passed on, and the note that
// said so last.
type followedSeq struct {
	seq  uint64
	note uint64
}

// followedNote is one note (the count-th), for forgetting it in turn.
type followedNote struct {
	h     uint64 // the id's hash
	at    time.Duration
	count uint64
}

// followedKeep is how long a workflow's last record passed on is
// remembered; followedNotes bounds the notes kept within it (at 10,000
// records a second, 13 s of them; 14 MiB at most, measured).
const (
	followedKeep  = time.Minute
	followedNotes = 1 << 17
)

func newFollowedSeqs() *followedSeqs {
	return &followedSeqs{seed: maphash.MakeSeed(), base: time.Now(), last: map[uint64]followedSeq{}}
}

// note records seq as wf's last record passed on.
func (f *followedSeqs) note(wf string, seq uint64) {
	h := maphash.String(f.seed, wf)
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Since(f.base)
	if prev, ok := f.last[h]; ok && prev.seq > seq {
		seq = prev.seq
	}
	f.count++
	f.last[h] = followedSeq{seq: seq, note: f.count}
	f.notes = append(f.notes, followedNote{h: h, at: now, count: f.count})
	for f.head < len(f.notes) && (len(f.notes)-f.head > followedNotes || now-f.notes[f.head].at > followedKeep) {
		n := f.notes[f.head]
		f.notes[f.head] = followedNote{}
		f.head++
		if cur, ok := f.last[n.h]; ok && cur.note == n.count {
			delete(f.last, n.h)
		}
	}
	if f.head > len(f.notes)/2 {
		f.notes = append(f.notes[:0:0], f.notes[f.head:]...)
		f.head = 0
	}
}

// clear forgets every workflow.
func (f *followedSeqs) clear() {
	f.mu.Lock()
	clear(f.last)
	f.notes, f.head = nil, 0
	f.mu.Unlock()
}

// of returns the sequence of wf's last record passed on, if remembered,
// or 0.
func (f *followedSeqs) of(wf string) uint64 {
	h := maphash.String(f.seed, wf)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last[h].seq
}

// waiter is one call's registration: wake has room for one hint; need is
// the stream sequence the workflow's state must reach to show what woke
// it, and reread asks for a read whatever the state reaches.
type waiter struct {
	wf      string
	closing bool // woken by closing records only
	wake    chan struct{}
	need    atomic.Uint64
	reread  atomic.Bool
}

func newInterest(follow func(context.Context) (*eventstore.Follower, error), seen func(eventstore.Followed), replaced func(), linger time.Duration, created time.Time, log *slog.Logger) *interest {
	return &interest{follow: follow, seen: seen, replaced: replaced, linger: linger, log: log, waiters: map[string]map[*waiter]struct{}{},
		followed: newFollowedSeqs(), created: created}
}

// setBase sets the context followers live in (the server's Start context).
func (in *interest) setBase(ctx context.Context) {
	in.mu.Lock()
	in.base = ctx
	in.mu.Unlock()
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

// add registers a call waiting on wf (on its closing records only, with
// closing), starting the follower if none runs.
func (in *interest) add(wf string, closing bool) *waiter {
	w := &waiter{wf: wf, closing: closing, wake: make(chan struct{}, 1)}
	in.mu.Lock()
	defer in.mu.Unlock()
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
	return w
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
		in.armIdle(in.linger)
	}
}

// armIdle ends the follower after d unless a call registers or a read
// uses it meanwhile; in.mu is held.
func (in *interest) armIdle(d time.Duration) {
	gen := in.gen
	in.idle = time.AfterFunc(d, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.count != 0 || in.gen != gen || in.stop == nil {
			return
		}
		if since := time.Since(time.Unix(0, in.lastUse.Load())); since < in.linger {
			in.armIdle(in.linger - since)
			return
		}
		in.stop()
		in.stop = nil
	})
}

// touch keeps the follower running for a read that uses it, starting it
// if none runs.
func (in *interest) touch() {
	in.lastUse.Store(time.Now().UnixNano())
	if in.running.Load() != 0 {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stop == nil {
		in.start()
		if in.count == 0 {
			in.armIdle(in.linger)
		}
	}
}

// reach waits until the follower of epoch ep has passed on every record
// up to stream sequence seq, and reports whether it did within wait.
func (in *interest) reach(ctx context.Context, ep, seq uint64, wait time.Duration) bool {
	if in.running.Load() != ep {
		return false
	}
	if in.pos.Load() >= seq {
		return in.running.Load() == ep
	}
	ch := make(chan struct{})
	in.rmu.Lock()
	if in.reaching == nil {
		in.reaching = map[chan struct{}]uint64{}
	}
	in.reaching[ch] = seq
	in.nReach.Add(1)
	in.rmu.Unlock()
	// Registered: a record passed on from now releases ch; one passed on
	// before is seen here.
	reached := in.pos.Load() >= seq
	if !reached {
		t := time.NewTimer(wait)
		select {
		case <-ch:
			reached = true
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	in.rmu.Lock()
	if _, ok := in.reaching[ch]; ok {
		delete(in.reaching, ch)
		in.nReach.Add(-1)
	}
	in.rmu.Unlock()
	return reached && in.running.Load() == ep
}

// passed records that the follower passed on every record up to seq.
func (in *interest) passed(seq uint64) {
	in.pos.Store(seq)
	if in.nReach.Load() == 0 {
		return
	}
	in.rmu.Lock()
	defer in.rmu.Unlock()
	for ch, want := range in.reaching {
		if want <= seq {
			close(ch)
			delete(in.reaching, ch)
			in.nReach.Add(-1)
		}
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
	in.stop = stop
	go in.loop(ctx, in.gen)
}

// loop keeps a follower running until ctx ends: made again after a
// failure, with every call woken to read afresh once it is in place.
func (in *interest) loop(ctx context.Context, gen int) {
	const first, most = 100 * time.Millisecond, 5 * time.Second
	backoff := first
	for ctx.Err() == nil {
		f, err := in.follow(ctx)
		if err == nil {
			// Put in place under mu, which stopping a loop and starting
			// the next hold: a loop stopped while its follower was made
			// leaves it (it goes once idle), never taking the place of
			// the next loop's.
			in.mu.Lock()
			if gen != in.gen || ctx.Err() != nil {
				in.mu.Unlock()
				break
			}
			if !in.sameHistoryLocked(f.Created()) {
				// Made again, while followed or not: nothing read or
				// followed before holds, and every call reads afresh once
				// this follower is in place.
				in.log.Warn("the history stream was made again: forgetting every state read from the old one")
				in.followed.clear()
				in.replaced()
				in.replacements.Add(1)
			}
			in.pos.Store(f.From())
			ep := in.epochs.Add(1)
			in.running.Store(ep)
			in.mu.Unlock()
			in.wakeAll()
			began := time.Now()
			err = f.Run(ctx, in.record)
			// Only its own epoch: a follower made meanwhile by a new loop
			// (stopped, then started again at once) keeps running.
			in.running.CompareAndSwap(ep, 0)
			if err == nil {
				break // ctx ended
			}
			if errors.Is(err, eventstore.ErrHistoryReplaced) {
				backoff = first
				continue // the next follower forgets the old stream
			}
			if time.Since(began) > most {
				backoff = first // it ran a while: not a tight loop of failures
			}
		}
		in.log.Warn("cannot follow workflow histories; trying again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, most)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.gen == gen && in.stop != nil {
		in.stop = nil // the base context ended
	}
}

// record passes a followed record on: to seen, then to its workflow's
// calls, then to the reads waiting for the follower to reach it.
func (in *interest) record(r eventstore.Followed) {
	in.seen(r)
	in.followed.note(r.Workflow, r.Seq)
	defer in.passed(r.Seq)
	in.mu.Lock()
	n := len(in.waiters[r.Workflow])
	in.mu.Unlock()
	if n == 0 {
		return
	}
	closes := r.Closes()
	in.mu.Lock()
	defer in.mu.Unlock()
	for w := range in.waiters[r.Workflow] {
		if closes || !w.closing {
			w.poke(r.Seq)
		}
	}
}

// sameHistoryLocked reports whether a follower of the history stream
// made at created follows the same stream as the last one, or as the one
// the store opened (true for an unknown creation time). in.mu is held.
func (in *interest) sameHistoryLocked(created time.Time) bool {
	if created.IsZero() {
		return true
	}
	same := in.created.IsZero() || in.created.Equal(created)
	in.created = created
	return same
}

func (in *interest) wakeAll() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, set := range in.waiters {
		for w := range set {
			w.reread.Store(true)
			w.poke(0)
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

// interrupt wakes w to look at why it waits (its call ended or timed
// out), asking for no newer state.
func (w *waiter) interrupt() { w.poke(0) }

// sleep waits until w is woken or done is closed.
//
//go:noinline
func (w *waiter) sleep(done <-chan struct{}) {
	select {
	case <-w.wake:
	case <-done:
	}
}

// look returns the sequence the next look must reach: 0 (read what is
// new) when a read afresh was asked for.
func (w *waiter) look() uint64 {
	if w.reread.Swap(false) {
		return 0
	}
	return w.need.Load()
}
