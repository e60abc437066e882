package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// purgeHook is a stream that calls before ahead of its first Purge.
type purgeHook struct {
	jetstream.Stream
	before func()
}

func (p *purgeHook) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	if f := p.before; f != nil {
		p.before = nil
		f()
	}
	return p.Stream.Purge(ctx, opts...)
}

// Two deliveries of one run's deletion run at once (the retention
// consumer hands a deletion that outlives its ack wait to another
// orchestrator, as nothing marks it in progress; or a late input to the
// run being deleted scheduled its deletion again, and a second
// orchestrator takes that). The first finishes; a run B is started under
// the id at once; the second, past its check of the history, then purges
// the snapshot, the timers, the waiting results and the listing entry of
// the id by subject, with no bound: B's. B's sleep never fires, its task's
// result is never recorded (its executor acked the command), and it is not
// listed while it runs.
func TestASecondDeletionOfARunLeavesARunStartedAgainUnderItsId(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	const wf = "wf"
	upTo, err := s.Append(ctx, wf, 0, startOf(wf), completed)
	if err != nil {
		t.Fatal(err)
	}
	// The old run's own timer, which both deletions purge.
	if err := s.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "old", Path: "old", Due: time.Now().Add(time.Hour), After: upTo}); err != nil {
		t.Fatal(err)
	}
	timers := s.timers
	var newSeq uint64
	// The second deletion has checked the history (at upTo); before its
	// first purge, the first deletion finishes and B starts.
	s.timers = &purgeHook{Stream: timers, before: func() {
		if err := s.DeleteRun(ctx, wf, upTo); err != nil { // the first deletion, whole
			t.Errorf("the first deletion: %v", err)
			return
		}
		var zero uint64
		b := startOf(wf)
		b.Time = time.Unix(300, 0).UTC()
		if newSeq, err = s.AppendExternal(ctx, wf, &zero, "start/wf/B", b); err != nil {
			t.Errorf("B's start: %v", err)
			return
		}
		// What B's first decision and its executor leave: a sleep's timer,
		// a task's result waiting for an orchestrator, its listing entry.
		if err := s.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "nap", Path: "nap", Due: time.Now().Add(time.Hour), After: newSeq}); err != nil {
			t.Errorf("B's timer: %v", err)
		}
		if err := s.PublishResult(ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: newSeq,
			Outcome: events.OutcomeCompleted, Output: "B's", Time: time.Now().UTC()}); err != nil {
			t.Errorf("B's result: %v", err)
		}
		sum := Summary{ID: wf, Definition: "d", Revision: 1, Status: "RUNNING", Created: b.Time, Seq: newSeq}
		if errs := s.PutSummaries(ctx, []Summary{sum}); errs[0] != nil {
			t.Errorf("B's entry: %v", errs[0])
		}
	}}
	// The second deletion, of the run it read up to upTo.
	err = s.DeleteRun(ctx, wf, upTo)
	s.timers = timers
	if err != nil && !errors.Is(err, ErrConflict) {
		t.Fatal(err)
	}
	if newSeq == 0 {
		t.Fatal("this test no longer makes the interleaving")
	}
	if last, err := s.LastSeq(ctx, wf); err != nil || last != newSeq {
		t.Fatalf("B's history: last %d, %v; want %d", last, err, newSeq)
	}
	var lost []string
	if st, _, err := s.Timer(ctx, wf, "nap"); err != nil || st == TimerMissing {
		lost = append(lost, "its sleep's timer")
	}
	if ok, err := s.ResultWaiting(ctx, wf); err != nil || !ok {
		lost = append(lost, "its task's result")
	}
	if _, err := s.GetSummary(ctx, wf); err != nil {
		lost = append(lost, "its listing entry")
	}
	if st, _, err := s.Timer(ctx, wf, "old"); err != nil || st != TimerMissing {
		t.Errorf("the old run's timer after both deletions: %v, %v", st, err)
	}
	if len(lost) > 0 {
		t.Fatalf("a second deletion of the old run purged %v of run B, started under the id after the first deletion (B's history stays: it waits for ever)", lost)
	}
}

// A run whose listing entry is not there when its deletion begins (its
// close's entry still on its way) gets a marker all the same: the late
// write is refused, not left listing a run with no history. Where a
// marker is there already, it stays.
func TestADeletionMarksAnEntryNotYetWritten(t *testing.T) {
	ctx := context.Background()
	s := deleting(t)
	const wf = "unlisted"
	upTo, err := s.Append(ctx, wf, 0, startOf(wf), completed)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRun(ctx, wf, upTo); err != nil {
		t.Fatal(err)
	}
	late := Summary{ID: wf, Definition: "d", Revision: 1, Status: "COMPLETED", Seq: upTo}
	if errs := s.PutSummaries(ctx, []Summary{late}); !errors.Is(errs[0], ErrSuperseded) {
		t.Fatalf("a late write of the deleted run's entry: %v; want it refused", errs[0])
	}
	if _, err := s.GetSummary(ctx, wf); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted run is listed: %v", err)
	}
}
