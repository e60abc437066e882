package eventstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// Task types whose names differ only where the old consumer naming
// folded characters together ('.' and '_') each keep a consumer of
// their own: every puller gets exactly its own type's commands.
func TestDefect3_SimilarTaskTypesKeepTheirOwnCommands(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	types := []string{"a.b", "a_b", "nats.publish", "nats_publish"}
	for _, typ := range types {
		if err := s.EnsureTaskConsumer(ctx, typ); err != nil {
			t.Fatal(err)
		}
	}
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf", events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range types {
		if seq, err = s.Append(ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
			StepScheduled: &events.StepScheduled{Path: "s" + string(rune('0'+i)), Gen: 1, Task: typ, FirstAttempt: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, typ := range types {
		p, err := s.TaskPuller(ctx, typ)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := p.Fetch(ctx, 10, time.Second, func(d *eventstore.Delivery) {
			if d.Task != nil {
				got = append(got, d.Task.Task)
			}
			_ = d.Ack()
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != typ {
			t.Errorf("puller of %q got commands of %q; want exactly its own", typ, got)
		}
	}
}

func TestTaskConsumerNames(t *testing.T) {
	long := strings.Repeat("x", 200)
	types := []string{"a.b", "a_b", "a-b", "a__b", "a._b", "a_.b", "nats.publish", "nats_publish", "http", long, long + "y", long + ".y", long + "_y"}
	seen := map[string]string{}
	for _, typ := range types {
		name := eventstore.TaskConsumerName(typ)
		if prev, ok := seen[name]; ok {
			t.Errorf("%q and %q share consumer %s", prev, typ, name)
		}
		seen[name] = typ
		if strings.ContainsAny(name, ".*> \t/\\") || len(name) > 160 {
			t.Errorf("%q: consumer name %q is not a valid durable name", typ, name)
		}
	}
	// Types without '_' keep the names earlier versions gave them.
	for typ, want := range map[string]string{"nats.publish": "weft-task-nats_publish", "http": "weft-task-http", "send-email": "weft-task-send-email"} {
		if got := eventstore.TaskConsumerName(typ); got != want {
			t.Errorf("TaskConsumerName(%q) = %q, want %q", typ, got, want)
		}
	}
	for _, bad := range []string{"", "a.", ".a", "a..b", "a.*", "a.>", "a b"} {
		if eventstore.ValidTaskType(bad) {
			t.Errorf("ValidTaskType(%q) = true", bad)
		}
	}
}

// withLegacyConsumer opens a store with the consumer an earlier version
// made for task type "send_mail", and run wf started; it returns the
// start's sequence, and the NATS server.
func withLegacyConsumer(t *testing.T, ctx context.Context) (*eventstore.Store, jetstream.Consumer, uint64, *natstest.Server) {
	t.Helper()
	ns := natstest.Start(t)
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := js.CreateConsumer(ctx, eventstore.HistoryStream, jetstream.ConsumerConfig{Durable: "weft-task-send_mail",
		FilterSubject: "weft.h.*.task.send_mail", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf", events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s, legacy, seq, ns
}

// A type whose consumer is renamed starts its new consumer after the
// commands the old one settled, not at the start of history.
func TestTaskConsumerTakesOverFromLegacyName(t *testing.T) {
	ctx := context.Background()
	s, legacy, seq, ns := withLegacyConsumer(t, ctx)
	var err error
	for _, path := range []string{"done", "todo"} {
		if seq, err = s.Append(ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
			StepScheduled: &events.StepScheduled{Path: path, Gen: 1, Task: "send_mail", FirstAttempt: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	batch, err := legacy.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.TaskPuller(ctx, "send_mail")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := p.Fetch(ctx, 10, time.Second, func(d *eventstore.Delivery) { got = append(got, d.Task.Path); _ = d.Ack() }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "todo" {
		t.Fatalf("new consumer delivered %v; want only the command the old one had not settled", got)
	}
	// Ensuring it again (another process, a restart) keeps its start.
	s2, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.EnsureTaskConsumer(ctx, "send_mail"); err != nil {
		t.Fatal(err)
	}
}

// A task type's queue counts the executors of an earlier version that
// still take its commands through the consumer they knew: the command
// they hold is handed out and in flight.
func TestTaskQueueCountsTheLegacyConsumer(t *testing.T) {
	ctx := context.Background()
	s, legacy, seq, _ := withLegacyConsumer(t, ctx)
	if err := s.EnsureTaskConsumer(ctx, "send_mail"); err != nil {
		t.Fatal(err)
	}
	var err error
	if seq, err = s.Append(ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "send_mail", FirstAttempt: 1}}); err != nil {
		t.Fatal(err)
	}
	batch, err := legacy.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() { // held, not acked
	}
	q, err := s.TaskQueueOf(ctx, "send_mail")
	if err != nil || q.Delivered < seq || q.InFlight != 1 || q.LastDelivery.IsZero() || q.AckFloor >= seq {
		t.Fatalf("TaskQueueOf = %+v, %v; want command %d handed out and in flight, not settled", q, err, seq)
	}
}
