package api

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// states keeps the folded states of recently read workflows, so that a
// read costs a request for what was appended since (usually nothing), not
// a read and fold of the history. It holds at most a number of states, and
// states of at most maxBytes in all (as State.Bytes counts them): the
// least recently used go first.
type states struct {
	runs *lru.Cache[string, *cachedRun]
	mu   sync.Mutex // makes get-or-add one step; guards bytes and counted
	// maxBytes bounds bytes, the sum of the entries' counted sizes.
	maxBytes, bytes int64
}

// cachedRun is one workflow's folded state; lock (a channel, so that a
// caller stops waiting for it when its context ends) serializes its
// reads. Records followed while a read held it wait in pending, to be
// folded in after.
type cachedRun struct {
	lock chan struct{}
	view *stateView // nil until first read
	// c and wf are the cache and key e was made for; counted is the size
	// of view the cache counts for e (under c.mu; 0 once pushed out).
	c       *states
	wf      string
	counted int64
	// epoch is the follower's (interest.running) under which view was
	// last read from the stream, or folded from its first record on; 0:
	// read while none followed.
	epoch uint64
	// expect is the epoch of the follower that is to pass on the run's
	// first record, for a run being started through this process while
	// none of it is cached (0: none): the state is then folded from that
	// record on, with nothing read (see expect).
	expect atomic.Uint64

	pmu     sync.Mutex
	pending []eventstore.Followed
	// seen is the sequence of the last record of the workflow offered.
	seen uint64

	// checked is when view was last read from or checked against the
	// stream, or folded from the run's first record (Unix nanoseconds).
	checked atomic.Int64
	// behind is when a read last stayed behind the follower for
	// maxBehindWait (Unix nanoseconds): for checkAfter after it, reads of
	// the run answer what they read without waiting again.
	behind atomic.Int64
}

// checkAfter is how long a cached state kept current by the follower is
// answered before it is checked against the stream again (one request,
// for what was appended since). The follower passes on every record, so
// the check finds nothing; it bounds how long a state stays behind if a
// record was ever missed, whatever missed it, and says so in the log.
const checkAfter = time.Second

// maxBehindWait is the longest withState waits before it reads a
// workflow again whose read stayed behind what the follower passed on;
// the waits before it double from 10ms (about 1.3s in all).
const maxBehindWait = 1280 * time.Millisecond

// nextBehindWait is the wait before the next read of a workflow whose
// read stayed behind what the follower passed on, after one of d (0: the
// first): 10ms, then twice as long each time, up to maxBehindWait.
func nextBehindWait(d time.Duration) time.Duration {
	return min(max(2*d, 10*time.Millisecond), maxBehindWait)
}

// maxPending bounds the followed records kept for a state being read;
// past it they are dropped, and a read that needs them reads them.
const maxPending = 256

func newStates(size int, maxBytes int64) *states {
	c := &states{maxBytes: maxBytes}
	runs, err := lru.NewWithEvict(size, func(_ string, e *cachedRun) {
		// Called by the cache's methods, all made under c.mu.
		c.bytes -= e.counted
		e.counted = 0
	})
	if err != nil {
		panic(err) // size is checked positive by Config
	}
	c.runs = runs
	return c
}

func (c *states) entry(wf string) *cachedRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.runs.Get(wf)
	if !ok {
		e = &cachedRun{lock: make(chan struct{}, 1), c: c, wf: wf}
		c.runs.Add(wf, e)
	}
	return e
}

