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
