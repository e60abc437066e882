package api

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/logbuf"
	"github.com/weftworks/weft/internal/natstest"
)

// A start readied for but refused (or a duplicate) leaves no empty entry
// behind to push cached states out; one whose state was read meanwhile
// stays.
func TestUnexpectDropsAnEmptyEntry(t *testing.T) {
	c := newStates(4)
	if !c.expect("refused", 1) {
		t.Fatal("expect on an uncached run readied nothing")
	}
	c.unexpect("refused")
	if _, ok := c.peek("refused"); ok {
		t.Fatal("the refused start's empty entry is still cached")
	}

	if !c.expect("read", 1) {
		t.Fatal("expect on an uncached run readied nothing")
	}
	e, _ := c.peek("read")
	e.view = &stateView{}
	c.unexpect("read")
	if got, ok := c.peek("read"); !ok || got != e || e.expect.Load() != 0 {
		t.Fatalf("an entry holding a state: cached %v, expect %d", ok, e.expect.Load())
	}
}

// A read that found a run cached, and whose entry was pushed out of the
// cache while it waited for the barrier and the follower, does not answer
// from that entry: the record the follower passed on meanwhile went to no
// entry. It reads the run instead, record included.
func TestAnEntryPushedOutIsNotServedAsCurrent(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const wf = "pushed-out"
	var zero uint64
	first, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{store: store, states: newStates(2)}
	s.interest = newInterest(nil, s.states.offer, time.Minute, slog.New(slog.DiscardHandler))
	s.interest.running.Store(1)
	s.interest.pos.Store(first)
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { return nil }); err != nil {
		t.Fatal(err)
	}
	var second uint64
	s.barrier = &barrier{fetch: func(ctx context.Context) (uint64, error) {
		// Meanwhile reads of other runs push the entry out, and a signal
		// is stored, then passed on by the follower.
		s.states.entry("a")
		s.states.entry("b")
		second, err = store.AppendExternal(ctx, wf, &first, "signal/"+wf, events.Event{Type: events.TypeSignalReceived, Time: time.Unix(101, 0).UTC(),
			SignalReceived: &events.SignalReceived{Name: "go"}})
		if err != nil {
			return 0, err
		}
		s.interest.record(eventstore.Followed{Workflow: wf, Seq: second, Prev: first, HasPrev: true})
		return second, nil
	}}
	var got uint64
	if err := s.withCurrentState(ctx, wf, func(v *stateView) error { got = v.st.LastSeq; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != second {
		t.Fatalf("answered the state up to %d; the signal at %d was stored before the read", got, second)
	}
}

// A record the follower passed on without the cached state seeing it
// (whatever the cause) leaves the state behind for at most checkAfter:
// the next read after it checks the stream, answers the record and says
// in the log that the state was behind.
func TestAMissedRecordIsReadWithinCheckAfter(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const wf = "missed"
	var zero uint64
	first, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var logs logbuf.Buffer
	s := &Server{store: store, states: newStates(4), log: slog.New(slog.NewTextHandler(&logs, nil))}
	s.interest = newInterest(nil, s.states.offer, time.Minute, slog.New(slog.DiscardHandler))
	s.interest.running.Store(1)
	s.interest.pos.Store(first)
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { return nil }); err != nil {
		t.Fatal(err)
	}
	second, err := store.AppendExternal(ctx, wf, &first, "signal/"+wf, events.Event{Type: events.TypeSignalReceived, Time: time.Unix(101, 0).UTC(),
		SignalReceived: &events.SignalReceived{Name: "go"}})
	if err != nil {
		t.Fatal(err)
	}
	// The follower moves past the record without offering it.
	s.interest.passed(second)
	s.barrier = &barrier{fetch: func(context.Context) (uint64, error) { return second, nil }}
	deadline := time.Now().Add(checkAfter + 5*time.Second)
	for {
		var got uint64
		if err := s.withCurrentState(ctx, wf, func(v *stateView) error { got = v.st.LastSeq; return nil }); err != nil {
			t.Fatal(err)
		}
		if got == second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still answered the state up to %d, %s after the record at %d was stored", got, checkAfter+5*time.Second, second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "behind its history") {
		t.Fatalf("no warning of the state behind its history in the log:\n%s", logs.String())
	}
}
