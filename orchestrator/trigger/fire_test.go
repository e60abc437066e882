package trigger_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// The id rule names a run after its definition, its trigger and the
// event's identity; a cron run keeps the tick time readable.
func TestRunID(t *testing.T) {
	tr := &definition.Trigger{Key: "0123456789ab"}
	tick := time.Date(2026, 3, 29, 9, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	if got, want := trigger.RunID("orders", tr, trigger.TickIdentity(tick)), "orders-0123456789ab-20260329T070000Z"; got != want {
		t.Errorf("cron run id %q, want %q", got, want)
	}
	if got := trigger.RunID("orders", tr, trigger.KeyIdentity("")); got != "" {
		t.Errorf("a delivery without a key has no id of its own, got %q", got)
	}
	key := trigger.RunID("orders", tr, trigger.KeyIdentity("k1"))
	if !eventstore.ValidWorkflowID(key) || key != trigger.RunID("orders", tr, trigger.KeyIdentity("k1")) || key == trigger.RunID("orders", tr, trigger.KeyIdentity("k2")) {
		t.Errorf("webhook run id %q: want a valid id, the same for the same key only", key)
	}
	withID := &eventstore.TriggerEvent{Seq: 7, Headers: eventstore.Header{eventstore.MsgIDHeader: []string{"order-43"}}}
	bySeq := &eventstore.TriggerEvent{Seq: 7}
	a, b := trigger.MessageIdentity(withID), trigger.MessageIdentity(bySeq)
	if len(a) != 20 || len(b) != 20 || a == b {
		t.Errorf("message identities %q and %q: want 20 hex digits each, different", a, b)
	}
}

// A trigger's run records who started it: the webhook, the cron trigger's
// definition, or the subject the message came on (not the pattern).
func TestCaller(t *testing.T) {
	for _, tc := range []struct {
		tr   *definition.Trigger
		vars map[string]any
		want string
	}{
		{&definition.Trigger{Kind: definition.TriggerWebhook, Webhook: "signup"}, map[string]any{"subject": "webhook"}, "webhook:signup"},
		{&definition.Trigger{Kind: definition.TriggerCron, Cron: "@hourly"}, map[string]any{"subject": "cron"}, "cron:orders"},
		{&definition.Trigger{Kind: definition.TriggerSubject, Subject: "orders.*"}, map[string]any{"subject": "orders.created"}, "subject:orders.created"},
		{&definition.Trigger{Kind: definition.TriggerSubject, Subject: "orders.*"}, nil, "subject:orders.*"},
	} {
		m := trigger.Match{Definition: "orders", Trigger: tc.tr}
		if got := trigger.Caller(m, trigger.Event{Vars: tc.vars}); got != tc.want {
			t.Errorf("Caller(%s trigger) = %q, want %q", tc.tr.Kind, got, tc.want)
		}
	}
}
