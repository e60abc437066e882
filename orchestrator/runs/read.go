package runs

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
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

// Fold applies msgs to st in order, as far as they fold: it stops at the
// first record that cannot be decoded or applied and returns that record
// and why (its decode error, or the error applying one of its events), or
// nil and nil. st.LastSeq becomes the sequence of each record once all its
// events are applied, and st.Bytes counts its size; each, if set, is called
// after every event applied.
// It is the one fold of stored records: the orchestrator's, the API's and
// the doctor's.
func Fold(st *workflow.State, msgs []eventstore.Message, each func(events.Event)) (*eventstore.Message, error) {
	for i := range msgs {
		m := &msgs[i]
		if m.Err != nil {
			return m, m.Err
		}
		if st.Events == 0 {
			st.FirstSeq = m.Seq
		}
		for _, ev := range m.Record.Events {
			if err := st.Apply(ev); err != nil {
				return m, err
			}
			if each != nil {
				each(ev)
			}
		}
		st.LastSeq = m.Seq
		st.Bytes += int64(m.Size)
	}
	return nil, nil
}

// FoldMessages folds msgs into st as far as they fold and returns why it
// stopped early (a record that cannot be decoded or applied), or nil. A
// history that stops early is shown FAILED with error type
// corrupt_history, as the orchestrator records it, unless it already is,
// or unless a newer version wrote the record (events.ErrNewer): the run
// is then not this build's to judge, and the caller must not act on st.
// st.LastSeq becomes the last message's sequence.
func FoldMessages(st *workflow.State, msgs []eventstore.Message) (broken error) {
	if m, err := Fold(st, msgs, nil); m != nil {
		broken = err
		if m.Err == nil {
			broken = fmt.Errorf("at seq %d: %w", m.Seq, err)
		}
	}
	if len(msgs) > 0 {
		st.LastSeq = msgs[len(msgs)-1].Seq
	}
	if broken != nil && st.Events > 0 && st.Status != workflow.StatusFailed && !errors.Is(broken, events.ErrNewer) {
		st.Status = workflow.StatusFailed
		st.Error = &events.Error{Type: workflow.ErrTypeCorruptHistory, Message: broken.Error()}
		if st.Closed.IsZero() {
			st.Closed = st.Now
		}
	}
	return broken
}

// Summary returns the listing entry of st, workflow wf. It shares nothing
// with st, which may change while the entry waits to be written.
func Summary(wf string, st *workflow.State) eventstore.Summary {
	return eventstore.Summary{ID: wf, Definition: st.Definition, Revision: st.Revision,
		Status: string(st.Shown()), Created: st.Created, Closed: st.Closed, Seq: st.LastSeq,
		Identity: st.StartedBy, Search: maps.Clone(st.Search)}
}
