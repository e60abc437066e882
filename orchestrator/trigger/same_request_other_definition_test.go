package trigger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// Two definitions with the same subject trigger (so the same trigger key)
// and id templates that map one event onto one workflow id: the first
// definition's run takes the id. The second definition's start carries the
// same request id ("trigger/<key>/<identity>": key and identity are the
// same). Taken by runs.Start for "the same request", answered Started=false
// without an error, the second definition's event was taken as
// deduplicated: it started nothing and no trigger failure was recorded.
// It is refused and recorded, as TestAnIDNamingAnotherDefinitionsRunIsRefused
// has it for different request ids.
func TestAnEventMappedOntoAnotherDefinitionsRunOfTheSameRequestIsRecorded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc := natstest.Start(t).Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bill", "ship"} {
		src := "name: " + name + "\ntriggers:\n  - subject: orders.paid\n    id: \"${ 'order-' + string(event.id) }\"\nsteps:\n  - { id: gate, wait: { signal: go } }\n"
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.AddTriggerSubjects(ctx, []string{"orders.paid"}); err != nil {
		t.Fatal(err)
	}
	startEngine(t, ctx, store, trigger.Config{})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "orders.paid", []byte(`{"id": 7}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, eventstore.TriggersStream, eventstore.TriggersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	// Handled: the run started, and the event acked (a delivery given
	// back to come again counts as neither pending nor acked, so the
	// consumer's counts alone may come before the run).
	waitFor(t, "the event handled", func() bool {
		info, err := cons.Info(ctx)
		if err != nil || info.NumPending != 0 || info.NumAckPending != 0 || info.AckFloor.Stream == 0 {
			return false
		}
		_, err = store.First(ctx, "order-7")
		return err == nil
	})
	first, err := store.First(ctx, "order-7")
	if err != nil || first.Err != nil {
		t.Fatalf("order-7: %v %v", err, first.Err)
	}
	owner := first.Record.Events[0].WorkflowStarted.Definition
	failures, _, err := store.ListTriggerFailures(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range failures {
		if f.Definition != owner {
			return // the other definition's event is recorded
		}
	}
	t.Fatalf("order-7 is a run of %q; the other definition's trigger matched the same event, started nothing and recorded no failure (failures: %+v)", owner, failures)
}
