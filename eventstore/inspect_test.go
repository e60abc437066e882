package eventstore_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// poll calls cond until it holds or the deadline passes.
func poll(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenExisting(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	if _, err := eventstore.OpenExisting(ctx, ns.Connect(t), eventstore.Config{}); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("OpenExisting on a NATS without Weft: %v", err)
	}
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	if _, err := s.AppendExternal(ctx, "wf", &zero, "start/wf", started("wf")); err != nil {
		t.Fatal(err)
	}
	if errs := s.PutSummaries(ctx, []eventstore.Summary{{ID: "wf", Status: "RUNNING", Created: time.Now(), Seq: 1}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	r, err := eventstore.OpenExisting(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err := r.Read(ctx, "wf", 0); err != nil || len(msgs) != 1 {
		t.Fatalf("Read through an attached store: %v, %v", msgs, err)
	}
	sums, err := r.Summaries(ctx)
	if err != nil || len(sums) != 1 || sums[0].ID != "wf" || sums[0].Status != "RUNNING" {
		t.Fatalf("Summaries = %+v, %v", sums, err)
	}
}

func TestTimerStates(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	state := func(id string) eventstore.TimerState {
		t.Helper()
		st, _, err := s.Timer(ctx, "wf", id)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := state("t1"); st != eventstore.TimerMissing {
		t.Fatalf("a timer never scheduled: %v", st)
	}
	later := time.Now().Add(time.Hour)
	for _, td := range []events.TimerDue{
		{WorkflowID: "wf", TimerID: "soon", Path: "p", Due: time.Now().Add(time.Second)},
		{WorkflowID: "wf", TimerID: "later", Path: "q", Due: later},
		{WorkflowID: "wf", TimerID: "dropped", Path: "r", Due: time.Now().Add(time.Hour)},
	} {
		if err := s.ScheduleTimer(ctx, td); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CancelTimer(ctx, "wf", "dropped"); err != nil {
		t.Fatal(err)
	}
	if st := state("later"); st != eventstore.TimerScheduled {
		t.Fatalf("a scheduled timer: %v", st)
	}
	// A schedule fires on the second at or after its due time.
	if _, at, err := s.Timer(ctx, "wf", "later"); err != nil || at.Before(later) || at.Sub(later) >= time.Second {
		t.Fatalf("the timer due at %s is scheduled for %s (%v)", later, at, err)
	}
	if st := state("dropped"); st != eventstore.TimerMissing {
		t.Fatalf("a canceled timer: %v", st)
	}
	// Once due it waits, fired, for an orchestrator; once taken it is gone.
	poll(t, 10*time.Second, "the timer to fire", func() bool { return state("soon") == eventstore.TimerFired })
	feed, err := s.Feed(ctx, eventstore.SourceTimers, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Stop()
	d, err := feed.Next()
	if err != nil || d.Timer == nil || d.Timer.TimerID != "soon" {
		t.Fatalf("delivery %+v, %v", d, err)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the fired timer to go", func() bool { return state("soon") == eventstore.TimerMissing })
	if st := state("later"); st != eventstore.TimerScheduled {
		t.Fatalf("the other timer: %v", st)
	}
}

func TestCommandAndInputQueues(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	startSeq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf", started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := s.LastExternal(ctx, "wf"); err != nil || seq != startSeq {
		t.Fatalf("LastExternal = %d, %v; want %d", seq, err, startSeq)
	}
	if in, err := s.ExternalInputsOf(ctx); err != nil || in.AckFloor >= startSeq || in.Delivered >= startSeq {
		t.Fatalf("ExternalInputsOf with no orchestrator = %+v, %v", in, err)
	}
	if _, err := s.LastTaskCommand(ctx, "wf", "echo"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("LastTaskCommand before any: %v", err)
	}
	if _, err := s.TaskQueueOf(ctx, "echo"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("TaskQueueOf without a consumer: %v", err)
	}
	if b, err := s.TaskBacklogs(ctx); err != nil || len(b) != 0 {
		t.Fatalf("TaskBacklogs without a task consumer = %v, %v", b, err)
	}
	if err := s.EnsureTaskConsumer(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	cmdSeq, err := s.Append(ctx, "wf", startSeq, events.Event{Type: events.TypeStepScheduled,
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "echo", FirstAttempt: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if seq, err := s.LastTaskCommand(ctx, "wf", "echo"); err != nil || seq != cmdSeq {
		t.Fatalf("LastTaskCommand = %d, %v; want %d", seq, err, cmdSeq)
	}
	if q, err := s.TaskQueueOf(ctx, "echo"); err != nil || q.AckFloor >= cmdSeq || q.Delivered >= cmdSeq || !q.LastDelivery.IsZero() || q.Pulls != 0 {
		t.Fatalf("TaskQueueOf before an executor took the command = %+v, %v", q, err)
	}
	// The consumer counts what is pending on its own after the append:
	// the count reaches 1 a moment later.
	poll(t, 10*time.Second, "TaskBacklogs to count the command (echo: 1)", func() bool {
		b, err := s.TaskBacklogs(ctx)
		return err == nil && len(b) == 1 && b["echo"] == 1
	})
	p, err := s.TaskPuller(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Fetch(ctx, 1, 5*time.Second, func(d *eventstore.Delivery) { _ = d.Ack() }); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the ack floor to pass the command", func() bool {
		q, err := s.TaskQueueOf(ctx, "echo")
		return err == nil && q.AckFloor >= cmdSeq && q.Delivered >= cmdSeq && !q.LastDelivery.IsZero()
	})
	if b, err := s.TaskBacklogs(ctx); err != nil || len(b) != 1 || b["echo"] != 0 {
		t.Fatalf("TaskBacklogs once the command was taken = %v, %v; want echo: 0", b, err)
	}
	if ok, err := s.ResultWaiting(ctx, "wf"); err != nil || ok {
		t.Fatalf("ResultWaiting before a result: %v, %v", ok, err)
	}
	if err := s.PublishResult(ctx, events.Result{WorkflowID: "wf", Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Time: time.Now(), Cmd: cmdSeq}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.ResultWaiting(ctx, "wf"); err != nil || !ok {
		t.Fatalf("ResultWaiting after a result: %v, %v", ok, err)
	}
}

// A history record is gone only when the stream reached it and holds no
// record of the run there: one still there, or past the stream's end,
// was missed by a read behind, not deleted.
func TestHistoryRecordGone(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf", started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	gone := func(wf string, seq uint64) bool {
		t.Helper()
		g, err := s.HistoryRecordGone(ctx, wf, seq)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if gone("wf", seq) {
		t.Fatal("a record still stored reads as gone")
	}
	if gone("wf", seq+10) {
		t.Fatal("a record past the stream's end reads as gone")
	}
	if !gone("other", seq) {
		t.Fatal("another run's record reads as this run's")
	}
	if err := s.DeleteRun(ctx, "wf", 0); err != nil {
		t.Fatal(err)
	}
	if !gone("wf", seq) {
		t.Fatal("a deleted run's record reads as still there")
	}
}

// ReadLiveWithin holds no more than it is given: a history longer gives
// ErrTooLong (to be read a part at a time), a shorter one reads whole.
func TestReadLiveWithinGivesUpPastItsBound(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var last uint64
	var err error
	if last, err = s.AppendExternal(ctx, "wf", &last, "start/wf", started("wf")); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	for i := range 4 {
		if last, err = s.AppendExternal(ctx, "wf", &last, "sig/"+strconv.Itoa(i), events.Event{Type: events.TypeSignalReceived,
			Time: time.Unix(101, 0).UTC(), SignalReceived: &events.SignalReceived{Name: "go", Payload: big}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ReadLiveWithin(ctx, "wf", 0, 128<<10); !errors.Is(err, eventstore.ErrTooLong) {
		t.Fatalf("a read of 256 KiB within 128 KiB: %v, want ErrTooLong", err)
	}
	msgs, err := s.ReadLiveWithin(ctx, "wf", 0, 1<<20)
	if err != nil || len(msgs) != 5 {
		t.Fatalf("a read of 256 KiB within 1 MiB: %d records, %v; want all 5", len(msgs), err)
	}
}
