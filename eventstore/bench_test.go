package eventstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
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

// benchStore opens a store on a new embedded server and starts workflow
// "bench"; it returns the start's sequence.
func benchStore(b *testing.B) (*eventstore.Store, uint64) {
	b.Helper()
	ns := natstest.Start(b)
	s, err := eventstore.Open(context.Background(), ns.Connect(b), eventstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	var zero uint64
	seq, err := s.AppendExternal(context.Background(), "bench", &zero, "start/bench", started("bench"))
	if err != nil {
		b.Fatal(err)
	}
	return s, seq
}

// BenchmarkAppend measures one conditional append (the orchestrator's
// write per decision) against an embedded server.
func BenchmarkAppend(b *testing.B) {
	s, seq := benchStore(b)
	ctx := context.Background()
	var err error
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if seq, err = s.Append(ctx, "bench", seq, stepCompleted(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead measures reading a 20-record history (a cold load) whose
// records lie among those of 0 or 2,000 other workflows.
func BenchmarkRead(b *testing.B) {
	for _, others := range []int{0, 2000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) { benchRead(b, others) })
	}
}

func benchRead(b *testing.B, others int) {
	s, seq := benchStore(b)
	ctx := context.Background()
	var zero uint64
	var err error
	for i := range 19 {
		for o := range others / 19 {
			wf := fmt.Sprintf("other%d", o)
			if i == 0 {
				_, err = s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf))
			} else {
				_, err = s.AppendExternalAtEnd(ctx, wf, 0, fmt.Sprintf("x/%s/%d", wf, i), stepCompleted(i))
			}
			if err != nil {
				b.Fatal(err)
			}
		}
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

// BenchmarkHistoryPage measures reading a 10-record page at the end of a
// long history (what GetHistory's page token lets a page read) against
// reading the whole history (what every page cost before). WEFT_PAGE_N
// sets the history's length (default 10,000).
func BenchmarkHistoryPage(b *testing.B) {
	n := 10000
	if v := os.Getenv("WEFT_PAGE_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	s, seq := benchStore(b)
	ctx := context.Background()
	var err error
	for i := range n {
		if seq, err = s.Append(ctx, "bench", seq, stepCompleted(i)); err != nil {
			b.Fatal(err)
		}
	}
	from := seq - 9
	b.Run(fmt.Sprintf("page_of_10/records=%d", n), func(b *testing.B) {
		for range b.N {
			got := 0
			if _, err := s.ReadFrom(ctx, "bench", from, func(eventstore.Message) bool { got++; return got < 10 }); err != nil || got != 10 {
				b.Fatalf("read %d records: %v", got, err)
			}
		}
	})
	b.Run(fmt.Sprintf("whole/records=%d", n), func(b *testing.B) {
		for range b.N {
			if msgs, err := s.Read(ctx, "bench", 0); err != nil || len(msgs) != n+1 {
				b.Fatalf("read %d records: %v", len(msgs), err)
			}
		}
	})
}
