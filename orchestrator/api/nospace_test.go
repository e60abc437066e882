package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A start or a signal made while JetStream has no room left is answered
// ResourceExhausted, saying that nothing was stored and what an operator
// must do, not Unavailable with NATS's words (which a client retries as if
// it passed by itself); once room is made, the same calls go through.
func TestWritesWithoutRoomAreResourceExhausted(t *testing.T) {
	ctx := t.Context()
	nc := natstest.StartWith(t, func(o *server.Options) { o.JetStreamMaxStore = 8 << 20 }).Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: "parked", RequestId: "r0"})); err != nil {
		t.Fatal(err)
	}
	makeRoom := natstest.Fill(t, nc)
	start := connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: "full-1", RequestId: "r1"})
	signal := connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "parked", Name: "go", RequestId: "s1"})
	for name, call := range map[string]func() error{
		"start":  func() error { _, err := s.StartWorkflow(ctx, start); return err },
		"signal": func() error { _, err := s.SignalWorkflow(ctx, signal); return err },
	} {
		err := call()
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("%s on a full JetStream: %v; want ResourceExhausted", name, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "out of storage") || !strings.Contains(msg, "nothing was stored") || !strings.Contains(msg, "max_file_store") {
			t.Errorf("%s on a full JetStream: %q; want it to say that nothing was stored and what to do", name, msg)
		}
	}
	makeRoom()
	if _, err := s.StartWorkflow(ctx, start); err != nil {
		t.Fatalf("start once room is made: %v", err)
	}
	if _, err := s.SignalWorkflow(ctx, signal); err != nil {
		t.Fatalf("signal once room is made: %v", err)
	}
}

// A start whose time runs out waiting for NATS (stopped, or unreachable)
// is answered DeadlineExceeded saying that it may have been made all the
// same and how to make it again safely, not with NATS's words alone.
func TestAStartOutOfTimeSaysToCallAgainWithItsRequestID(t *testing.T) {
	ctx, _, s := startGate(t, "first", "go")
	late, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	_, err := s.StartWorkflow(late, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: "late-1", RequestId: "r-late"}))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "same request_id") {
		t.Fatalf("start out of time: %v; want DeadlineExceeded saying to call again with the same request_id", err)
	}
}
