package trigger_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/trigger"
)

const ordersDef = `
name: orders
triggers:
  - subject: orders.created
    filter: "${ event.total > 100 }"
    input: "${ {'order': event.id, 'headers': headers} }"
steps:
  - { id: ack, task: echo }
`

// engineOn starts a trigger engine over a store of its own with the
// definition src put first; no orchestrator runs, so the workflows it
// starts stay as their start records.
func engineOn(t *testing.T, cfg trigger.Config, name, src string) (context.Context, *nats.Conn, *eventstore.Store, *trigger.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{ResultReplyWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	return ctx, nc, store, startEngine(t, ctx, store, cfg)
}

// startEngine starts a trigger engine over store with cfg (logging
// nowhere), stopped when the test ends.
func startEngine(t *testing.T, ctx context.Context, store *eventstore.Store, cfg trigger.Config) *trigger.Engine {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	eng, err := trigger.New(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(stop)
	})
	return eng
}

// Each message on a trigger subject starts one workflow with the input
// its template builds from the payload and headers, identified by the
// producer's message id or else its place in the stream; a message the
// filter declines starts nothing; one that cannot be read or is too large
// is recorded as a failure with its reason.
func TestSubjectMessagesStartWorkflowsOrAreRecorded(t *testing.T) {
	ctx, nc, store, _ := engineOn(t, trigger.Config{MaxPayloadBytes: 256}, "orders", ordersDef)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(data string, header nats.Header) uint64 {
		t.Helper()
		msg := &nats.Msg{Subject: "orders.created", Data: []byte(data), Header: header}
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	publish(`{"id": 1, "total": 500}`, nats.Header{"Nats-Msg-Id": {"order-1"}, "X-Tag": {"a", "b"}})
	publish(`{"id": 2, "total": 500}`, nil)
	publish(`{"id": 3, "total": 5}`, nil)
	publish(`{not json`, nil)
	publish(`{"id": 5, "total": 500, "pad": "`+strings.Repeat("x", 300)+`"}`, nil)
	publish(`{"id": 6}`, nil)

	cons, err := js.Consumer(ctx, eventstore.TriggersStream, eventstore.TriggersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trigger messages not all handled: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var started []string // inputs
	for _, id := range startedWorkflows(t, ctx, nc) {
		first, err := store.First(ctx, id)
		if err != nil || first.Err != nil {
			t.Fatalf("workflow %s: %v %v", id, err, first.Err)
		}
		in, _ := json.Marshal(first.Record.Events[0].WorkflowStarted.Input)
		started = append(started, string(in))
		if who := first.Record.Events[0].Identity; who != "subject:orders.created" {
			t.Errorf("workflow %s started by %q, want subject:orders.created", id, who)
		}
	}
	sort.Strings(started)
	want := []string{`{"headers":{"X-Tag":"a, b"},"order":1}`, `{"headers":{},"order":2}`}
	if strings.Join(started, "\n") != strings.Join(want, "\n") {
		t.Fatalf("started workflows with inputs %v, want %v", started, want)
	}

	failures, _, err := store.ListTriggerFailures(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, f := range failures {
		if f.Definition != "orders" || f.Subject != "orders.created" {
			t.Errorf("failure %+v", f)
		}
		reasons = append(reasons, f.Reason)
	}
	slices.Sort(reasons)
	if len(reasons) != 3 || !strings.HasPrefix(reasons[0], "filter: ") || !strings.HasPrefix(reasons[1], "payload is ") ||
		!strings.HasSuffix(reasons[1], "the limit is 256") || !strings.HasPrefix(reasons[2], "payload: ") {
		t.Fatalf("failure reasons %q", reasons)
	}
}

// Start twice fails, Stop twice is fine, and a negative count is refused.
func TestEngineLifecycle(t *testing.T) {
	ctx, _, store, eng := engineOn(t, trigger.Config{}, "orders", ordersDef)
	if err := eng.Start(ctx); err == nil || err.Error() != "trigger: already started" {
		t.Fatalf("second Start: %v", err)
	}
	for range 2 {
		if err := eng.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := trigger.New(store, trigger.Config{Workers: -1}); err == nil || err.Error() != "trigger: Workers must not be negative, got -1" {
		t.Fatalf("negative Workers: %v", err)
	}
}

// A cron tick that does not decode is recorded as a failure, with its
// subject and why, and dropped; the ticks behind it are not held up.
func TestAnUndecodableCronTickIsRecorded(t *testing.T) {
	ctx, nc, store, _ := engineOn(t, trigger.Config{}, "orders", ordersDef)
	failures := publishForAFailure(ctx, t, nc, store, "weft.t.cf.orders.bad", "not a tick")
	if f := failures[0]; len(failures) != 1 || f.Subject != "weft.t.cf.orders.bad" || f.Definition != "orders" || !strings.Contains(f.Reason, "undecodable") {
		t.Fatalf("failures %+v", failures)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	cons, err := js.Consumer(ctx, eventstore.TimersStream, eventstore.CronConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tick is still held: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const bigIDDef = `
name: bigid
triggers:
  - subject: bigid.in
    id: "${ event.id }"
steps:
  - { id: ack, task: echo }
`

// An event whose id template builds an invalid id must be recorded as a
// trigger failure and acked, whatever the size of the value the reason
// quotes.
func TestARefusedIDWithALargeReasonIsRecorded(t *testing.T) {
	ctx, nc, store, _ := engineOn(t, trigger.Config{}, "bigid", bigIDDef)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// A producer's mistake: an id that is a list of 80,000 numbers
	// (400 KB of JSON, well under the 1 MiB limit).
	ids := strings.TrimSuffix(strings.Repeat("1e15,", 80_000), ",")
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "bigid.in", Data: []byte(`{"id":[` + ids + `]}`)}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, eventstore.TriggersStream, eventstore.TriggersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(8 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event was never settled (redelivered %d times so far): %+v", info.NumRedelivered, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	failures, _, err := store.ListTriggerFailures(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 {
		t.Fatalf("%d trigger failures recorded, want 1", len(failures))
	}
	if r := failures[0].Reason; len(r) > 8<<10 || !strings.Contains(r, "is not a valid workflow id") {
		t.Errorf("the reason (%d bytes) is not the id's, cut short: %.300s", len(r), r)
	}
}

// A message whose filter compares values of types that do not compare is
// recorded with a reason that names the types and how to convert them.
func TestAFilterTypeErrorIsRecordedWithTheTypes(t *testing.T) {
	ctx, nc, store, _ := engineOn(t, trigger.Config{}, "counts", `
name: counts
triggers:
  - subject: counts.seen
    filter: 'event.count > "3"'
steps:
  - { id: ack, task: echo }
`)
	failures := publishForAFailure(ctx, t, nc, store, "counts.seen", `{"count": 4}`)
	const want = `filter: evaluate filter: expression "event.count > \"3\"": no such overload: int > string ` +
		`(convert one side: event.count > int("3") compares numbers, string(event.count) > "3" compares text)`
	if f := failures[0]; len(failures) != 1 || f.Definition != "counts" || f.Reason != want {
		t.Fatalf("failures %+v\nwant one with reason %s", failures, want)
	}
}

// publishForAFailure publishes data on subject and returns the trigger
// failures recorded, once there is one.
func publishForAFailure(ctx context.Context, t *testing.T, nc *nats.Conn, store *eventstore.Store, subject, data string) []eventstore.TriggerFailure {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
		t.Fatal(err)
	}
	var failures []eventstore.TriggerFailure
	for deadline := time.Now().Add(10 * time.Second); len(failures) == 0; time.Sleep(20 * time.Millisecond) {
		if failures, _, err = store.ListTriggerFailures(ctx, 10, 0); err != nil {
			t.Fatal(err)
		}
		if len(failures) == 0 && time.Now().After(deadline) {
			t.Fatalf("no failure recorded for the message on %s", subject)
		}
	}
	return failures
}
