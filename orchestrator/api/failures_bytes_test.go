package api

import (
	"bytes"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A page of trigger failures is bounded in bytes as well as in failures,
// as a page of history is: each failure keeps its raw payload (up to the
// NATS message limit), and a few malformed events near the limit made
// every page an answer a gRPC client refuses (4 MiB by default), so no
// one could list the failures. Paging still reaches every failure.
func TestATriggerFailuresPageFitsAGRPCClient(t *testing.T) {
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("x"), int(store.MaxPayload())-4096)
	const n = 8
	for i := range n {
		if err := store.RecordTriggerFailure(ctx, eventstore.TriggerFailure{Subject: "big.events", Time: time.Now().UTC(),
			Reason: "payload: invalid JSON", Definition: "d", Payload: append([]byte{byte('0' + i)}, payload...)}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[byte]bool{}
	tok := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatalf("more than %d pages", n)
		}
		resp, err := s.ListTriggerFailures(ctx, connect.NewRequest(&weftv1.ListTriggerFailuresRequest{PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		if size := proto.Size(resp.Msg); size > 4<<20 {
			t.Fatalf("a page of %d failures is %d bytes: a gRPC client takes 4 MiB", len(resp.Msg.Failures), size)
		}
		if len(resp.Msg.Failures) == 0 {
			t.Fatal("an empty page")
		}
		for _, f := range resp.Msg.Failures {
			seen[f.Payload[0]] = true
		}
		if tok = resp.Msg.NextPageToken; tok == "" {
			break
		}
	}
	if len(seen) != n {
		t.Fatalf("paging reached %d of %d failures", len(seen), n)
	}
}
