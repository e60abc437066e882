package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// A result published again (a retry after a publish whose answer was
// lost, a resettle, a child's outcome told again) is stored once: its
// message id names the attempt, its outcome and its command, never when
// it was sent. The same attempt's result for another command (a run
// started again under the id) is stored too.
func TestAResultPublishedAgainIsStoredOnce(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := events.Result{WorkflowID: "wf", Path: "a", Gen: 1, Attempt: 1, Cmd: 7, Outcome: events.OutcomeCompleted, Output: "x",
		Time: time.Now().UTC()}
	for range 2 {
		r.Time = r.Time.Add(time.Millisecond) // sent again, later
		if err := s.PublishResult(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	child := events.Result{WorkflowID: "wf", Path: "k", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted,
		ParentCreated: time.Unix(100, 0), Time: time.Now().UTC()}
	for range 2 {
		child.Time = child.Time.Add(time.Millisecond)
		if err := s.PublishResult(ctx, child); err != nil {
			t.Fatal(err)
		}
	}
	r.Cmd = 9 // another command's attempt 1
	if err := s.PublishResult(ctx, r); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, eventstore.ResultsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("the results stream holds %d results; want 3 (each result once)", info.State.Msgs)
	}
}
