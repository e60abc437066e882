package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// indexer keeps the listing index (the weft-workflows bucket) in step with
// workflows' states, in batches. A closed workflow's entry is written at
// once; a running one's waits runningDelay, so a workflow that closes by
// then is written once, closed. The input that changed a workflow's
// status is acked only after the entry is stored: if the orchestrator
// dies first, the input is redelivered and its new owner writes the entry.
type indexer struct {
	store *eventstore.Store
	log   *slog.Logger
	delay time.Duration

	mu      sync.Mutex
	pending map[string]*indexWrite // not yet handed to a batch
	now     []*indexWrite          // due at once
	later   []delayedWrite         // due at their time, in order
	closing bool
	wake    chan struct{}
	stop    chan struct{} // closed by close
	done    chan struct{}
}

// indexWrite is one workflow's entry waiting to be written, with the
// inputs to settle once it is.
type indexWrite struct {
	sum    eventstore.Summary
	key    indexKey      // what sum reflects of the state
	mark   *atomic.Value // the cached state's written entry (a written)
	settle []func(ok bool)
	queued bool // in now
}

type delayedWrite struct {
	at time.Time
	w  *indexWrite
}

// written is what a cached state's mark holds: the indexKey of its entry
// as last stored, and that entry's revision (0: not known), which the
// next write replaces with one publish.
type written struct {
	key indexKey
	rev uint64
}

// runningDelay is how long a running workflow's entry waits before it is
// written.
const runningDelay = 500 * time.Millisecond

func newIndexer(store *eventstore.Store, log *slog.Logger) *indexer {
	ix := &indexer{store: store, log: log, delay: runningDelay, pending: map[string]*indexWrite{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go ix.run()
	return ix
}

// put queues sum, which reflects key of its state (newer than what mark
// says is written, where key is stored once sum is); settle is called with
// the outcome once it is stored, or with false when the indexer closes
// first. A running entry waits the indexer's delay unless atOnce.
func (ix *indexer) put(sum eventstore.Summary, key indexKey, mark *atomic.Value, atOnce bool, settle func(ok bool)) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closing {
		settle(false)
		return
	}
	w := ix.pending[sum.ID]
	fresh := w == nil
	if fresh {
		w = &indexWrite{}
		ix.pending[sum.ID] = w
	}
	w.sum, w.key, w.mark = sum, key, mark
	w.settle = append(w.settle, settle)
	switch {
	case (atOnce || workflow.Status(sum.Status).Terminal()) && !w.queued:
		w.queued = true
		ix.now = append(ix.now, w)
	case fresh:
		ix.later = append(ix.later, delayedWrite{at: time.Now().Add(ix.delay), w: w})
		if len(ix.later) > 1 {
			return // the writer already waits for an earlier one
		}
	default:
		return
	}
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

// close writes what is pending now and stops.
func (ix *indexer) close() {
	ix.mu.Lock()
	if !ix.closing {
		ix.closing = true
		close(ix.stop)
	}
	ix.mu.Unlock()
	select {
	case ix.wake <- struct{}{}:
	default:
	}
	<-ix.done
}

// take removes the writes that are due from pending.
func (ix *indexer) take() (batch []*indexWrite, next time.Duration, closing bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	now := time.Now()
	takeOne := func(w *indexWrite) {
		if ix.pending[w.sum.ID] == w {
			delete(ix.pending, w.sum.ID)
			batch = append(batch, w)
		}
	}
	for _, w := range ix.now {
		takeOne(w)
	}
	ix.now = ix.now[:0]
	i := 0
	for ; i < len(ix.later) && (ix.closing || !ix.later[i].at.After(now)); i++ {
		takeOne(ix.later[i].w)
	}
	ix.later = ix.later[i:]
	next = time.Hour
	if len(ix.later) > 0 {
		next = ix.later[0].at.Sub(now)
	}
	return batch, next, ix.closing
}

func (ix *indexer) run() {
	defer close(ix.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	failures := 0
	for {
		batch, next, closing := ix.take()
		if len(batch) > 0 {
			if ix.write(batch, closing) {
				failures = 0
			} else if failures++; !closing {
				// New writes do not cut the wait short: while the bucket
				// fails, writes due at once (closes, starts) would
				// otherwise try again as fast as they come.
				timer.Reset(min(100*time.Millisecond<<min(failures, 6), 5*time.Second))
				select {
				case <-ix.stop:
				case <-timer.C:
				}
			}
			continue
		}
		if closing {
			return
		}
		timer.Reset(next)
		select {
		case <-ix.wake:
		case <-timer.C:
		}
	}
}

// write stores a batch and settles its inputs; entries that failed go back
// to be tried again (or, when closing, their inputs are redelivered).
func (ix *indexer) write(batch []*indexWrite, closing bool) bool {
	sums := make([]eventstore.Summary, len(batch))
	for i, w := range batch {
		sums[i] = w.sum
		last, _ := w.mark.Load().(written)
		sums[i].KVRev = last.rev
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	errs := ix.store.PutSummaries(ctx, sums)
	cancel()
	ok := true
	for i, w := range batch {
		if errs[i] == nil || errors.Is(errs[i], eventstore.ErrSuperseded) {
			if errs[i] == nil {
				w.mark.Store(written{key: w.key, rev: sums[i].KVRev})
			} else {
				// The index holds another writer's entry, of a revision
				// not known here.
				last, _ := w.mark.Load().(written)
				w.mark.Store(written{key: last.key})
			}
			for _, settle := range w.settle {
				settle(true)
			}
			continue
		}
		ok = false
		if closing {
			for _, settle := range w.settle {
				settle(false)
			}
			continue
		}
		ix.log.Warn("index update failed; trying again", "workflow_id", w.sum.ID, "err", errs[i])
		ix.retry(w)
	}
	return ok
}

// retry queues a failed write again, merged into any newer one.
func (ix *indexer) retry(w *indexWrite) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if newer := ix.pending[w.sum.ID]; newer != nil {
		newer.settle = append(newer.settle, w.settle...)
		return
	}
	w.queued = true
	ix.pending[w.sum.ID] = w
	ix.now = append(ix.now, w)
}
