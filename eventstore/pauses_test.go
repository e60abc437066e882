package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A pause is stored, listed, seen by a watcher, and ended; a watcher
// started later finds the pauses stored before it.
func TestPauses(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := s.WatchPauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.Any() {
		t.Fatal("a fresh bucket has pauses")
	}
	at := time.Unix(1000, 0).UTC()
	if err := s.PauseDefinition(ctx, "charge", eventstore.Pause{Time: at, By: "ann", Reason: "downstream down"}); err != nil {
		t.Fatal(err)
	}
	p, ok, err := s.DefinitionPause(ctx, "charge")
	if err != nil || !ok || p.By != "ann" || p.Reason != "downstream down" || !p.Time.Equal(at) {
		t.Fatalf("DefinitionPause = %+v, %v, %v", p, ok, err)
	}
	if _, ok, err := s.DefinitionPause(ctx, "other"); err != nil || ok {
		t.Fatalf("other: paused %v, %v", ok, err)
	}
	all, err := s.DefinitionPauses(ctx)
	if err != nil || len(all) != 1 || all["charge"].By != "ann" {
		t.Fatalf("DefinitionPauses = %v, %v", all, err)
	}
	waitFor(t, "the watcher to see the pause", func() bool { _, ok := w.Paused("charge"); return ok })
	later, err := s.WatchPauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := later.Paused("charge"); !ok || p.Reason != "downstream down" {
		t.Fatalf("a watcher started later: %+v, %v", p, ok)
	}
	before := time.Now().Add(-time.Second)
	for range 2 { // resuming twice is fine
		if err := s.ResumeDefinition(ctx, "charge"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the watcher to see the resume", func() bool { _, ok := w.Paused("charge"); return !ok && !w.Any() })
	if !w.LiftedAfter("charge", before) || w.LiftedAfter("other", before) {
		t.Fatal("LiftedAfter does not tell which pause ended")
	}
	if all, err := s.DefinitionPauses(ctx); err != nil || len(all) != 0 {
		t.Fatalf("after resume: %v, %v", all, err)
	}
}

// A record that ends with a step command names its definition, which the
// task delivery carries.
func TestTaskDeliveryNamesItsDefinition(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	start := events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "charge", Revision: 1}}
	cmd := events.Event{Type: events.TypeStepScheduled, Time: time.Now().UTC(),
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "t", FirstAttempt: 1}}
	seq, err := s.AppendStart(ctx, "wf", "start/wf", eventstore.AppendOpts{Owner: "o1"}, []events.Event{start, cmd})
	if err != nil {
		t.Fatal(err)
	}
	cmd.StepScheduled = &events.StepScheduled{Path: "b", Gen: 1, Task: "t", FirstAttempt: 1}
	if seq, err = s.AppendWith(ctx, "wf", seq, eventstore.AppendOpts{Definition: "charge"}, cmd); err != nil {
		t.Fatal(err)
	}
	cmd.StepScheduled = &events.StepScheduled{Path: "c", Gen: 1, Task: "t", FirstAttempt: 1}
	if _, err = s.Append(ctx, "wf", seq, cmd); err != nil {
		t.Fatal(err)
	}
	p, err := s.TaskPuller(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	if err := p.Fetch(ctx, 3, time.Second, func(d *eventstore.Delivery) {
		got[d.Task.Path] = d.Definition
		_ = d.Ack()
	}); err != nil {
		t.Fatal(err)
	}
	if got["a"] != "charge" || got["b"] != "charge" || got["c"] != "" {
		t.Fatalf("definitions of the deliveries: %v", got)
	}
	if def, err := s.DefinitionOf(ctx, "wf"); err != nil || def != "charge" {
		t.Fatalf("DefinitionOf = %q, %v", def, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
