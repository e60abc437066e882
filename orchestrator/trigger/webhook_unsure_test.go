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

// One stored definition this part cannot compile (a newer version's, kept
// after a rollback, say) does not make every unknown webhook name "try
// again later" for as long as it is stored: a sender of a webhook no
// definition declares, nor claims, is told it does not exist (404), not
// 503, which senders retry for days. A name the definition that does
// not compile claimed may be its own: that one is to be tried again.
func TestAnUncompilableDefinitionDoesNotMakeEveryUnknownWebhookUnsure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
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
