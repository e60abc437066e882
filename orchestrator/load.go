package orchestrator

import (
	"context"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Loaded is a workflow's history as a load from scratch reads it.
type Loaded struct {
	// State is restored from the latest usable snapshot, or empty.
	State *workflow.State
	// Msgs are the records to fold into State.
	Msgs []eventstore.Message
	// SnapshotSeq is the sequence State was restored at (0: empty).
	SnapshotSeq uint64
	// Passed is why a snapshot the history names was passed by, if one was.
	Passed error
}

// ReadFromSnapshot reads wf's history from its latest snapshot on. A
// snapshot is only a shortcut: one that cannot be read is passed by and the
// whole history returned.
func ReadFromSnapshot(ctx context.Context, store *eventstore.Store, wf string) (Loaded, error) {
	tail, err := store.ReadTail(ctx, wf, 0)
	if err != nil {
		return Loaded{}, err
	}
	l := Loaded{State: &workflow.State{}, Msgs: tail.Msgs}
	if tail.Snapshot == nil {
		return l, nil
	}
	st, err := workflow.DecodeSnapshot(tail.Snapshot, tail.SnapshotSeq)
	if err != nil {
		l.Passed = err
		l.Msgs, err = store.Read(ctx, wf, 0)
		return l, err
	}
	l.State, l.SnapshotSeq = st, tail.SnapshotSeq
	return l, nil
}
