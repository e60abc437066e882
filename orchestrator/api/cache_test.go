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
	c := newStates(4, 1<<30)
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
	ctx := context.Background()
	const wf = "pushed-out"
	s, first := readRun(t, wf, 2, slog.New(slog.DiscardHandler))
	var second uint64
	s.barrier = newBarrier(func(ctx context.Context) (uint64, error) {
		// Meanwhile reads of other runs push the entry out, and a signal
		// is stored, then passed on by the follower.
		s.states.entry("a")
		s.states.entry("b")
		var err error
		if second, err = appendSignal(ctx, s.store, wf, first); err != nil {
			return 0, err
		}
		s.interest.record(eventstore.Followed{Workflow: wf, Seq: second, Prev: first, HasPrev: true})
		return second, nil
	})
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
	ctx := context.Background()
	const wf = "missed"
	var logs logbuf.Buffer
	s, first := readRun(t, wf, 4, slog.New(slog.NewTextHandler(&logs, nil)))
	second, err := appendSignal(ctx, s.store, wf, first)
	if err != nil {
		t.Fatal(err)
	}
	// The follower moves past the record without offering it.
	s.interest.passed(second)
	s.barrier = newBarrier(func(context.Context) (uint64, error) { return second, nil })
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

// readRun starts run wf in a store of its own and returns an API server
// (a cache of size states, logging to log) whose follower of epoch 1 is
// past the start, with the run read into its cache; and the start's
// sequence.
func readRun(t *testing.T, wf string, size int, log *slog.Logger) (*Server, uint64) {
	t.Helper()
	ctx := context.Background()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	first, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{store: store, states: newStates(size, 1<<30), log: log}
	s.interest = newInterest(nil, s.states.offer, s.states.clear, time.Minute, time.Time{}, slog.New(slog.DiscardHandler))
	s.interest.running.Store(1)
	s.interest.pos.Store(first)
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return s, first
}

// appendSignal stores a signal "go" to wf after its record at sequence
// after, and returns the signal's sequence.
func appendSignal(ctx context.Context, store *eventstore.Store, wf string, after uint64) (uint64, error) {
	return store.AppendExternal(ctx, wf, &after, "signal/"+wf, events.Event{Type: events.TypeSignalReceived, Time: time.Unix(101, 0).UTC(),
		SignalReceived: &events.SignalReceived{Name: "go"}})
}

// A read of a run that returns less than the follower has already passed
// on of it (a stream leader still applying what it delivered) is read
// again until it reaches that record: a run the follower saw move on is
// never answered from before.
func TestAReadBehindTheFollowerIsReadAgain(t *testing.T) {
	ctx := context.Background()
	const wf = "behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	// The follower passed on the next record before the stream answers
	// it to reads: it is stored 100ms into the read.
	s.interest.record(eventstore.Followed{Workflow: wf, Seq: first + 1, Prev: first, HasPrev: true})
	stored := make(chan uint64, 1)
	time.AfterFunc(100*time.Millisecond, func() {
		seq, err := appendSignal(ctx, s.store, wf, first)
		if err != nil {
			t.Error(err)
		}
		stored <- seq
	})
	var got uint64
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { got = v.st.LastSeq; return nil }); err != nil {
		t.Fatal(err)
	}
	if seq := <-stored; seq != first+1 {
		t.Fatalf("the signal was stored at %d; the test expected %d", seq, first+1)
	}
	if got != first+1 {
		t.Fatalf("answered the state up to %d; the follower had passed on the record at %d", got, first+1)
	}
}

// A read that stays behind the follower past maxBehindWait answers what
// it has, says so in the log, and leaves the state not current, so the
// next read asks the stream again rather than answer from the cache.
func TestAReadThatStaysBehindIsNeverCurrent(t *testing.T) {
	ctx := context.Background()
	const wf = "stays-behind"
	var logs logbuf.Buffer
	s, first := readRun(t, wf, 4, slog.New(slog.NewTextHandler(&logs, nil)))
	s.interest.followed.note(wf, first+10) // never stored
	var got uint64
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { got = v.st.LastSeq; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != first {
		t.Fatalf("answered the state up to %d; the run has records up to %d", got, first)
	}
	if !strings.Contains(logs.String(), "stayed behind") {
		t.Fatalf("no warning of the read behind the follower in the log:\n%s", logs.String())
	}
	e, _ := s.states.peek(wf)
	if err := e.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	current := e.current(s.interest.running.Load())
	e.release()
	if current {
		t.Fatal("a state read behind the follower counts as current")
	}
}

// A read found behind the follower leaves the state not current however
// the call ends: here its context ends while it waits to read again.
func TestAReadBehindLeftEarlyIsNotCurrent(t *testing.T) {
	const wf = "left-early"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.interest.followed.note(wf, first+10) // never stored
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.withState(ctx, wf, 0, func(v *stateView) error { return nil }); err == nil {
		t.Fatal("a read behind the follower answered before its context ended")
	}
	e, _ := s.states.peek(wf)
	if err := e.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	current := e.current(s.interest.running.Load())
	e.release()
	if current {
		t.Fatal("a state read behind the follower counts as current after its read was cut short")
	}
}
