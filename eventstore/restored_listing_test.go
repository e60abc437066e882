package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// A listing restored from a copy newer than the history's (a hot backup
// copies its streams one at a time) holds entries ahead of their runs:
// sequences the restored history has not reached, of runs that went on
// after the history was copied. The run's next entry replaces such a one,
// where it was refused as older and `weft list` stayed wrong until the
// history passed the sequence. Entries of the history as it stands still
// only move forward.
func TestASummaryAheadOfARestoredHistoryIsReplaced(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(s *eventstore.Store, status string, seq uint64) error {
		t.Helper()
		return s.PutSummaries(ctx, []eventstore.Summary{{ID: "wf", Definition: "d", Status: status, Seq: seq}})[0]
	}
	get := func(s *eventstore.Store) eventstore.Summary {
		t.Helper()
		sum, err := s.GetSummary(ctx, "wf")
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	// The listing as copied: the run completed far on.
	if err := put(s, "COMPLETED", 500); err != nil {
		t.Fatal(err)
	}
	// The history as copied, earlier: the stream is made anew (restored),
	// and the run is at its start there.
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, eventstore.HistoryStream); err != nil {
		t.Fatal(err)
	}
	s, err = eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := s.Append(ctx, "wf", 0, started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := put(s, "RUNNING", seq); err != nil {
		t.Fatalf("the run's entry on the restored history: %v; want it written over the one ahead of it", err)
	}
	if got := get(s); got.Status != "RUNNING" || got.Seq != seq {
		t.Fatalf("entry %+v; want RUNNING@%d", got, seq)
	}
	// From then on, forward only: a late entry of an earlier point is
	// refused once a later one is stored.
	last, err := s.Append(ctx, "wf", seq, completed("done"))
	if err != nil {
		t.Fatal(err)
	}
	if err := put(s, "COMPLETED", last); err != nil {
		t.Fatal(err)
	}
	if err := put(s, "RUNNING", seq); !errors.Is(err, eventstore.ErrSuperseded) {
		t.Fatalf("a late entry of an earlier point: %v; want ErrSuperseded", err)
	}
	if got := get(s); got.Status != "COMPLETED" || got.Seq != last {
		t.Fatalf("entry %+v; want COMPLETED@%d", got, last)
	}
}
