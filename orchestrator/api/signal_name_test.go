package api

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A signal whose name no wait step can wait for (a wait's signal must be
// letters, digits, _ and -, in parts separated by single dots) can never
// be taken: it is refused at the door with InvalidArgument, not recorded
// and kept for ever.
func TestASignalNoWaitCanTakeIsRefused(t *testing.T) {
	const wf = "sig-name"
	ctx, store, s := startGate(t, wf, "approve")
	for _, name := range []string{"approve ", "approve\n", "appr ove", "approve..x", ".approve", "approve!"} {
		_, err := s.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: wf, Name: name}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("signal %q: %v; want InvalidArgument (no wait can ever take it)", name, err)
		}
	}
	msgs, err := store.Read(ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		for _, ev := range m.Record.Events {
			if ev.Type == events.TypeSignalReceived {
				t.Errorf("recorded a signal no wait can take: %q", ev.SignalReceived.Name)
			}
		}
	}
}

// startGate opens a store on a fresh NATS, puts definition w (one wait
// for signal), serves it with New and starts its run wf.
func startGate(t *testing.T, wf, signal string) (context.Context, *eventstore.Store, *Server) {
	t.Helper()
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: "+signal+" } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: wf, RequestId: "r1"})); err != nil {
		t.Fatal(err)
	}
	return ctx, store, s
}
