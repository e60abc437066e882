package doctor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child that cannot be read (reported unchecked) is not a child that
// does not exist: its parent, waiting for it, is not reported stuck on a
// child the check could not look at.
func TestAnUncheckedChildDoesNotMakeItsParentStuck(t *testing.T) {
	nc := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	} {
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	kid := workflow.ChildID("p", "kid", 1)
	if _, err := store.Append(ctx, "p", 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: "p", Definition: "parent", Revision: 1}},
		events.Event{Type: events.TypeChildStarted, Time: t0, ChildStarted: &events.ChildStarted{Path: "kid", Gen: 1, WorkflowID: kid, Definition: "gate"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, kid, 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: kid, Definition: "gate", Revision: 1,
			Parent: &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: 1, Created: t0}}},
		events.Event{Type: events.TypeWaitStarted, Time: t0, WaitStarted: &events.WaitStarted{Path: "gate", Signal: "go"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"p", kid} {
		if errs := store.PutSummaries(ctx, []eventstore.Summary{{ID: id, Status: "RUNNING", Created: t0, Seq: 1}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	// The child's history cannot be read (NATS does not answer for it).
	doctor.SetTestHookTry(t, func(id string) error {
		if id == kid {
			return errors.New("nats: timeout")
		}
		return nil
	})
	rep, err := doctor.Check(ctx, store, doctor.Options{All: true, Attempts: 1, Grace: time.Second, Now: func() time.Time { return time.Now().Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unchecked != 1 {
		t.Fatalf("unchecked %d, want 1 (the child): %s", rep.Unchecked, rep.Summary())
	}
	for _, r := range rep.Runs {
		if r.ID != "p" {
			continue
		}
		for _, f := range r.Findings {
			if strings.Contains(f.Reason, "does not exist") {
				t.Errorf("the parent of a child that could not be read: %s: %s", f.Kind, f.Reason)
			}
		}
	}
}
