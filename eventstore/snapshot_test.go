package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

func TestSnapshotPutGet(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, _, err := s.GetSnapshot(ctx, "wf1"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("GetSnapshot with none: %v", err)
	}
	big := make([]byte, 700<<10) // three parts
	for i := range big {
		big[i] = byte(rand.IntN(256))
	}
	small := []byte("small state")
	for _, c := range []struct {
		seq  uint64
		data []byte
	}{{7, big}, {9, small}, {12, big[:300<<10]}} {
		if err := s.PutSnapshot(ctx, "wf1", c.seq, c.data); err != nil {
			t.Fatal(err)
		}
		seq, data, err := s.GetSnapshot(ctx, "wf1")
		if err != nil || seq != c.seq || !bytes.Equal(data, c.data) {
			t.Fatalf("GetSnapshot = %d, %d bytes, %v; want %d, %d bytes", seq, len(data), err, c.seq, len(c.data))
		}
	}
	if _, _, err := s.GetSnapshot(ctx, "wf2"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("another workflow's snapshot: %v", err)
	}
	// A part written by another write (one cut short, or racing) makes the
	// snapshot torn: it is not found rather than read wrong.
	m := nats.NewMsg("weft.snap.wf1.1")
	m.Data = []byte("other")
	m.Header.Set("Weft-Snap-Id", "another-write")
	if err := s.Conn().PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	notFound := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, _, err := s.GetSnapshot(ctx, "wf1")
			if errors.Is(err, eventstore.ErrNotFound) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GetSnapshot error = %v, want ErrNotFound", what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	notFound("torn snapshot")
	// Headers that do not fit the data are never trusted with an allocation.
	for _, h := range []map[string]string{
		{"Weft-Snap-Seq": "5", "Weft-Snap-Parts": "1", "Weft-Snap-Size": "9223372036854775807", "Weft-Snap-Id": "x"},
		{"Weft-Snap-Seq": "5", "Weft-Snap-Parts": "4611686018427387904", "Weft-Snap-Size": "100", "Weft-Snap-Id": "x"},
		{"Weft-Snap-Seq": "5", "Weft-Snap-Parts": "1", "Weft-Snap-Size": "1", "Weft-Snap-Id": "x"},
	} {
		m := nats.NewMsg("weft.snap.wf1.0")
		m.Data = []byte("first part")
		for k, v := range h {
			m.Header.Set(k, v)
		}
		if _, err := s.Conn().RequestMsg(m, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		notFound(fmt.Sprintf("headers %v", h))
	}
}

func TestReadTailStartsAtSnapshot(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	last, err := s.AppendExternal(ctx, "wf1", &zero, "start/wf1", started("wf1"))
	if err != nil {
		t.Fatal(err)
	}
	seqs := []uint64{last}
	appendN := func(n int, snap uint64) {
		t.Helper()
		for range n {
			ev := events.Event{Type: events.TypeSignalReceived, Time: time.Unix(100, 0).UTC(),
				SignalReceived: &events.SignalReceived{Name: "s"}}
			if last, err = s.AppendWith(ctx, "wf1", last, eventstore.AppendOpts{Snapshot: snap}, ev); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, last)
			// Another workflow's records in between: not part of wf1's chain.
			if _, err := s.AppendExternal(ctx, "wf2", nil, "", started("wf2")); err != nil && !errors.Is(err, eventstore.ErrConflict) {
				t.Fatal(err)
			}
		}
	}
	appendN(29, 0) // records 0..29
	at := seqs[19]
	if err := s.PutSnapshot(ctx, "wf1", at, []byte("state at 19")); err != nil {
		t.Fatal(err)
	}
	appendN(20, at) // records 30..49 name the snapshot

	check := func(name string, after uint64, wantSnap string, wantFrom int) {
		t.Helper()
		tail, err := s.ReadTail(ctx, "wf1", after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(tail.Snapshot) != wantSnap {
			t.Errorf("%s: snapshot %q, want %q", name, tail.Snapshot, wantSnap)
		}
		if len(tail.Msgs) != len(seqs)-wantFrom || len(tail.Msgs) > 0 && tail.Msgs[0].Seq != seqs[wantFrom] {
			t.Fatalf("%s: %d records, want %d from seq %d", name, len(tail.Msgs), len(seqs)-wantFrom, seqs[wantFrom])
		}
		if wantSnap != "" && tail.SnapshotSeq != seqs[wantFrom-1] {
			t.Errorf("%s: snapshot seq %d, want %d", name, tail.SnapshotSeq, seqs[wantFrom-1])
		}
	}
	check("from the start", 0, "state at 19", 20)
	check("after a cached state newer than the snapshot", seqs[25], "", 26)
	if msgs, err := s.Read(ctx, "wf1", 0); err != nil || len(msgs) != len(seqs) {
		t.Fatalf("Read = %d records, %v; want the whole history (%d)", len(msgs), err, len(seqs))
	}

	// A snapshot newer than the record naming it is used too.
	if err := s.PutSnapshot(ctx, "wf1", seqs[45], []byte("state at 45")); err != nil {
		t.Fatal(err)
	}
	check("newer snapshot", 0, "state at 45", 46)
	// One taken at a sequence that is not this workflow's record is passed by.
	if err := s.PutSnapshot(ctx, "wf1", seqs[45]+1, []byte("not ours")); err != nil {
		t.Fatal(err)
	}
	check("snapshot off the chain", 0, "", 0)
	// One older than the record naming it is used: the walk goes on to it.
	if err := s.PutSnapshot(ctx, "wf1", seqs[10], []byte("state at 10")); err != nil {
		t.Fatal(err)
	}
	check("older snapshot", 0, "state at 10", 11)

	// Records that name a snapshot never stored are read in full.
	first, err := s.AppendExternal(ctx, "wf3", &zero, "start/wf3", started("wf3"))
	if err != nil {
		t.Fatal(err)
	}
	ev := events.Event{Type: events.TypeSignalReceived, Time: time.Unix(100, 0).UTC(), SignalReceived: &events.SignalReceived{Name: "s"}}
	if _, err := s.AppendWith(ctx, "wf3", first, eventstore.AppendOpts{Snapshot: first}, ev); err != nil {
		t.Fatal(err)
	}
	if tail, err := s.ReadTail(ctx, "wf3", 0); err != nil || tail.Snapshot != nil || len(tail.Msgs) != 2 {
		t.Fatalf("missing snapshot: ReadTail = %q, %d records, %v; want the whole history (2)", tail.Snapshot, len(tail.Msgs), err)
	}
}
