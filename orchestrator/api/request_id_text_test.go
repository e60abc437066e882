package api

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// Signals with request ids that differ only in whitespace are different
// requests, each answered OK, so each is recorded: NATS trims a header
// value and turns its line breaks into spaces, and a request id put in
// the append's Nats-Msg-Id as it came made "b" a duplicate of " b" and
// "c\nd" one of "c d", answered OK and never recorded.
func TestSignalsWhoseRequestIDsDifferInWhitespaceAreEachRecorded(t *testing.T) {
	const wf = "sig-ws"
	ctx, store, s := startGate(t, wf, "go")
	ids := []string{"a", " a", "a\t", "c d", "c\nd", "c\rd"}
	for _, id := range ids {
		if _, err := s.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: wf, Name: "go", RequestId: id})); err != nil {
			t.Fatalf("signal %q: %v", id, err)
		}
	}
	msgs, err := store.Read(ctx, wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]bool{}
	for _, m := range msgs {
		for _, ev := range m.Record.Events {
			if ev.Type == events.TypeSignalReceived {
				recorded[ev.SignalReceived.RequestID] = true
			}
		}
	}
	for _, id := range ids {
		if !recorded[id] {
			t.Errorf("signal with request_id %q was answered OK but not recorded (recorded: %v)", id, recorded)
		}
	}
}
