package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// A late write of a run's own entry that lands between DeleteRun's purge
// of the entry and its purge of the history finds the history still there
// and writes over the marker: DeleteRun takes it back once the history is
// gone. (The listing once kept the deleted run for good.)
func TestALateWriteInsideADeletionGoes(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, natstest.Start(t).Connect(t), Config{MarkerTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	start := events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "d", Revision: 1}}
	done := events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(101, 0).UTC(), WorkflowCompleted: &events.WorkflowCompleted{}}
	seq, err := s.Append(ctx, "wf", 0, start, done)
	if err != nil {
		t.Fatal(err)
	}
	sum := Summary{ID: "wf", Definition: "d", Revision: 1, Status: "COMPLETED", Created: time.Unix(100, 0).UTC(), Seq: seq}
	if errs := s.PutSummaries(ctx, []Summary{sum}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	var late error
	s.betweenPurges = func() { late = s.PutSummaries(ctx, []Summary{sum})[0] }
	if err := s.DeleteRun(ctx, "wf", 0); err != nil {
		t.Fatal(err)
	}
	if late != nil {
		t.Fatalf("the late write was refused (%v): this test no longer makes the interleaving", late)
	}
	if got, err := s.GetSummary(ctx, "wf"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted run is listed again: %+v, %v", got, err)
	}
}
