package trigger

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
)

// An engine whose registry has not seen a definition yet (its watch
// lags, or it cannot compile it) undoes nothing another part set up for
// it: the definition's subject stays captured and its cron tick pending,
// and an event on the subject starts its run.
func TestAnEngineBehindUndoesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	src := "name: orders\ntriggers:\n  - subject: orders.new\n    id: \"${ 'o-' + string(event.n) }\"\n  - cron: \"0 9 * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "orders", src, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	current, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := current.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = current.Stop(context.Background()) })
	cronKey := "orders." + def.Triggers[1].Key
	setUp := func() bool {
		subjects, err := store.TriggerSubjects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pending, err := store.CronSchedules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := pending[cronKey]
		return ok && slices.Contains(subjects, "orders.new")
	}
	for deadline := time.Now().Add(30 * time.Second); !setUp(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the current engine never set the triggers up")
		}
	}

	// An engine that knows no definition (never started: its registry is
	// empty, as one whose watch lags behind the put).
	behind, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := behind.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if !setUp() {
		t.Fatal("an engine behind the definitions removed a subject or canceled a tick they want")
	}
	d := &eventstore.Delivery{NumDelivered: 1, Subject: "orders.new",
		Event: &eventstore.TriggerEvent{Subject: "orders.new", Data: []byte(`{"n": 7}`), Seq: 1, Time: time.Now()}}
	if err := behind.handleEvent(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := store.LastSeq(ctx, "o-7"); err != nil {
		t.Fatalf("the event an engine behind handled started no run: %v", err)
	}
	if fs, _, err := store.ListTriggerFailures(ctx, 10, 0); err != nil || len(fs) > 0 {
		t.Fatalf("failures %v, %v: want none", fs, err)
	}
}

// An engine whose registry knows a wildcard trigger of one definition but
// not yet another definition put since (its subject captured, its put
// answered) starts the runs of both for an event on the newer one's
// subject: the wildcard's match no longer hides that its registry lags.
func TestAnEngineBehindFiresADefinitionPutSinceBesideAWildcard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	all := "name: all\ntriggers:\n  - subject: orders.>\n    id: \"${ 'all-' + string(event.n) }\"\nsteps:\n  - { id: a, task: echo }\n"
	rec, _, err := store.PutDefinition(ctx, "all", all, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	behind, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	behind.reg.update(rec) // it has seen "all", and its watch is behind the next put
	if _, _, err := store.PutDefinition(ctx, "us", "name: us\ntriggers:\n  - subject: orders.us.new\n    id: \"${ 'us-' + string(event.n) }\"\nsteps:\n  - { id: a, task: echo }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	d := &eventstore.Delivery{NumDelivered: 1, Subject: "orders.us.new",
		Event: &eventstore.TriggerEvent{Subject: "orders.us.new", Data: []byte(`{"n": 1}`), Seq: 1, Time: time.Now()}}
	if err := behind.handleEvent(ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, wf := range []string{"all-1", "us-1"} {
		if _, err := store.LastSeq(ctx, wf); err != nil {
			t.Errorf("the event started no run %s: %v", wf, err)
		}
	}
}
