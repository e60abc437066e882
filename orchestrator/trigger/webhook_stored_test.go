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
	ctx, store := storeForHooks(t)
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

// One stored definition this part cannot compile (a newer version's, kept
// after a rollback, say) does not make every unknown webhook name "try
// again later" for as long as it is stored: a sender of a webhook no
// definition declares, nor claims, is told it does not exist (404), not
// 503, which senders retry for days. A name the definition that does
// not compile claimed may be its own: that one is to be tried again.
func TestAnUncompilableDefinitionDoesNotMakeEveryUnknownWebhookUnsure(t *testing.T) {
	ctx, store := storeForHooks(t)
	reg := trigger.NewRegistry(store, nil, slog.New(slog.DiscardHandler))
	if _, _, err := store.PutDefinition(ctx, "newer", "name: newer\nsteps: [ {id: a, frobnicate: yes} ]\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	// A newer API claims the names its definition declares before it
	// stores it.
	if err := store.ClaimWebhook(ctx, "newer-hook", "newer", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := reg.Webhook(ctx, "newer-hook"); !ok || !errors.Is(err, trigger.ErrWebhookUnsure) {
		t.Errorf("Webhook(newer-hook), claimed by a definition that does not compile here = %v, %v; want ErrWebhookUnsure", ok, err)
	}
	if _, ok, err := reg.Webhook(ctx, "nobody"); ok || err != nil {
		t.Errorf("Webhook(nobody), which no definition declares or claims = %v, %v; want not found", ok, err)
	}
}

// storeForHooks opens a store on a NATS server of the test's own, and
// returns it with a context for the test.
func storeForHooks(t *testing.T) (context.Context, *eventstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return ctx, store
}
