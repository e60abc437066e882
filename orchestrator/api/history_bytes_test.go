package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A page of history is bounded in bytes as well as in events: a run
// whose signals carry large payloads (each within MaxPayloadBytes) is
// paged through in answers a gRPC client takes (4 MiB by default), not
// one answer of every event at once, and the pages hold every event once,
// in order.
func TestAHistoryPageIsBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	const wf = "big-signals"
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	last := startRun(t, store, wf, "d", 100, 0)
	const signals = 24
	payload := strings.Repeat("x", 512<<10)
	for i := range signals {
		if last, err = store.AppendExternal(ctx, wf, &last, fmt.Sprintf("big/%d", i), events.Event{Type: events.TypeSignalReceived,
			Time: time.Unix(101, 0).UTC(), SignalReceived: &events.SignalReceived{Name: "go", Payload: payload}}); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	token := ""
	for pages := 0; ; pages++ {
		if pages > signals+1 {
			t.Fatalf("still paging after %d pages", pages)
		}
		r, err := s.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: wf, PageSize: 1000, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(r.Msg); n > 4<<20 {
			t.Fatalf("a page of %d events is %d bytes: more than a gRPC client takes (4 MiB)", len(r.Msg.Events), n)
		}
		for _, e := range r.Msg.Events {
			seqs = append(seqs, e.Sequence)
		}
		if token = r.Msg.NextPageToken; token == "" {
			break
		}
	}
	if len(seqs) != signals+1 {
		t.Fatalf("the pages held %d events, want %d: %v", len(seqs), signals+1, seqs)
	}
	for i, q := range seqs {
		if q != uint64(i+1) {
			t.Fatalf("event %d of the pages has sequence %d: %v", i, q, seqs)
		}
	}
}
