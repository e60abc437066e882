package eventstore_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// storedResults counts results waiting in the results stream.
func storedResults(t *testing.T, s *eventstore.Store) uint64 {
	t.Helper()
	st, err := s.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.StreamInfo(eventstore.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestReportResultDirectOrStream checks both ways a result reaches an
// orchestrator: an orchestrator that records it answers and nothing is
// stored; one that declines, none at all, or one that never answers make
// the result go to the results stream.
func TestReportResultDirectOrStream(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	res := func(wf string) events.Result {
		return events.Result{WorkflowID: wf, Path: "one", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted,
			Time: time.Unix(100, 0).UTC(), Output: "out"}
	}
	// No orchestrator: stored at once.
	t0 := time.Now()
	if err := s.ReportResult(ctx, res("none"), ""); err != nil {
		t.Fatal(err)
	}
	if n := storedResults(t, s); n != 1 {
		t.Fatalf("with no orchestrator, %d results stored, want 1", n)
	}
	if d := time.Since(t0); d > 250*time.Millisecond {
		t.Fatalf("with no orchestrator the fallback took %s; it should not wait", d)
	}

	got := make(chan *eventstore.Delivery, 10)
	var mode atomic.Value
	o, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := o.DirectResults(func(d *eventstore.Delivery) {
		got <- d
		switch mode.Load() {
		case "ack":
			_ = d.Ack()
		case "nak":
			_ = d.Nak(0)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	for _, c := range []struct {
		mode   string
		stored uint64
	}{{"ack", 1}, {"nak", 2}, {"silent", 3}} {
		mode.Store(c.mode)
		if err := s.ReportResult(ctx, res("wf-"+c.mode), ""); err != nil {
			t.Fatalf("%s: %v", c.mode, err)
		}
		select {
		case d := <-got:
			if d.Err != nil || d.Result == nil || d.WorkflowID != "wf-"+c.mode || d.Result.Output != "out" {
				t.Fatalf("%s: delivery %+v", c.mode, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the orchestrator got nothing", c.mode)
		}
		if n := storedResults(t, s); n != c.stored {
			t.Fatalf("%s: %d results stored, want %d", c.mode, n, c.stored)
		}
	}

	// A direct result that does not decode is refused to its sender without
	// reaching anything else.
	if err := s.Conn().Publish("weft.rd.bad", []byte{0xc1}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-got:
		if d.Err == nil {
			t.Fatalf("corrupt direct result decoded: %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("corrupt direct result not delivered")
	}
}

// A start sent directly reaches the orchestrators' callback decoded; one
// they cannot read is declined, never confirmed, so its sender appends it.
func TestDirectStartsDeclineWhatTheyCannotRead(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.StartDirect(ctx, "nobody", "start/nobody/r", started("nobody")) {
		t.Fatal("a direct start with no orchestrator was confirmed")
	}
	o, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *eventstore.Delivery, 10)
	sub, err := o.DirectStarts(func(d *eventstore.Delivery) {
		got <- d
		if d.Err != nil {
			_ = d.Term(d.Err.Error())
			return
		}
		_ = d.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	if !s.StartDirect(ctx, "wf", "start/wf/r", started("wf")) {
		t.Fatal("a direct start the orchestrator acked was not confirmed")
	}
	d := <-got
	if d.Source != eventstore.SourceStart || d.Start == nil || d.Start.MsgID != "start/wf/r" || d.Start.Event.WorkflowStarted.WorkflowID != "wf" {
		t.Fatalf("delivery %+v", d)
	}
	reply, err := s.Conn().Request("weft.ds.bad", []byte{0xc1}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := <-got; d.Err == nil {
		t.Fatalf("an unreadable start decoded: %+v", d)
	}
	if string(reply.Data) == "+OK" {
		t.Fatal("an unreadable direct start was confirmed")
	}
}

// A result goes first to the orchestrator that appended its command (the
// owner), then, when that one is gone or declines, to any orchestrator.
func TestReportResultToOwner(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	o, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	var ownerNaks atomic.Bool
	own, err := o.OwnResults("orch-a", func(d *eventstore.Delivery) {
		got <- "own " + d.WorkflowID
		if ownerNaks.Load() {
			_ = d.Nak(0)
			return
		}
		_ = d.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer own.Stop()
	group, err := o.DirectResults(func(d *eventstore.Delivery) {
		got <- "any " + d.WorkflowID
		_ = d.Ack()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer group.Stop()
	if _, err := o.OwnResults("not a name", func(*eventstore.Delivery) {}); err == nil {
		t.Fatal("OwnResults with an invalid name: no error")
	}
	report := func(wf, owner string) string {
		t.Helper()
		r := events.Result{WorkflowID: wf, Path: "one", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted, Time: time.Unix(100, 0).UTC()}
		if err := s.ReportResult(ctx, r, owner); err != nil {
			t.Fatal(err)
		}
		var seen []string
		for {
			select {
			case g := <-got:
				seen = append(seen, g)
			default:
				return strings.Join(seen, ",")
			}
		}
	}
	if g := report("wf1", "orch-a"); g != "own wf1" {
		t.Errorf("to a running owner: %s", g)
	}
	if g := report("wf2", "orch-gone"); g != "any wf2" {
		t.Errorf("to an owner that is gone: %s", g)
	}
	if g := report("wf3", ""); g != "any wf3" {
		t.Errorf("without an owner: %s", g)
	}
	ownerNaks.Store(true)
	if g := report("wf4", "orch-a"); g != "own wf4,any wf4" {
		t.Errorf("to an owner that declines: %s", g)
	}
	if n := storedResults(t, s); n != 0 {
		t.Errorf("%d results stored; every one was taken directly", n)
	}
	// An owner that does not answer in time may still be working on the
	// result: it goes to the results stream, not to another orchestrator.
	silent, err := o.OwnResults("orch-silent", func(d *eventstore.Delivery) { got <- "silent " + d.WorkflowID })
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Stop()
	quick, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{ResultReplyWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := events.Result{WorkflowID: "wf5", Path: "one", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted, Time: time.Unix(100, 0).UTC()}
	if err := quick.ReportResult(ctx, r, "orch-silent"); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "silent wf5" || len(got) != 0 {
		t.Errorf("to an owner that does not answer: %s (and %d more)", g, len(got))
	}
	if n := storedResults(t, s); n != 1 {
		t.Errorf("%d results stored after an owner did not answer; want 1", n)
	}
}
