package trigger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// A trigger's id template that maps an event onto an existing run of its
// own definition makes that run the event's (its dedup). One that maps it
// onto another definition's run does not: the event was taken as
// deduplicated, started nothing and left no trace, and a webhook answered
// 202 naming the other run. It is refused now, and so recorded.
func TestAnIDNamingAnotherDefinitionsRunIsRefused(t *testing.T) {
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	const hooked = "name: hooked\ntriggers:\n  - { webhook: h, id: \"${ event.order }\" }\nsteps:\n  - { id: gate, wait: { signal: go } }\n"
	for _, src := range []string{"name: other\nsteps:\n  - { id: gate, wait: { signal: go } }\n", hooked} {
		d, err := definition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.PutDefinition(ctx, d.Name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	defs := runs.NewDefinitions(store)
	for id, def := range map[string]string{"order-7": "other", "order-8": "hooked"} {
		if _, err := runs.Start(ctx, store, defs, runs.StartRequest{Definition: def, WorkflowID: id, RequestID: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	d, err := definition.Parse([]byte(hooked))
	if err != nil {
		t.Fatal(err)
	}
	m := trigger.Match{Definition: "hooked", Revision: 1, Trigger: d.Triggers[0]}
	fire := func(order string) (trigger.Fired, error) {
		return trigger.Fire(ctx, store, defs, m, trigger.Event{Vars: map[string]any{"event": map[string]any{"order": order}, "headers": map[string]any{}, "subject": "webhook"},
			Identity: trigger.KeyIdentity("k-" + order), Time: time.Now()})
	}
	// Control: a run of its own definition is the event's.
	if f, err := fire("order-8"); err != nil || f.WorkflowID != "order-8" || f.Started {
		t.Fatalf("an event mapped onto a run of its own definition: %+v, %v", f, err)
	}
	f, err := fire("order-7")
	var ref *trigger.RefusedError
	if !errors.As(err, &ref) || !strings.Contains(ref.Reason, `is a run of definition "other"`) {
		t.Fatalf("an event mapped onto another definition's run: %+v, %v; want it refused, naming the definition", f, err)
	}
}
