package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// TestDeleteRun deletes one run's history, snapshot, timers and index
// entry, leaves another's alone, and can be repeated.
func TestDeleteRun(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for _, wf := range []string{"old", "other"} {
		seq, err := s.Append(ctx, wf, 0, started(wf))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutSnapshot(ctx, wf, seq, []byte("state")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, wf, seq, completed("done")); err != nil {
			t.Fatal(err)
		}
		if err := s.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "t1", Path: "a", Due: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: wf, Definition: "d", Revision: 1, Status: "completed", Seq: seq + 1}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	for range 2 { // idempotent
		if err := s.DeleteRun(ctx, "old", 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.LastSeq(ctx, "old"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("history after DeleteRun: %v", err)
	}
	if _, err := s.ReadLive(ctx, "old", 0); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("ReadLive after DeleteRun: %v", err)
	}
	if _, _, err := s.GetSnapshot(ctx, "old"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("snapshot after DeleteRun: %v", err)
	}
	if st, _, err := s.Timer(ctx, "old", "t1"); err != nil || st != eventstore.TimerMissing {
		t.Fatalf("timer after DeleteRun: %v %v", st, err)
	}
	if _, err := s.GetSummary(ctx, "old"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("index entry after DeleteRun: %v", err)
	}
	// A listing write that comes late (an orchestrator's queued write of
	// the run's close) does not bring the deleted run's entry back.
	if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: "old", Definition: "d", Revision: 1, Status: "completed", Seq: 99}}); !errors.Is(errs[0], eventstore.ErrSuperseded) {
		t.Fatalf("a late index write after DeleteRun: %v", errs[0])
	}
	if _, err := s.GetSummary(ctx, "old"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("index entry after a late write: %v", err)
	}
	// The other run is whole.
	if msgs, err := s.ReadLive(ctx, "other", 0); err != nil || len(msgs) != 2 {
		t.Fatalf("other run: %d records, %v", len(msgs), err)
	}
	if _, _, err := s.GetSnapshot(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if st, _, err := s.Timer(ctx, "other", "t1"); err != nil || st != eventstore.TimerScheduled {
		t.Fatalf("other run's timer: %v %v", st, err)
	}
	if _, err := s.GetSummary(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	// Nothing new after the last record is no error.
	last, _ := s.LastSeq(ctx, "other")
	if msgs, err := s.ReadLive(ctx, "other", last); err != nil || len(msgs) != 0 {
		t.Fatalf("ReadLive at the end: %d records, %v", len(msgs), err)
	}
}

// TestDeletionComesDue delivers a scheduled deletion when it is due,
// once, the latest schedule replacing the one before.
func TestDeletionComesDue(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	first := time.Now().Add(time.Hour)
	if err := s.ScheduleDeletion(ctx, "wf", first); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Second)
	if err := s.ScheduleDeletion(ctx, "wf", due); err != nil {
		t.Fatal(err)
	}
	f, err := s.Feed(ctx, eventstore.SourceRetention, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	d, err := f.Next()
	if err != nil {
		t.Fatal(err)
	}
	if d.Source != eventstore.SourceRetention || d.WorkflowID != "wf" || d.Deletion == nil || !d.Deletion.Due.Equal(due.UTC()) {
		t.Fatalf("delivery: %+v", d)
	}
	if time.Now().Before(due) {
		t.Fatalf("delivered at %s, before %s", time.Now(), due)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
}

// TestOldHistoryStreamDeniesPurge opens a store over a history stream
// made, as earlier versions did, with DenyPurge: Open keeps it (JetStream
// cannot lift it) and DeleteRun says it cannot delete.
func TestOldHistoryStreamDeniesPurge(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: eventstore.HistoryStream, Subjects: []string{"weft.h.>"},
		DenyDelete: true, DenyPurge: true, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatalf("Open over an old history stream: %v", err)
	}
	if _, err := s.Append(ctx, "wf", 0, started("wf")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRun(ctx, "wf", 0); !errors.Is(err, eventstore.ErrPurgeDenied) {
		t.Fatalf("DeleteRun: %v, want ErrPurgeDenied", err)
	}
	if _, err := s.LastSeq(ctx, "wf"); err != nil {
		t.Fatal(err)
	}
}

// DeleteEntryOfGone deletes the entry of a run with no history (what a
// deletion of an earlier version, history first, left when cut short), and
// leaves the entry of a run that has one.
func TestDeleteEntryOfGone(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	seq, err := s.Append(ctx, "here", 0, started("here"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range []eventstore.Summary{
		{ID: "gone", Definition: "d", Revision: 1, Status: "completed", Seq: 7},
		{ID: "here", Definition: "d", Revision: 1, Status: "running", Seq: seq},
	} {
		if errs := s.PutSummaries(ctx, []eventstore.Summary{sum}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	for _, wf := range []string{"gone", "here", "never"} {
		if err := s.DeleteEntryOfGone(ctx, wf); err != nil {
			t.Fatalf("%s: %v", wf, err)
		}
	}
	if _, err := s.GetSummary(ctx, "gone"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Errorf("the entry of a run with no history: %v", err)
	}
	if _, err := s.GetSummary(ctx, "here"); err != nil {
		t.Errorf("the entry of a run with a history: %v", err)
	}
}

// A deletion of a run that reads its history up to a sequence deletes
// nothing when the history holds more: a record appended since (a late
// result) or, after another deletion of the same run finished, a new run
// started under the id. The new run keeps its history.
func TestADeletionOfARunReadBeforeItsIdWasTakenAgainLeavesTheNewRun(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const wf = "again"
	first, err := s.Append(ctx, wf, 0, started(wf))
	if err != nil {
		t.Fatal(err)
	}
	read, err := s.Append(ctx, wf, first, completed("done"))
	if err != nil {
		t.Fatal(err)
	}
	// Two deletions read the run up to its close; one finishes.
	if err := s.DeleteRun(ctx, wf, read); err != nil {
		t.Fatal(err)
	}
	// A run is started under the id again.
	var zero uint64
	if _, err := s.AppendExternal(ctx, wf, &zero, "start/again/2", started(wf)); err != nil {
		t.Fatal(err)
	}
	// The other deletion goes on from its read.
	if err := s.DeleteRun(ctx, wf, read); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("a deletion of a run read before its id was taken again: %v, want a conflict", err)
	}
	if msgs, err := s.ReadLive(ctx, wf, 0); err != nil || len(msgs) != 1 {
		t.Fatalf("the new run under the id: %d records, %v; want its start", len(msgs), err)
	}
}
