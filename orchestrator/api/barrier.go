package api

import (
	"context"

	"github.com/weftworks/weft/internal/joinnext"
)

// barrier learns the history stream's last sequence for reads that must
// see every record stored before they began, with one request shared by
// every read waiting at the time (joinnext): a thousand polls a second
// cost as many requests as round trips fit in that second, not a
// thousand.
type barrier struct {
	calls joinnext.Calls[uint64]
}

// newBarrier returns a barrier that learns the last sequence with fetch.
func newBarrier(fetch func(context.Context) (uint64, error)) *barrier {
	return &barrier{calls: joinnext.Calls[uint64]{Fn: fetch, Timeout: barrierTimeout}}
}

// lastSeq returns a last sequence of the history stream learned after the
// call began.
func (b *barrier) lastSeq(ctx context.Context) (uint64, error) { return b.calls.Do(ctx) }
