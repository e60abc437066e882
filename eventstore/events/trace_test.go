package events_test

import (
	"bytes"
	"testing"

	"github.com/weftworks/weft/eventstore/events"
)

// A run's trace context round-trips on WorkflowStarted and StepScheduled;
// left empty it is not encoded at all, so records without one (all those
// written before it existed) read the same.
func TestTraceContextEncoding(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced := []events.Event{
		{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf-1", Definition: "d", Revision: 1, Trace: tp}},
		{Type: events.TypeStepScheduled, Time: t0, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "echo", FirstAttempt: 1, Trace: tp}},
	}
	b, err := events.Encode(traced...)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Events[0].WorkflowStarted.Trace != tp || rec.Events[1].StepScheduled.Trace != tp {
		t.Fatalf("decoded %+v %+v", rec.Events[0].WorkflowStarted, rec.Events[1].StepScheduled)
	}
	traced[0].WorkflowStarted.Trace, traced[1].StepScheduled.Trace = "", ""
	if b, err = events.Encode(traced...); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\xa2tr")) {
		t.Fatalf("an empty trace context is encoded: %x", b)
	}
}
