package eventstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

func stepCompleted(i int) events.Event {
	return events.Event{Type: events.TypeStepCompleted, Time: time.Unix(int64(i), 0).UTC(),
		StepCompleted: &events.StepCompleted{Path: fmt.Sprintf("s%d", i), Gen: 1, Attempt: 1, Output: map[string]any{"n": int64(i)}}}
}

// BenchmarkAppend measures one conditional append (the orchestrator's
// write per decision) against an embedded server.
func BenchmarkAppend(b *testing.B) {
	ns := natstest.Start(b)
	s, err := eventstore.Open(context.Background(), ns.Connect(b), eventstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "bench", &zero, "start/bench", started("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if seq, err = s.Append(ctx, "bench", seq, stepCompleted(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead measures reading a 20-record history (a cold load).
func BenchmarkRead(b *testing.B) {
	ns := natstest.Start(b)
	s, err := eventstore.Open(context.Background(), ns.Connect(b), eventstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "bench", &zero, "start/bench", started("bench"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 19 {
		if seq, err = s.Append(ctx, "bench", seq, stepCompleted(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		msgs, err := s.Read(ctx, "bench", 0)
		if err != nil || len(msgs) != 20 {
			b.Fatalf("read %d records: %v", len(msgs), err)
		}
	}
}
