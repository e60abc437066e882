package trigger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// A message on a trigger subject without a Nats-Msg-Id is named by its
// place in the trigger stream. A trigger stream made again (deleted by an
// operator, or lost, and created anew by the next part that opens the
// store) numbers its messages from 1 again: a new message there is not
// the message that had its place in the stream before, and starts a run
// of its own rather than be taken for the earlier one's.
func TestAMessageInATriggerStreamMadeAgainStartsItsOwnRun(t *testing.T) {
	src := "name: orders\ntriggers:\n  - subject: orders.created\nsteps:\n  - { id: a, task: echo }\n"
	ctx, nc, store, eng := engineOn(t, trigger.Config{}, "orders", src)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	captured := func(s *eventstore.Store) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			subjects, err := s.TriggerSubjects(ctx)
			if err == nil && len(subjects) == 1 && subjects[0] == "orders.created" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("orders.created never captured: %v %v", subjects, err)
			}
		}
	}
	runs := func(n int) []string {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if got = startedWorkflows(t, ctx, nc); len(got) >= n || time.Now().After(deadline) {
				return got
			}
		}
	}
	captured(store)
	if _, err := js.Publish(ctx, "orders.created", []byte(`{"id": 1}`)); err != nil {
		t.Fatal(err)
	}
	if got := runs(1); len(got) != 1 {
		t.Fatalf("runs %v after the first message: want one", got)
	}
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := eng.Stop(stop); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, eventstore.TriggersStream); err != nil {
		t.Fatal(err)
	}
	again, err := eventstore.Open(ctx, nc, eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	startEngine(t, ctx, again, trigger.Config{})
	captured(again)
	if _, err := js.Publish(ctx, "orders.created", []byte(`{"id": 2}`)); err != nil {
		t.Fatal(err)
	}
	// Handled (acked: gone from the work-queue stream).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := js.Stream(ctx, eventstore.TriggersStream)
		if err != nil {
			t.Fatal(err)
		}
		if info, err := st.Info(ctx); err == nil && info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second message was never handled")
		}
	}
	if got := runs(2); len(got) != 2 {
		t.Fatalf("runs %v after a second message, published to the trigger stream made again: want two (the second was taken for the first)", got)
	}
}
