package eventstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Listing is a live copy of the workflow index in memory, in listing
// order, kept current by a watcher on the index bucket: it reads every
// entry once when it starts and then only what changes, so a page costs
// the entries it looks at, not a read of the whole bucket.
type Listing struct {
	mu   sync.RWMutex
	byID map[string]*Summary
	// asc holds the entries oldest first (by creation time, then id): new
	// workflows go at or near its end.
	asc []*Summary
	// stopped is set when the watcher ended; the copy is then frozen.
	stopped error
	// applied is the index stream's sequence the copy reflects; changed
	// is closed (and replaced) whenever it moves.
	applied uint64
	changed chan struct{}
	// counts holds the number of entries by definition ("" for all) and
	// status, kept as entries come, change and go.
	counts map[string]map[string]int
}

// listedBefore orders summaries oldest first, ties by id.
func listedBefore(a, b *Summary) bool {
	an, bn := a.Created.UnixNano(), b.Created.UnixNano()
	return an < bn || an == bn && a.ID < b.ID
}

// WatchListing starts a Listing and returns it once it holds every entry
// stored when it started. It follows changes until ctx ends.
func (s *Store) WatchListing(ctx context.Context) (*Listing, error) {
	// Everything stored before the watcher starts is in its first read,
	// even where the stream's last messages were removed since.
	before, err := s.IndexSeq(ctx)
	if err != nil {
		return nil, err
	}
	w, err := s.index.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: watch the workflow index: %w", err)
	}
	l := &Listing{byID: map[string]*Summary{}, changed: make(chan struct{}), applied: before, counts: map[string]map[string]int{}}
	for loaded := false; !loaded; {
		select {
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("eventstore: watch the workflow index: watcher closed")
			}
			if e == nil {
				loaded = true
				continue
			}
			l.applied = max(l.applied, e.Revision())
			if sum, ok := decodeEntry(e); ok {
				l.byID[sum.ID] = sum
			} else {
				delete(l.byID, e.Key())
			}
		}
	}
	initial := make([]*Summary, 0, len(l.byID))
	for _, sum := range l.byID {
		initial = append(initial, sum)
		l.count(sum, 1)
	}
	slices.SortFunc(initial, func(a, b *Summary) int {
		if listedBefore(a, b) {
			return -1
		}
		return 1
	})
	l.asc = initial
	go func() {
		defer func() { _ = w.Stop() }()
		for e := range w.Updates() {
			if e == nil {
				continue
			}
			l.apply(e)
		}
		l.mu.Lock()
		l.stopped = fmt.Errorf("eventstore: workflow index watcher ended")
		close(l.changed)
		l.mu.Unlock()
	}()
	return l, nil
}

// IndexSeq returns the sequence of the latest write to the workflow index
// (0 when it has none): a Listing that has applied it reflects every
// entry stored before.
func (s *Store) IndexSeq(ctx context.Context) (uint64, error) {
	// The stream's state, not its last message: finding that one behind
	// a wildcard means a walk over every workflow's key.
	info, err := s.indexStream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventstore: workflow index: %w", err)
	}
	return info.State.LastSeq, nil
}

