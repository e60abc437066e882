package trigger

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// A look at the stored definitions whose start the clock reads as the
// very instant an event came may have begun before the event did (a
// clock coarser than the time between them: a definition put and an
// event published in between): it does not answer for that event, which
// would miss the definition's trigger.
func TestStoredSinceIsNotAnsweredByALookOfTheSameInstant(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(store, nil, slog.New(slog.DiscardHandler))
	if _, err := reg.StoredSince(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	reg.storedMu.Lock()
	began := reg.storedAt
	reg.storedMu.Unlock()
	if _, _, err := store.PutDefinition(ctx, "us", "name: us\ntriggers:\n  - subject: orders.us.new\nsteps:\n  - { id: a, task: echo }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// The event came at the clock reading the look began at.
	st, err := reg.StoredSince(ctx, began)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ForSubject("orders.us.new")) == 0 {
		t.Fatal("an event that came at the instant a look began was matched against that look: the definition put before it is missed")
	}
}

// A webhook whose definition a put changed (here: it now checks a
// signature) is served as the put stored it once the put answered, also
// by a part whose registry has not followed the put yet (its watch
// lags, being made again after a NATS node went down, say): an answer
// from the lagging registry would start a run of the revision before,
// for a delivery the new revision refuses (unsigned), as subject events
// and cron ticks already are looked up as stored.
func TestAWebhookChangedByAPutIsServedAsStoredByARegistryBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.ClaimWebhook(ctx, "pay", "pay", 0); err != nil {
		t.Fatal(err)
	}
	open := "name: pay\ntriggers:\n  - webhook: pay\nsteps:\n  - { id: a, task: echo }\n"
	rec, _, err := store.PutDefinition(ctx, "pay", open, "test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(store, nil, slog.New(slog.DiscardHandler))
	reg.update(rec) // it has seen revision 1; its watch is behind the next put
	signed := "name: pay\ntriggers:\n  - webhook: pay\n    secret_env: PAY_SECRET\nsteps:\n  - { id: a, task: echo }\n"
	if _, _, err := store.PutDefinition(ctx, "pay", signed, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	m, ok, err := reg.Webhook(ctx, "pay")
	if err != nil || !ok {
		t.Fatalf("Webhook(pay) = %v, %v", ok, err)
	}
	if m.Revision != 2 || m.Trigger.SecretEnv == "" {
		t.Fatalf("Webhook(pay) after the put of revision 2 answered = revision %d with secret_env %q: "+
			"a delivery without a signature starts a run of the revision before", m.Revision, m.Trigger.SecretEnv)
	}
}