// account counts the size of e's state (e's lock held), if e is still
// cached, and pushes the least recently used states out while the cache
// holds more than maxBytes. A state larger than maxBytes alone goes at
// once, and no other with it: pushing the least recently used out first
// would empty the cache before reaching it.
func (c *states) account(e *cachedRun) {
	var n int64
	if e.view != nil && e.view.st != nil {
		n = max(e.view.st.Bytes, 1)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.runs.Peek(e.wf); !ok || cur != e || n == e.counted {
		return
	}
	if n > c.maxBytes {
		c.runs.Remove(e.wf) // the evict callback takes back what e counted
		return
	}
	c.bytes += n - e.counted
	e.counted = n
	for c.bytes > c.maxBytes {
		if _, _, ok := c.runs.RemoveOldest(); !ok {
			return
		}
	}
}

// acquire takes e's lock, or returns ctx's error.
func (e *cachedRun) acquire(ctx context.Context) error {
	select {
	case e.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return toConnect(ctx.Err())
	}
}

// tryAcquire takes e's lock if it is free.
func (e *cachedRun) tryAcquire() bool {
	select {
	case e.lock <- struct{}{}:
		return true
	default:
		return false
	}
}

// release counts e's state in its cache (see account) and lets e's lock go.
func (e *cachedRun) release() {
	if e.c != nil {
		e.c.account(e)
	}
	<-e.lock
}

// withState calls fn with wf's current state: the cached fold brought up to
// date with the records appended since, or a fresh read. A cached fold
// that reaches stream sequence need (0: none does) is taken as it is,
// without asking the stream. fn must not keep or change the state: it is
// shared, and read under the entry's lock.
func (s *Server) withState(ctx context.Context, wf string, need uint64, fn func(*stateView) error) error {
	if err := checkWorkflowID(wf); err != nil {
		return err
	}
	e := s.states.entry(wf)
	// The follower in place before the read: the records it passes on
	// from then are offered to e, those before are in what is read.
	ep := s.interest.running.Load()
	if err := e.acquire(ctx); err != nil {
		return err
	}
	defer e.release()
	for wait := time.Duration(0); ; {
		// A read must reach the last record of wf the follower passed on
		// before it began (those after it are offered to e as they come).
		followed := s.interest.followed.of(wf)
		read, err := s.refresh(ctx, wf, e, ep, need)
		if err != nil {
			return err
		}
		// A record folded in meanwhile may be the one a read must reach,
		// or one that does not fold (the state is then read afresh).
		e.catchUp()
		switch {
		case e.view == nil:
		case !read || e.view.broken:
			return e.serve(fn)
		default:
			if followed <= e.view.st.LastSeq {
				return e.serve(fn)
			}
			// Read from a stream that had not yet stored what it had
			// delivered (a new leader still applying what its quorum
			// had stored, say). The state counts as behind, never
			// current, until a fold reaches the record, however this
			// call ends; it is read again, a while later each time.
			e.pmu.Lock()
			e.seen = max(e.seen, followed)
			e.pmu.Unlock()
			if wait == 0 {
				s.readMetrics.Behind()
				s.log.Info("a read of a workflow's history was behind records already followed; reading it again",
					"workflow_id", wf, "read_seq", e.view.st.LastSeq, "followed_seq", followed)
			}
			if wait >= maxBehindWait || time.Now().UnixNano()-e.behind.Load() < int64(checkAfter) {
				if wait >= maxBehindWait {
					e.behind.Store(time.Now().UnixNano())
					s.log.Warn("a read of a workflow's history stayed behind records already followed; its state is read again each time until it catches up",
						"workflow_id", wf, "read_seq", e.view.st.LastSeq, "followed_seq", followed)
				}
				return e.serve(fn)
			}
		}
		if wait >= maxBehindWait {
			return errorf(connect.CodeUnavailable, "workflow %q: its state could not be read to its end: try again", wf)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return toConnect(ctx.Err())
			}
		}
		wait, need = nextBehindWait(wait), 0
	}
}

// serve calls fn with e's state (e's lock held); a history that does not
// fold to its end is read afresh the next time.
func (e *cachedRun) serve(fn func(*stateView) error) error {
	if e.view.broken {
		defer func() { e.view = nil }()
	}
	return fn(e.view)
}

