package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// What is too large for NATS comes back as ErrTooLarge, whichever way it
// was sent, with NATS' own message.
func TestTooLargeIsMappedOnce(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if s.MaxPayload() <= 0 {
		t.Fatalf("MaxPayload %d", s.MaxPayload())
	}
	big := strings.Repeat("x", int(s.MaxPayload())+1)
	ev := started("big")
	ev.WorkflowStarted.Input = big
	var zero uint64
	_, err := s.AppendExternal(ctx, "big", &zero, "start/big", ev)
	if !errors.Is(err, eventstore.ErrTooLarge) || !strings.Contains(err.Error(), nats.ErrMaxPayload.Error()) {
		t.Fatalf("append: %v", err)
	}
	if _, err := s.LastSeq(ctx, "big"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("a refused append left history: %v", err)
	}
	res := events.Result{WorkflowID: "big", Path: "one", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted,
		Time: time.Unix(100, 0).UTC(), Output: big}
	if err := s.PublishResult(ctx, res); !errors.Is(err, eventstore.ErrTooLarge) {
		t.Fatalf("publish result: %v", err)
	}
	if err := s.ReportResult(ctx, res, ""); !errors.Is(err, eventstore.ErrTooLarge) {
		t.Fatalf("report result: %v", err)
	}
	// Other errors are not.
	if _, err := s.AppendExternal(ctx, "small", &zero, "start/small", started("small")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendExternal(ctx, "small", &zero, "start/small2", started("small")); errors.Is(err, eventstore.ErrTooLarge) || err == nil {
		t.Fatalf("conflict: %v", err)
	}
}

// A trigger event carries its message's headers as eventstore's own type.
func TestTriggerEventHeaders(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTriggerSubjects(ctx, func(context.Context, []string) []string { return []string{"orders.>"} }); err != nil {
		t.Fatal(err)
	}
	f, err := s.TriggerFeed(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	msg := nats.NewMsg("orders.new")
	msg.Data = []byte(`{"n":1}`)
	msg.Header.Set(eventstore.MsgIDHeader, "order-1")
	msg.Header.Add("X-Tag", "a")
	msg.Header.Add("X-Tag", "b")
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	d, err := f.Next()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Ack()
	ev := d.Event
	if ev == nil || ev.Subject != "orders.new" || string(ev.Data) != `{"n":1}` {
		t.Fatalf("event %+v", ev)
	}
	if got := ev.Headers.Get(eventstore.MsgIDHeader); got != "order-1" {
		t.Fatalf("msg id header %q", got)
	}
	if got := ev.Headers["X-Tag"]; len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("X-Tag %v", got)
	}
	if got := ev.Headers.Get("x-tag"); got != "" {
		t.Fatalf("keys are case-sensitive, got %q", got)
	}
	var none eventstore.Header
	if none.Get("X") != "" {
		t.Fatal("nil Header")
	}
}
