package api

import (
	"context"
	"sync"
)

// barrier learns the history stream's last sequence for reads that must
// see every record stored before they began, with one request shared by
// every read waiting at the time: a read joins the next request to be
// sent (never one already on its way, which may have been answered
// before the read began), and a request is sent once the one before it
// is answered. So a thousand polls a second cost as many requests as
// round trips fit in that second, not a thousand.
type barrier struct {
	fetch func(context.Context) (uint64, error)

	mu      sync.Mutex
	next    *lastSeq // the request the next reads join; nil: none yet
	sending bool
}

// lastSeq is one request for the last sequence: done is closed once seq
// or err is set.
type lastSeq struct {
	done chan struct{}
	seq  uint64
	err  error
}

// lastSeq returns a last sequence of the history stream learned after the
// call began.
func (b *barrier) lastSeq(ctx context.Context) (uint64, error) {
	b.mu.Lock()
	r := b.next
	if r == nil {
		r = &lastSeq{done: make(chan struct{})}
		b.next = r
		if !b.sending {
			b.send()
		}
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.seq, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// send sends the next request; b.mu is held.
func (b *barrier) send() {
	r := b.next
	b.next, b.sending = nil, true
	go func() {
		// The request serves many reads: it is not ended by any one's
		// context, only bounded in time.
		ctx, cancel := context.WithTimeout(context.Background(), barrierTimeout)
		r.seq, r.err = b.fetch(ctx)
		cancel()
		close(r.done)
		b.mu.Lock()
		defer b.mu.Unlock()
		b.sending = false
		if b.next != nil {
			b.send()
		}
	}()
}