// refresh brings e's state (e's lock held) up to date for withState: a
// cached fold that reaches need is kept as it is; otherwise what was
// appended since is read and folded, or the run is read afresh. It
// reports whether it read the stream.
func (s *Server) refresh(ctx context.Context, wf string, e *cachedRun, ep, need uint64) (read bool, err error) {
	e.catchUp()
	if e.view != nil && (need == 0 || e.view.st.LastSeq < need) {
		// Held current with the follower past a record the read finds:
		// the follower passed it on without the state seeing it.
		wasCurrent, passed := e.current(ep), s.interest.pos.Load()
		checked := time.Now().UnixNano()
		read = true
		msgs, err := s.store.ReadLive(ctx, wf, e.view.st.LastSeq)
		if errors.Is(err, eventstore.ErrNotFound) {
			// Deleted (retention) since it was cached: never serve it.
			e.view = nil
			s.states.drop(wf, e)
		}
		if err != nil {
			return read, toConnect(err)
		}
		if wasCurrent && len(msgs) > 0 && msgs[0].Seq <= passed {
			s.log.Warn("a cached workflow state was behind its history: read again", "workflow_id", wf,
				"cached_seq", e.view.st.LastSeq, "missed_seq", msgs[0].Seq, "follower_seq", passed)
		}
		e.checked.Store(checked)
		switch {
		case len(msgs) > 0 && msgs[0].StartsRun():
			// Deleted and started again since it was cached: the new
			// run is read afresh, never folded onto the old one.
			e.view = nil
		case len(msgs) > 0:
			v, err := foldMessages(e.view.st, msgs)
			if err != nil {
				e.view = nil
				return read, err
			}
			e.view = v
		}
		if e.view != nil {
			e.epoch = ep
			e.catchUp()
		}
	}
	if e.view == nil {
		read = true
		v, err := s.readState(ctx, wf)
		if err != nil {
			if connect.CodeOf(err) == connect.CodeNotFound {
				s.states.drop(wf, e)
			}
			return read, err
		}
		e.view, e.epoch = v, ep
		e.checked.Store(time.Now().UnixNano())
		e.expect.Store(0)
		e.catchUp()
	}
	return read, nil
}

// withCurrentState is withState for a read that must see every record
// stored before it began (GetWorkflow), answered from the cache alone
// when it can be: the history stream's last sequence is learned (one
// request shared by the reads waiting at the time, see barrier), the
// follower is waited for until it has passed every record up to it on
// to the cache, and a cached state kept current by the follower since it
// was read is then as new as a read (for checkAfter after it was read or
// checked; then it is checked). Otherwise, and for a closed run
// (which retention may delete, a change no record tells the follower
// of), it reads as withState does.
func (s *Server) withCurrentState(ctx context.Context, wf string, fn func(*stateView) error) error {
	if err := checkWorkflowID(wf); err != nil {
		return err
	}
	s.interest.touch()
	if ep := s.interest.running.Load(); ep != 0 {
		if e, ok := s.states.get(wf); ok && !e.holdsNotRunning(ctx) {
			seq, err := s.barrier.lastSeq(ctx)
			if err == nil && s.interest.reach(ctx, ep, seq, reachWait) {
				if err := e.acquire(ctx); err != nil {
					return err
				}
				e.catchUp()
				// An entry pushed out of the cache meanwhile was offered
				// nothing since: only the entry cached is kept current.
				if e.current(ep) && s.states.holds(wf, e) && time.Now().UnixNano()-e.checked.Load() < int64(checkAfter) {
					defer e.release()
					return fn(e.view)
				}
				e.release()
			}
		}
	}
	return s.withState(ctx, wf, 0, fn)
}

// holdsNotRunning reports whether e holds a state of a run that is not
// running (closed, say): such a state is never answered without a read
// (see current), so a read of it need not wait for the barrier first.
func (e *cachedRun) holdsNotRunning(ctx context.Context) bool {
	if e.acquire(ctx) != nil {
		return false
	}
	defer e.release()
	return e.view != nil && e.view.st.Status != workflow.StatusRunning
}

// How long a read waits for the follower to pass on what the stream
// holds before it reads the stream itself, and how long the request for
// the stream's last sequence may take.
const (
	reachWait      = 100 * time.Millisecond
	barrierTimeout = 5 * time.Second
)

// current reports whether e's state holds every record of its run that the
// follower of epoch ep passed on, the follower having been in place since
// it was read (or since the run's first record), and the run is open; e's
// lock is held.
func (e *cachedRun) current(ep uint64) bool {
	if e.view == nil || e.view.broken || e.epoch != ep || e.view.st.Status != workflow.StatusRunning {
		return false
	}
	e.pmu.Lock()
	defer e.pmu.Unlock()
	return len(e.pending) == 0 && e.seen <= e.view.st.LastSeq
}

