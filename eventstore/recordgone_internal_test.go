package eventstore

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// A leader just elected applies the records it holds while it answers:
// a record it has not applied when it is asked for, and has applied when
// the stream's state is asked for next, is on its way, not gone. Asking
// for the record first and the state second took it for deleted (and the
// orchestrator dropped the live result or timer that named it).
func TestARecordAppliedBetweenTheReadsIsNotGone(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, natstest.Start(t).Connect(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: "d", Revision: 1}}
	seq, err := s.Append(ctx, "wf", 0, start)
	if err != nil {
		t.Fatal(err)
	}
	// The command record the input names is seq+1; the leader applies it
	// between HistoryRecordGone's two reads.
	var applied error
	s.betweenGoneReads = func() {
		_, applied = s.Append(ctx, "wf", seq, events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(101, 0).UTC(),
			WorkflowCompleted: &events.WorkflowCompleted{}})
		s.betweenGoneReads = nil
	}
	gone, err := s.HistoryRecordGone(ctx, "wf", seq+1)
	if err != nil {
		t.Fatal(err)
	}
	if applied != nil {
		t.Fatal(applied)
	}
	if gone {
		t.Fatalf("record %d, applied between the reads, reads as gone (deleted)", seq+1)
	}
}
