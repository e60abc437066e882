package api

import (
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A signal retried with its request_id after the stream's duplicate
// window is recorded once in the history (docs/language.md, "Exactly
// once": each signal per request_id is recorded once).
func TestASignalRetriedAfterTheDuplicateWindowIsRecordedOnce(t *testing.T) {
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{DuplicateWindow: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n  - { id: gate2, wait: { signal: other } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	const wf = "sig-1"
	if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: wf, RequestId: "r1"})); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if i > 0 {
			time.Sleep(1500 * time.Millisecond) // a client retrying after a timeout
		}
		if _, err := s.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: wf, Name: "go", RequestId: "sig-a"})); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := store.Read(ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range msgs {
		for _, ev := range m.Record.Events {
			if ev.Type == events.TypeSignalReceived {
				n++
			}
		}
	}
	if n != 1 {
		t.Fatalf("history holds %d SignalReceived events for request_id sig-a, want 1", n)
	}
}
