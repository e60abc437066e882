package workflow

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
)

// SnapshotVersion is the layout of encoded states. A snapshot of another
// version is not read: the history is folded instead.
const SnapshotVersion = 13

// ErrBadSnapshot is returned (wrapped) for a snapshot that cannot be read.
var ErrBadSnapshot = errors.New("unreadable snapshot")

// snapshot is a folded state as stored: its exported fields, and the
// derived ones Apply keeps that cannot be rebuilt from them. The loop
// progress decisions learn is left out: a state read from history starts
// without it too.
type snapshot struct {
	V         int                       `msgpack:"v"`
	State     *State                    `msgpack:"s"`
	Outputs   map[string]map[string]any `msgpack:"o"`
	SignalIDs map[string]bool           `msgpack:"g"`
	Requests  map[string]bool           `msgpack:"q,omitempty"`
}

// EncodeSnapshot returns st in the snapshot encoding: what folding the
// history up to st.LastSeq gives, so a reader can fold only what follows.
func EncodeSnapshot(st *State) ([]byte, error) {
	if st.Events == 0 {
		return nil, errors.New("snapshot of a workflow that has not started")
	}
	return msgpack.Marshal(snapshot{V: SnapshotVersion, State: st, Outputs: st.outputs, SignalIDs: st.signalIDs, Requests: st.requestIDs})
}

// DecodeSnapshot reads a state written by EncodeSnapshot, which must have
// been taken at history sequence seq (its LastSeq). Errors wrap
// ErrBadSnapshot.
func DecodeSnapshot(b []byte, seq uint64) (st *State, err error) {
	// The decoder can panic on some malformed input.
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%w: %v", ErrBadSnapshot, r)
		}
	}()
	var s snapshot
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.UseLooseInterfaceDecoding(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if s.V != SnapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrBadSnapshot, s.V, SnapshotVersion)
	}
	if s.State == nil || s.State.Events == 0 || s.State.Steps == nil {
		return nil, fmt.Errorf("%w: no started state", ErrBadSnapshot)
	}
	if s.State.LastSeq != seq {
		return nil, fmt.Errorf("%w: taken at seq %d, stored as taken at %d", ErrBadSnapshot, s.State.LastSeq, seq)
	}
	st = s.State
	st.outputs, st.signalIDs, st.requestIDs = s.Outputs, s.SignalIDs, s.Requests
	st.Bytes = int64(len(b))
	if st.outputs == nil {
		st.outputs = map[string]map[string]any{}
	}
	if st.Vars == nil {
		st.Vars = map[string]any{}
	}
	if err := st.normalize(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	return st, nil
}

// normalize puts decoded values and times in the form decoded events give
// them (value.Normalize, UTC), so a restored state equals a folded one.
func (st *State) normalize() error {
	var err error
	n := func(v *any) {
		if err == nil && *v != nil {
			*v, err = value.NormalizeOwned(*v)
		}
	}
	utc := func(ts ...*time.Time) {
		for _, t := range ts {
			*t = t.UTC()
		}
	}
	n(&st.Input)
	n(&st.Output)
	if err := events.NormalizeSearch(st.Search); err != nil {
		return fmt.Errorf("search attributes: %w", err)
	}
	for k, v := range st.Vars {
		n(&v)
		st.Vars[k] = v
	}
	for _, m := range st.outputs {
		for k, v := range m {
			n(&v)
			m[k] = v
		}
	}
	for _, sig := range st.Signals {
		if sig == nil {
			return errors.New("nil signal")
		}
		n(&sig.Payload)
	}
	for path, s := range st.Steps {
		if s == nil {
			return fmt.Errorf("nil step %q", path)
		}
		n(&s.Output)
		n(&s.ChildInput)
		for i := range s.Items {
			n(&s.Items[i])
		}
		utc(&s.Started, &s.Closed, &s.TimeoutAt)
	}
	for _, s := range st.Superseded {
		if s == nil {
			return errors.New("nil superseded step")
		}
		n(&s.ChildInput)
		utc(&s.Started, &s.Closed)
	}
	for _, path := range st.Order {
		if st.Steps[path] == nil {
			return fmt.Errorf("step %q in order but not in steps", path)
		}
	}
	utc(&st.TimeoutAt, &st.AdmitAt, &st.Created, &st.Closed, &st.Now)
	return err
}
