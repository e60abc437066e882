package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// deleting opens a store whose deletions leave markers for an hour.
func deleting(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), natstest.Start(t).Connect(t), Config{MarkerTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startOf is run wf's start, and completed a run's completion, as
// recorded.
func startOf(wf string) events.Event {
	return events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}}
}

var completed = events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(101, 0).UTC(), WorkflowCompleted: &events.WorkflowCompleted{}}

// A late write of a run's own entry that lands between DeleteRun's purge
// of the entry and its purge of the history finds the history still there
// and writes over the marker: DeleteRun takes it back once the history is
// gone. (The listing once kept the deleted run for good.)
func TestALateWriteInsideADeletionGoes(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	seq, err := s.Append(ctx, "wf", 0, startOf("wf"), completed)
	if err != nil {
		t.Fatal(err)
	}
	sum := Summary{ID: "wf", Definition: "d", Revision: 1, Status: "COMPLETED", Created: time.Unix(100, 0).UTC(), Seq: seq}
	if errs := s.PutSummaries(ctx, []Summary{sum}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	var late error
	s.betweenPurges = func() { late = s.PutSummaries(ctx, []Summary{sum})[0] }
	if err := s.DeleteRun(ctx, "wf", 0); err != nil {
		t.Fatal(err)
	}
	if late != nil {
		t.Fatalf("the late write was refused (%v): this test no longer makes the interleaving", late)
	}
	if got, err := s.GetSummary(ctx, "wf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted run is listed again: %+v, %v", got, err)
	}
}

// A record of the run appended after DeleteRun read the history's last
// sequence, and before its purge of the history, goes with the run: a
// late result of a failed run (recorded on top of its WorkflowExpired, as
// a failed run records its running steps' results) is not left behind as
// a history with no start, which no read folds, no deletion is scheduled
// for, and which keeps any run from being started under the id again.
func TestARecordAppendedDuringADeletionGoesWithTheRun(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	const wf = "wf"
	start := startOf(wf)
	failed := events.Event{Type: events.TypeWorkflowFailed, Time: time.Unix(101, 0).UTC(),
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "boom"}}}
	expired := events.Event{Type: events.TypeWorkflowExpired, Time: time.Unix(200, 0).UTC(),
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Minute}}
	late := events.Event{Type: events.TypeStepCompleted, Time: time.Unix(201, 0).UTC(),
		StepCompleted: &events.StepCompleted{Path: "slow", Gen: 1, Attempt: 1, Output: "late"}}
	seq, err := s.Append(ctx, wf, 0, start, failed)
	if err != nil {
		t.Fatal(err)
	}
	upTo, err := s.Append(ctx, wf, seq, expired)
	if err != nil {
		t.Fatal(err)
	}
	var lateErr error
	s.betweenPurges = func() { _, lateErr = s.Append(ctx, wf, upTo, late) }
	if err := s.DeleteRun(ctx, wf, upTo); err != nil {
		t.Fatal(err)
	}
	if lateErr != nil {
		t.Fatalf("the late record was refused (%v): this test no longer makes the interleaving", lateErr)
	}
	if last, err := s.LastSeq(ctx, wf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the deletion the history still holds seq %d (%v): a record of the deleted run with no start", last, err)
	}
	var zero uint64
	if _, err := s.AppendExternal(ctx, wf, &zero, "start/wf/2", start); err != nil {
		t.Fatalf("a new run under the id of the deleted run: %v", err)
	}
}

// A run started under wf once DeleteRun has purged the old run's history,
// by a newer version whose start record this build cannot decode, is not
// the deleted run's leftover: DeleteRun must not purge it.
func TestDeleteRunKeepsANewRunItCannotRead(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	const wf = "wf"
	start := startOf(wf)
	upTo, err := s.Append(ctx, wf, 0, start, completed)
	if err != nil {
		t.Fatal(err)
	}
	// The new run's start, as a newer version writes it (a record version
	// this build does not read), appended as AppendExternal does: only on
	// an empty history.
	newer, err := msgpack.Marshal(events.Record{V: events.RecordVersion + 1, Events: []events.Event{start}})
	if err != nil {
		t.Fatal(err)
	}
	var newSeq uint64
	s.afterHistoryPurge = func() {
		msg := nats.NewMsg(historyPrefix + wf + externalSuffix)
		msg.Data = newer
		msg.Header.Set(prevHeader, "0")
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID("start/"+wf+"/new"),
			jetstream.WithExpectLastSequenceForSubject(0, historySubject(wf)))
		if err != nil {
			t.Errorf("the new run's start: %v", err)
			return
		}
		newSeq = ack.Sequence
	}
	if err := s.DeleteRun(ctx, wf, upTo); err != nil {
		t.Fatal(err)
	}
	if newSeq == 0 {
		t.Fatal("this test no longer makes the interleaving")
	}
	if last, err := s.LastSeq(ctx, wf); err != nil || last != newSeq {
		t.Fatalf("the new run's start (seq %d) was purged with the deleted run: last = %d, %v", newSeq, last, err)
	}
}