// WaitFor waits until the listing reflects the index up to sequence seq
// (IndexSeq), its watcher ended, or ctx ended.
func (l *Listing) WaitFor(ctx context.Context, seq uint64) error {
	for {
		l.mu.RLock()
		done, stopped, changed := l.applied >= seq, l.stopped, l.changed
		l.mu.RUnlock()
		if done || stopped != nil {
			return stopped
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// decodeEntry reads an index entry; deletions and unreadable values give
// ok false.
func decodeEntry(e jetstream.KeyValueEntry) (*Summary, bool) {
	if e.Operation() != jetstream.KeyValuePut {
		return nil, false
	}
	var sum Summary
	if decodeSummary(e.Value(), &sum) != nil || sum.ID != e.Key() {
		return nil, false
	}
	return &sum, true
}

func (l *Listing) apply(e jetstream.KeyValueEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rev := e.Revision(); rev > l.applied {
		l.applied = rev
		close(l.changed)
		l.changed = make(chan struct{})
	}
	old := l.byID[e.Key()]
	sum, ok := decodeEntry(e)
	if old != nil {
		l.count(old, -1)
	}
	if old != nil && (!ok || !sum.Created.Equal(old.Created)) {
		l.asc = slices.DeleteFunc(l.asc, func(s *Summary) bool { return s == old })
		delete(l.byID, e.Key())
		old = nil
	}
	if !ok {
		return
	}
	l.count(sum, 1)
	if old != nil {
		*old = *sum
		return
	}
	i := sort.Search(len(l.asc), func(i int) bool { return listedBefore(sum, l.asc[i]) })
	l.asc = slices.Insert(l.asc, i, sum)
	l.byID[sum.ID] = sum
}

// count adds d to the counts of sum's definition and status.
func (l *Listing) count(sum *Summary, d int) {
	for _, def := range []string{"", sum.Definition} {
		m := l.counts[def]
		if m == nil {
			m = map[string]int{}
			l.counts[def] = m
		}
		if m[sum.Status] += d; m[sum.Status] == 0 {
			delete(m, sum.Status)
		}
		if len(m) == 0 {
			delete(l.counts, def)
		}
		if sum.Definition == "" {
			break // counted once, under ""
		}
	}
}

// Count returns the number of entries of each status, of definition def
// ("" for all) and whose id starts with idPrefix. Without a prefix it
// answers from counts kept as the index changes; with one it looks at
// every entry.
func (l *Listing) Count(def, idPrefix string) map[string]int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if idPrefix == "" {
		return maps.Clone(l.counts[def])
	}
	out := map[string]int{}
	for _, sum := range l.asc {
		if (def == "" || sum.Definition == def) && strings.HasPrefix(sum.ID, idPrefix) {
			out[sum.Status]++
		}
	}
	return out
}

// Err reports whether the listing stopped following the index.
func (l *Listing) Err() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.stopped
}

// Page returns up to n entries for which keep returns true, newest first
// (ties by id), starting after the entry created at afterCreatedNanos with
// id afterID (afterID "": from the newest). more says a further entry
// that keep accepts follows.
func (l *Listing) Page(afterCreatedNanos int64, afterID string, n int, keep func(Summary) bool) (page []Summary, more bool) {
	page, resume := l.Scan(afterCreatedNanos, afterID, n, 0, keep, nil)
	return page, resume != nil
}

// scanChunk is how many entries Scan copies at a time under the listing's
// lock, to look at without it.
const scanChunk = 256

// Scan is Page looking at no more than budget entries (0: no bound), and
// stopping early when stop (if set) says so before an entry after the
// first. It returns where a next call goes on from: the last entry
// returned when a further entry keep accepts follows it, the last entry
// looked at when the budget ran out or stop said so first, or nil when no
// entry keep accepts follows. keep and stop run without the listing's
// lock (on copies of its entries, a chunk at a time): a slow query holds
// up neither the listing's updates nor other reads.
func (l *Listing) Scan(afterCreatedNanos int64, afterID string, n, budget int, keep func(Summary) bool, stop func() bool) (page []Summary, resume *Summary) {
	looked := 0
	var last *Summary // the last entry looked at
	for {
		chunk := l.before(afterCreatedNanos, afterID, scanChunk)
		if len(chunk) == 0 {
			return page, nil
		}
		for i := range chunk {
			sum := chunk[i]
			if looked > 0 && (budget > 0 && looked == budget || stop != nil && stop()) {
				return page, last
			}
			looked++
			last = &chunk[i]
			if keep != nil && !keep(sum) {
				continue
			}
			if len(page) == n {
				end := page[n-1]
				return page, &end
			}
			page = append(page, sum)
		}
		afterCreatedNanos, afterID = last.Created.UnixNano(), last.ID
	}
}

// before copies up to k entries listed after the entry created at
// afterCreatedNanos with id afterID (afterID "": from the newest), newest
// first.
func (l *Listing) before(afterCreatedNanos int64, afterID string, k int) []Summary {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := len(l.asc) - 1
	if afterID != "" {
		// The last entry listed before the cursor's position.
		i = -1 + func() int {
			lo, hi := 0, len(l.asc)
			for lo < hi {
				m := (lo + hi) / 2
				c := l.asc[m].Created.UnixNano()
				if c < afterCreatedNanos || c == afterCreatedNanos && l.asc[m].ID < afterID {
					lo = m + 1
				} else {
					hi = m
				}
			}
			return lo
		}()
	}
	out := make([]Summary, 0, min(k, i+1))
	for ; i >= 0 && len(out) < k; i-- {
		out = append(out, *l.asc[i])
	}
	return out
}
