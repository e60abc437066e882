package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// An outside event appended at the end (a parent's cancel of its child)
// lands after whatever the history holds, though the caller's last read
// is behind it: the conflict is read past, not handed back. Handed back,
// the caller decides its whole input again, and a busy history could
// refuse it every time.
func TestAppendExternalAtEndPassesAStaleRead(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const wf = "busy"
	var zero uint64
	first, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf))
	if err != nil {
		t.Fatal(err)
	}
	moved, err := s.Append(ctx, wf, first, events.Event{Type: events.TypeSignalReceived, Time: time.Unix(100, 0).UTC(),
		SignalReceived: &events.SignalReceived{Name: "poke"}})
	if err != nil {
		t.Fatal(err)
	}
	cancel := events.Event{Type: events.TypeCancelRequested, Time: time.Unix(101, 0).UTC(), CancelRequested: &events.CancelRequested{Reason: "r"}}
	seq, err := s.AppendExternalAtEnd(ctx, wf, first, "cancel/"+wf, cancel) // read before the signal
	if err != nil || seq <= moved {
		t.Fatalf("appended at %d (%v); want after %d", seq, err, moved)
	}
	msgs, err := s.Read(ctx, wf, 0)
	if err != nil || len(msgs) != 3 || msgs[2].Record.Events[0].Type != events.TypeCancelRequested {
		t.Fatalf("history %v (%v); want the start, the signal and the cancel", msgs, err)
	}
}
