package eventstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Snapshots. A long workflow's folded state is kept in the stream
// WEFT_SNAPSHOTS, latest only, as parts on weft.snap.<id>.<n> (a state can
// outgrow one message). A record appended after a snapshot names the
// sequence the snapshot was taken at, so a read of the history finds the
// snapshot on its way back from the last record and stops there: loading
// a workflow then costs the snapshot and the records after it, however long
// its history. A snapshot is only ever a shortcut: one that is missing,
// torn or unreadable is passed by and the history read in full.
const (
	snapPrefix = "weft.snap."
	// snapHeader, on a history record, names the sequence of a snapshot
	// of the workflow taken before the record was appended.
	snapHeader = "Weft-Snap"
	// On each part of a snapshot: the sequence it was taken at, the
	// number of parts, the total size and the id of the write.
	snapSeqHeader   = "Weft-Snap-Seq"
	snapPartsHeader = "Weft-Snap-Parts"
	snapSizeHeader  = "Weft-Snap-Size"
	snapIDHeader    = "Weft-Snap-Id"
)

// maxSnapPart bounds a snapshot part, well under the default NATS payload limit.
const maxSnapPart = 256 << 10

func (s *Store) openSnapshots(ctx context.Context) error {
	var err error
	s.snaps, err = s.ensureStream(ctx, jetstream.StreamConfig{
		Name:              SnapshotStream,
		Description:       "Weft snapshots of long workflows' folded state (rebuildable from history)",
		Subjects:          []string{snapPrefix + ">"},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		Discard:           jetstream.DiscardOld,
		Storage:           s.cfg.Storage,
		Replicas:          s.cfg.Replicas,
		AllowDirect:       true,
	}, nil, nil)
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", SnapshotStream, err)
	}
	return nil
}

func snapSubject(wf string, part int) string { return snapPrefix + wf + "." + strconv.Itoa(part) }

// PutSnapshot stores data as wf's snapshot of its state after the record
// at history sequence seq, replacing the one before. Records appended with
// AppendWith(…, AppendOpts{Snapshot: seq}, …) then lead reads to it.
func (s *Store) PutSnapshot(ctx context.Context, wf string, seq uint64, data []byte) error {
	if !ValidWorkflowID(wf) {
		return fmt.Errorf("eventstore: invalid workflow id %q", wf)
	}
	if len(data) == 0 {
		return errors.New("eventstore: empty snapshot")
	}
	size := int(min(maxSnapPart, s.nc.MaxPayload()-4096))
	parts := (len(data) + size - 1) / size
	id := rand.Text()
	// The first part goes last: a reader starts from it, so a write cut
	// short leaves the snapshot before it (or a torn one, which is passed by).
	for p := parts - 1; p >= 0; p-- {
		msg := nats.NewMsg(snapSubject(wf, p))
		msg.Data = data[p*size : min(len(data), (p+1)*size)]
		msg.Header.Set(snapSeqHeader, strconv.FormatUint(seq, 10))
		msg.Header.Set(snapPartsHeader, strconv.Itoa(parts))
		msg.Header.Set(snapSizeHeader, strconv.Itoa(len(data)))
		msg.Header.Set(snapIDHeader, id)
		// No message id: the stream keeps one message per subject, so a
		// repeated write replaces, never adds; an id would instead drop a
		// second writer's parts within the dedup window and mix the two.
		if _, err := s.js.PublishMsg(ctx, msg); err != nil {
			return fmt.Errorf("eventstore: snapshot of %s: %w", wf, err)
		}
	}
	return nil
}

// GetSnapshot returns wf's latest snapshot and the history sequence it was
// taken at.
//
// Errors: ErrNotFound when wf has none, or only a torn one (being replaced).
func (s *Store) GetSnapshot(ctx context.Context, wf string) (uint64, []byte, error) {
	if !ValidWorkflowID(wf) {
		return 0, nil, fmt.Errorf("snapshot of %q: %w", wf, ErrNotFound)
	}
	get := func(part int) (*jetstream.RawStreamMsg, error) {
		m, err := retryRead(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
			return s.snaps.GetLastMsgForSubject(ctx, snapSubject(wf, part))
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("snapshot of %s: %w", wf, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("eventstore: snapshot of %s: %w", wf, err)
		}
		return m, nil
	}
	first, err := get(0)
	if err != nil {
		return 0, nil, err
	}
	seq, err1 := strconv.ParseUint(first.Header.Get(snapSeqHeader), 10, 64)
	parts, err2 := strconv.Atoi(first.Header.Get(snapPartsHeader))
	size, err3 := strconv.Atoi(first.Header.Get(snapSizeHeader))
	id := first.Header.Get(snapIDHeader)
	// Parts are all as long as the first but the last: a size that does
	// not fit is a header gone wrong, never a reason to allocate.
	part := len(first.Data)
	if err := errors.Join(err1, err2, err3); err != nil || parts < 1 || parts > 1<<16 || size < 1 || id == "" ||
		part == 0 || size > parts*part || size <= (parts-1)*part {
		return 0, nil, fmt.Errorf("snapshot of %s: unreadable headers: %w", wf, ErrNotFound)
	}
	var buf bytes.Buffer
	buf.Grow(size)
	buf.Write(first.Data)
	for p := 1; p < parts; p++ {
		m, err := get(p)
		if err != nil {
			return 0, nil, err
		}
		if m.Header.Get(snapIDHeader) != id {
			return 0, nil, fmt.Errorf("snapshot of %s: torn (being replaced): %w", wf, ErrNotFound)
		}
		buf.Write(m.Data)
	}
	if buf.Len() != size {
		return 0, nil, fmt.Errorf("snapshot of %s: %d bytes, want %d: %w", wf, buf.Len(), size, ErrNotFound)
	}
	return seq, buf.Bytes(), nil
}

// snapshotOf returns the snapshot sequence a history record names, if any.
func snapshotOf(m *jetstream.RawStreamMsg) (uint64, bool) {
	v := m.Header.Get(snapHeader)
	if v == "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || seq == 0 || seq >= m.Sequence {
		return 0, false
	}
	return seq, true
}

// Tail is a workflow's history from its latest usable snapshot on.
type Tail struct {
	// Snapshot is the snapshot the records follow, taken after the record
	// at SnapshotSeq; nil when the records follow the caller's `after`.
	Snapshot    []byte
	SnapshotSeq uint64
	// Msgs are the records after SnapshotSeq (or after `after`), oldest first.
	Msgs []Message
	// Gone: the workflow has no history at all (none was written, or
	// retention deleted it).
	Gone bool
}

// ReadTail is Read that starts from a snapshot when one is newer than
// after: the records after it are read, not the whole history. Without a
// usable snapshot it returns what Read returns.
func (s *Store) ReadTail(ctx context.Context, wf string, after uint64) (Tail, error) {
	return s.read(ctx, wf, after, true)
}
