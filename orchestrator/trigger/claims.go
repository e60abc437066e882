package trigger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/definition"
)

// claimGrace is how long a claim stays its owner's although the owner's
// latest revision does not declare the webhook: a put claims its webhooks
// before it stores the revision that declares them.
const claimGrace = time.Minute

// WebhookTakenError says a webhook name belongs to another definition.
type WebhookTakenError struct {
	// Name is the webhook's name; Owner the definition that owns it.
	Name, Owner string
}

func (e *WebhookTakenError) Error() string {
	return fmt.Sprintf("webhook %q belongs to definition %q: a webhook name has one owner; pick another name, or put %s without it first",
		e.Name, e.Owner, e.Owner)
}

// WebhookNames returns the names of def's webhook triggers.
func WebhookNames(def *definition.Definition) []string {
	var out []string
	if def == nil {
		return nil
	}
	for _, t := range def.Triggers {
		if t.Kind == definition.TriggerWebhook {
			out = append(out, t.Webhook)
		}
	}
	return out
}

// ClaimWebhooks makes def the owner of each of its webhook names before it
// is stored, so that no two definitions answer the same name. A name
// another definition owns is refused with a *WebhookTakenError, unless
// that definition's latest revision no longer declares it and its claim
// is older than a minute (a put that failed after claiming), read on now
// (nil: time.Now): the node's clock, bounded by JetStream's, since a
// claim's time is the server's and a machine's clock a minute ahead would
// take the claim of a put still under way. reg catches definitions stored
// before webhook names had owners.
func ClaimWebhooks(ctx context.Context, store *eventstore.Store, reg *Registry, def *definition.Definition, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	for _, name := range WebhookNames(def) {
		if err := claimWebhook(ctx, store, reg, def.Name, name, now); err != nil {
			return err
		}
	}
	return nil
}

func claimWebhook(ctx context.Context, store *eventstore.Store, reg *Registry, def, name string, now func() time.Time) error {
	for range 10 {
		c, err := store.WebhookClaim(ctx, name)
		switch {
		case errors.Is(err, eventstore.ErrNotFound):
			// Unclaimed: a definition stored before names had owners may
			// still declare it.
			for _, m := range reg.webhooks(name) {
				if m.Definition == def {
					continue
				}
				yes, err := declares(ctx, store, m.Definition, name)
				if err != nil {
					return err
				}
				if yes {
					return &WebhookTakenError{Name: name, Owner: m.Definition}
				}
			}
		case err != nil:
			return err
		case c.Definition == def:
			return nil
		default:
			free, err := released(ctx, store, c, name, now())
			if err != nil {
				return err
			}
			if !free {
				return &WebhookTakenError{Name: name, Owner: c.Definition}
			}
		}
		err = store.ClaimWebhook(ctx, name, def, c.Revision)
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("webhook %q: its owner kept changing; try again", name)
}

// released reports whether claim c on webhook name is left over: it is
// older than claimGrace at now and its owner's latest revision does not
// declare the webhook.
func released(ctx context.Context, store *eventstore.Store, c eventstore.WebhookClaim, name string, now time.Time) (bool, error) {
	if now.Sub(c.Time) < claimGrace {
		return false, nil
	}
	yes, err := declares(ctx, store, c.Definition, name)
	return !yes, err
}

// declares reports whether the latest revision of definition def has
// webhook name (a revision that does not compile has no triggers).
func declares(ctx context.Context, store *eventstore.Store, def, name string) (bool, error) {
	rec, err := store.GetDefinition(ctx, def, 0)
	if errors.Is(err, eventstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	plan, err := definition.Parse([]byte(rec.Source))
	return err == nil && slices.Contains(WebhookNames(plan), name), nil
}

// ReleaseWebhooks gives up def's claims on the webhook names that its
// previous revision prev declared and def does not.
func ReleaseWebhooks(ctx context.Context, store *eventstore.Store, prev, def *definition.Definition) error {
	keep := WebhookNames(def)
	var errs []error
	for _, name := range WebhookNames(prev) {
		if !slices.Contains(keep, name) {
			errs = append(errs, store.ReleaseWebhook(ctx, name, def.Name))
		}
	}
	return errors.Join(errs...)
}
