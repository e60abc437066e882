package trigger_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// A webhook put through another process, which this registry has not
// seen yet, is found in the definitions as stored: its delivery is not
// answered "no such webhook", which many senders never retry. A name no
// definition declares is still unknown.
func TestAWebhookPutElsewhereIsFoundBeforeTheRegistrySeesIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A registry that loaded the definitions before the put, and has
	// not followed it yet.
	reg := trigger.NewRegistry(store, nil, slog.New(slog.DiscardHandler))
	src := "name: signup\ntriggers:\n  - webhook: new-signup\nsteps:\n  - { id: a, task: echo }\n"
	// Put as the API puts it: its webhook names claimed first.
	if err := store.ClaimWebhook(ctx, "new-signup", "signup", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "signup", src, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	m, ok, err := reg.Webhook(ctx, "new-signup")
	if err != nil || !ok || m.Definition != "signup" || m.Revision != 1 {
		t.Fatalf("Webhook(new-signup) = %+v, %v, %v; want signup revision 1", m, ok, err)
	}
	if _, ok, err := reg.Webhook(ctx, "nobody"); ok || err != nil {
		t.Fatalf("Webhook(nobody) = %v, %v; want not found", ok, err)
	}
	// A stored definition this part cannot compile may declare it: the
	// delivery is to be tried again, not refused.
	if _, _, err := store.PutDefinition(ctx, "newer", "name: newer\nsteps: [ {id: a, frobnicate: yes} ]\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// (It claimed the name: a put claims its webhooks before it stores
	// them.)
	if err := store.ClaimWebhook(ctx, "nobody", "newer", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := reg.Webhook(ctx, "nobody"); !ok || !errors.Is(err, trigger.ErrWebhookUnsure) {
		t.Fatalf("Webhook(nobody) beside a definition that does not compile = %v, %v; want ErrWebhookUnsure", ok, err)
	}
}