// expect readies wf's entry to be folded from its first record on, as the
// follower of epoch ep passes it on: called before a start of wf is
// stored, when none of wf is cached. The start's answer, the await after
// it and the polls of the new run then read nothing from the stream. It
// reports whether the entry was readied.
func (c *states) expect(wf string, ep uint64) bool {
	e := c.entry(wf)
	if !e.tryAcquire() {
		return false
	}
	defer e.release()
	if e.view != nil {
		return false
	}
	e.expect.Store(ep)
	return true
}

// unexpect undoes expect for a start that stored no new run, and drops
// the entry if it holds no state (as a read that finds no run does), so
// refused starts do not push cached states out.
func (c *states) unexpect(wf string) {
	e, ok := c.peek(wf)
	if !ok {
		return
	}
	e.expect.Store(0)
	if !e.tryAcquire() {
		return
	}
	defer e.release()
	if e.view == nil {
		c.drop(wf, e)
	}
}

// offer folds a followed record into its workflow's cached state, if one
// is cached. A state being read is not waited for (the follower never
// waits on the stream): the record is left for the reader to fold.
func (c *states) offer(r eventstore.Followed) {
	e, ok := c.peek(r.Workflow)
	if !ok {
		return
	}
	e.pmu.Lock()
	e.seen = max(e.seen, r.Seq)
	e.pmu.Unlock()
	if e.tryAcquire() {
		e.catchUp(r)
		e.release()
		return
	}
	e.pmu.Lock()
	if len(e.pending) < maxPending {
		e.pending = append(e.pending, r)
	}
	e.pmu.Unlock()
}

// catchUp folds the pending records, then more, into the state as far as
// they follow on from it: a record the state has is passed by, and one
// that would leave a gap ends it (a read that needs more reads it). e's lock
// is held.
func (e *cachedRun) catchUp(more ...eventstore.Followed) {
	e.pmu.Lock()
	recs := append(e.pending, more...)
	e.pending = nil
	e.pmu.Unlock()
	for _, r := range recs {
		if e.view == nil {
			ep := e.expect.Load()
			if ep == 0 || !r.HasPrev || r.Prev != 0 {
				return
			}
			// The first record of a run started through this process,
			// passed on by the follower in place since before it was
			// stored: the state is folded from it, as a read would.
			e.expect.Store(0)
			v, err := foldMessages(&workflow.State{}, []eventstore.Message{r.Message()})
			if err != nil || v.broken {
				return
			}
			e.view, e.epoch = v, ep
			e.checked.Store(time.Now().UnixNano())
			continue
		}
		if e.view.broken {
			return
		}
		if r.Seq <= e.view.st.LastSeq {
			continue
		}
		if !r.HasPrev || r.Prev != e.view.st.LastSeq {
			return
		}
		v, err := foldMessages(e.view.st, []eventstore.Message{r.Message()})
		if err != nil || v.broken {
			e.view = nil
			return
		}
		e.view = v
	}
}

// get returns wf's entry, if cached, refreshing its place.
func (c *states) get(wf string) (*cachedRun, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs.Get(wf)
}

// holds reports whether e is wf's entry in the cache. An entry once
// pushed out is never cached again (entry makes a new one), so one still
// held has been offered every record of wf followed since it was made.
func (c *states) holds(wf string, e *cachedRun) bool {
	cur, ok := c.peek(wf)
	return ok && cur == e
}

// drop removes wf's entry if it is e, and leaves a newer one be.
func (c *states) drop(wf string, e *cachedRun) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.runs.Peek(wf); ok && cur == e {
		c.runs.Remove(wf)
	}
}

// clear forgets every state: a call holding one finishes with it, and
// the next reads afresh.
func (c *states) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs.Purge()
}

// peek returns wf's entry, if cached, without refreshing its place.
func (c *states) peek(wf string) (*cachedRun, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs.Peek(wf)
}
