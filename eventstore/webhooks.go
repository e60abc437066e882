package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// WebhooksBucket records which definition owns each webhook name: one
// key per name, whose value is the owner's name.
const WebhooksBucket = "weft-webhooks"

// WebhookClaim is a webhook name's owner.
type WebhookClaim struct {
	// Definition owns the name.
	Definition string
	// Revision is the claim's revision in the bucket, which ClaimWebhook
	// takes to replace it.
	Revision uint64
	// Time is when the claim was written.
	Time time.Time
}

func (s *Store) openWebhooks(ctx context.Context) error {
	var err error
	if s.hooks, err = s.ensureBucket(ctx, jetstream.KeyValueConfig{
		Bucket: WebhooksBucket, Description: "Weft webhook names: the definition that owns each",
		Storage: s.cfg.Storage, Replicas: s.cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", WebhooksBucket, err)
	}
	return nil
}

// WebhookClaim returns the claim on webhook name.
//
// Errors: ErrNotFound when no definition owns it.
func (s *Store) WebhookClaim(ctx context.Context, name string) (WebhookClaim, error) {
	if !validKeyPart(name) {
		return WebhookClaim{}, fmt.Errorf("webhook %q: %w", name, ErrNotFound)
	}
	e, err := s.getKV(ctx, s.hooks, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return WebhookClaim{}, fmt.Errorf("webhook %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return WebhookClaim{}, fmt.Errorf("eventstore: webhook %q: %w", name, err)
	}
	return WebhookClaim{Definition: string(e.value), Revision: e.rev, Time: e.created}, nil
}

// ClaimWebhook makes definition def the owner of webhook name, provided
// the claim is still at revision rev (0: there is none).
//
// Errors: ErrConflict when the claim changed since it was read.
func (s *Store) ClaimWebhook(ctx context.Context, name, def string, rev uint64) error {
	if !validKeyPart(name) {
		return fmt.Errorf("eventstore: invalid webhook name %q", name)
	}
	var err error
	if rev == 0 {
		_, err = s.hooks.Create(ctx, name, []byte(def))
	} else {
		_, err = s.hooks.Update(ctx, name, []byte(def), rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists) || isConflict(err):
		return fmt.Errorf("webhook %q: %w", name, ErrConflict)
	case err != nil:
		return fmt.Errorf("eventstore: claim webhook %q: %w", name, err)
	}
	return nil
}

// ReleaseWebhook drops definition def's claim on webhook name; a claim
// another definition holds, or none, is left as it is.
func (s *Store) ReleaseWebhook(ctx context.Context, name, def string) error {
	c, err := s.WebhookClaim(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || c.Definition != def {
		return err
	}
	err = s.hooks.Delete(ctx, name, jetstream.LastRevision(c.Revision))
	if err != nil && !isConflict(err) {
		return fmt.Errorf("eventstore: release webhook %q: %w", name, err)
	}
	return nil
}
