package orchestrator

import (
	"context"
	"slices"
	"testing"

	"github.com/weftworks/weft/eventstore"
)

// An orchestrator that queued a run caches it queued; another admits it,
// runs it and closes it, giving its slot back. The start, held by the
// first one's indexer past the ack wait (index writes timing out), comes
// back to it: its cached state, queued and never admitted, adds nothing
// and decides nothing, so no append finds it stale, and reconcileSlot
// enqueues the closed run, which takes the free slot. Only the give-back
// in admit, in the same pass, then frees it; when that give-back does not
// land (in chaos seed 57 its read of the slots, served by a replica
// behind the enqueue just written, saw nothing to give back and wrote
// nothing; here it fails), nothing else ever looks at the slot: the run
// is closed, no input of it comes again, and freeClosedHolders runs only
// for a run that waits on the key.
func TestAStaleQueuedCacheDoesNotPutAClosedRunBackInItsSlots(t *testing.T) {
	r, a, start := closedBehindACache(t)
	const wf = "r1"

	// The start again, to a. Whatever gives the closed run's slot back
	// after it was handed the slot does not land.
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	handed := false
	a.o.beforeGiveBack = func(string) {
		if s, err := r.store.ReadSlots(r.ctx, "q", ""); err == nil && (slices.Contains(s.Holders, wf) ||
			slices.ContainsFunc(s.Queue, func(q eventstore.QueuedRun) bool { return q.ID == wf })) {
			handed = true
			cancel()
		}
	}
	a.handle(ctx, start)
	a.o.beforeGiveBack = nil
	// Nothing more comes for the closed run: whatever its orchestrators
	// hold, its key's slots must be free.
	s, err := r.store.ReadSlots(r.ctx, "q", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Holders)+len(s.Queue) != 0 {
		t.Fatalf("closed run %s holds its key's slot after a pass on a stale cache (handed the slot: %v): %+v", wf, handed, s)
	}
	if handed {
		t.Fatalf("closed run %s was handed its key's slot by a pass on a stale cache", wf)
	}
}
