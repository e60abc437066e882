package trigger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// beside starts an engine over definition "all" (source all), then stores
// what a newer API put: definition "us", with a trigger on orders.us.new
// that this part cannot compile, and its subject captured.
func beside(t *testing.T, all string) (context.Context, *eventstore.Store, jetstream.JetStream) {
	t.Helper()
	ctx, nc, store, _ := engineOn(t, trigger.Config{}, "all", all)
	if _, _, err := store.PutDefinition(ctx, "us", "name: us\ntriggers:\n  - subject: orders.us.new\nsteps: [ {id: a, frobnicate: yes} ]\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := store.AddTriggerSubjects(ctx, []string{"orders.us.new"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, store, js
}

// An event that a compiled definition's wildcard matches, while another
// stored definition does not compile here (a newer version's, during a
// rolling upgrade), is not settled by this part once it fired the match
// it knows: the definition it cannot read may have a trigger on the
// subject too, and only a part that can compile it can start that run.
// (An event no known trigger matches is given back for such a part
// already; the wildcard's match must not hide that this part is unsure.)
func TestAnEventMatchedBesideAnUncompilableDefinitionIsLeftForAPartThatCanCompileIt(t *testing.T) {
	all := "name: all\ntriggers:\n  - subject: orders.>\n    id: \"${ 'all-' + string(event.n) }\"\nsteps:\n  - { id: a, task: echo }\n"
	ctx, store, js := beside(t, all)
	if _, err := js.Publish(ctx, "orders.us.new", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	// The match this part knows starts its run.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := store.LastSeq(ctx, "all-1"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the wildcard's run never started")
		}
	}
	// Given back, not settled: it comes again (5 s later), still stored.
	cons, err := js.Consumer(ctx, eventstore.TriggersStream, eventstore.TriggersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info, err := cons.Info(ctx); err == nil && info.Delivered.Consumer >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was settled by a part that cannot compile definition us: " +
				"a newer part never gets it, and us's trigger on orders.us.new starts no run")
		}
	}
	stream, err := js.Stream(ctx, eventstore.TriggersStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 1 {
		t.Fatalf("the trigger stream after the redelivery: %+v, %v; want the event still there", info, err)
	}
}

// An event that a known trigger matches but refuses (its id template
// makes no valid id), while another stored definition does not compile
// here, is given back for a part that can compile it. Each delivery must
// not record the known trigger's refusal again: one event, one failure
// (recorded by the delivery that settles it).
func TestAGivenBackEventRecordsItsRefusalOnce(t *testing.T) {
	all := "name: all\ntriggers:\n  - subject: orders.>\n    id: \"${ 'all-' + event.n }\"\nsteps:\n  - { id: a, task: echo }\n"
	ctx, store, js := beside(t, all)
	if _, err := js.Publish(ctx, "orders.us.new", []byte(`{"n": "not an id!"}`)); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, eventstore.TriggersStream, eventstore.TriggersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	// Three deliveries: the second has been handled.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info, err := cons.Info(ctx); err == nil && info.Delivered.Consumer >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not given back twice")
		}
	}
	fs, _, err := store.ListTriggerFailures(ctx, 20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) > 1 {
		t.Fatalf("%d trigger failures recorded for one event given back: want at most 1 (each delivery recorded the refusal again)", len(fs))
	}
}

// A stored definition that declares no trigger at all, and does not
// compile here, holds up no event a known trigger matches: the event is
// settled at once, not given back eleven times (55 s) with every match
// fired again each time.
func TestAnUncompilableDefinitionWithoutTriggersHoldsUpNoMatchedEvent(t *testing.T) {
	src := "name: orders\ntriggers:\n  - subject: orders.created\nsteps:\n  - { id: a, task: echo }\n"
	ctx, nc, store, _ := engineOn(t, trigger.Config{}, "orders", src)
	if _, _, err := store.PutDefinition(ctx, "other", "name: other\nsteps: [ {id: a, frobnicate: yes} ]\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if subjects, err := store.TriggerSubjects(ctx); err == nil && len(subjects) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("orders.created never captured")
		}
	}
	if _, err := js.Publish(ctx, "orders.created", []byte(`{"id": 1}`)); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, eventstore.TriggersStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(4 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info, err := stream.Info(ctx); err == nil && info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the event is still in the trigger stream 4 s after it was published: given back because an unrelated stored definition does not compile here")
		}
	}
}
