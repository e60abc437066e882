package trigger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
)

func claimEnv(t *testing.T) (context.Context, *eventstore.Store, *Registry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := reg.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return ctx, store, reg
}

// hookDef returns the source and compiled form of a definition with the
// given webhooks.
func hookDef(t *testing.T, name string, hooks ...string) (string, *definition.Definition) {
	t.Helper()
	src := "name: " + name + "\n"
	if len(hooks) > 0 {
		src += "triggers:\n"
		for _, h := range hooks {
			src += "  - { webhook: " + h + " }\n"
		}
	}
	src += "steps: [ { id: s, task: echo } ]\n"
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return src, def
}

// wantTaken fails unless err says webhook name belongs to owner.
func wantTaken(t *testing.T, err error, name, owner string) {
	t.Helper()
	var taken *WebhookTakenError
	if !errors.As(err, &taken) || taken.Name != name || taken.Owner != owner {
		t.Fatalf("got %v; want webhook %q taken by %q", err, name, owner)
	}
}

// Item 5 of issue 13: of definitions claiming one webhook name at once,
// exactly one owns it.
func TestIssue13Item5_ConcurrentClaimsHaveOneWinner(t *testing.T) {
	ctx, store, reg := claimEnv(t)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		_, def := hookDef(t, fmt.Sprintf("def-%d", i), "signup")
		wg.Go(func() { errs[i] = ClaimWebhooks(ctx, store, reg, def, nil) })
	}
	wg.Wait()
	c, err := store.WebhookClaim(ctx, "signup")
	if err != nil {
		t.Fatal(err)
	}
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			if c.Definition != fmt.Sprintf("def-%d", i) {
				t.Fatalf("def-%d claimed without error but %s owns the name", i, c.Definition)
			}
			continue
		}
		wantTaken(t, err, "signup", c.Definition)
	}
	if won != 1 {
		t.Fatalf("%d definitions own the name; want 1", won)
	}
}

// Item 5 of issue 13: definitions stored before names had owners keep
// theirs; a delivery to a name two of them declare goes to its owner, or
// nowhere; a claim left by a put that never stored its definition is
// taken over once it is old.
func TestIssue13Item5_LegacyAndLeftoverClaims(t *testing.T) {
	ctx, store, reg := claimEnv(t)
	put := func(name string, hooks ...string) {
		t.Helper()
		src, _ := hookDef(t, name, hooks...)
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	waitHooks := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); len(reg.Webhooks()) != n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("registry has %d webhooks; want %d", len(reg.Webhooks()), n)
			}
		}
	}
	put("legacy-a", "old")
	waitHooks(1)
	_, newcomer := hookDef(t, "newcomer", "old")
	wantTaken(t, ClaimWebhooks(ctx, store, reg, newcomer, nil), "old", "legacy-a")
	if m, ok, err := reg.Webhook(ctx, "old"); err != nil || !ok || m.Definition != "legacy-a" {
		t.Fatalf("Webhook(old) = %v %v %v", m.Definition, ok, err)
	}

	put("legacy-b", "old")
	waitHooks(2)
	if _, ok, err := reg.Webhook(ctx, "old"); !ok || !errors.Is(err, ErrWebhookAmbiguous) {
		t.Fatalf("two unowned declarers: %v %v; want ErrWebhookAmbiguous", ok, err)
	}
	if err := store.ClaimWebhook(ctx, "old", "legacy-b", 0); err != nil {
		t.Fatal(err)
	}
	if m, _, err := reg.Webhook(ctx, "old"); err != nil || m.Definition != "legacy-b" {
		t.Fatalf("Webhook(old) = %v %v; want its owner legacy-b", m.Definition, err)
	}
	if _, ok, err := reg.Webhook(ctx, "none"); ok || err != nil {
		t.Fatalf("Webhook(none) = %v %v", ok, err)
	}

	// A put claimed "spare" and never stored its definition.
	_, ghost := hookDef(t, "ghost", "spare")
	if err := ClaimWebhooks(ctx, store, reg, ghost, nil); err != nil {
		t.Fatal(err)
	}
	_, other := hookDef(t, "other", "spare")
	wantTaken(t, ClaimWebhooks(ctx, store, reg, other, nil), "spare", "ghost")
	// Read on the clock given: one less than a minute past the claim
	// keeps it, one more takes it over.
	inHalf := func() time.Time { return time.Now().Add(30 * time.Second) }
	wantTaken(t, ClaimWebhooks(ctx, store, reg, other, inHalf), "spare", "ghost")
	inTwo := func() time.Time { return time.Now().Add(2 * time.Minute) }
	if err := ClaimWebhooks(ctx, store, reg, other, inTwo); err != nil {
		t.Fatalf("taking over a leftover claim: %v", err)
	}
	// A definition that still declares its name keeps it, however old.
	put("other", "spare")
	wantTaken(t, ClaimWebhooks(ctx, store, reg, ghost, nil), "spare", "other")

	// Releasing drops only the releaser's own claims.
	_, otherNow := hookDef(t, "other")
	_, withSpare := hookDef(t, "other", "spare", "old")
	if err := ReleaseWebhooks(ctx, store, withSpare, otherNow); err != nil {
		t.Fatal(err)
	}
	if _, err := store.WebhookClaim(ctx, "spare"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("spare after its release: %v", err)
	}
	if c, err := store.WebhookClaim(ctx, "old"); err != nil || c.Definition != "legacy-b" {
		t.Fatalf("old after another definition's release: %v %v", c, err)
	}
	if !strings.Contains((&WebhookTakenError{Name: "x", Owner: "y"}).Error(), `"y"`) {
		t.Fatal("the error does not name the owner")
	}
}
