package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// An executor's report that an attempt is held by its flow control is
// text shown by GetWorkflow (the step's waiting_for) and GetHistory (the
// StepHeld event's reason and detail), like a failure's: made valid UTF-8
// and cut to a bound when recorded, so that a report from any executor
// never makes the run unreadable.
func TestAHeldReportFromAnyExecutorReadsBack(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: manual-held
steps:
  - { id: a, task: manual }
`)
	for name, held := range map[string]events.Error{
		"latin1": {Type: "concurrency", Message: "key caf\xe9 is full"},
		"huge":   {Type: "concurrency", Message: strings.Repeat("x", 200_000)},
		"type":   {Type: "rate\xff" + strings.Repeat("y", 10_000), Message: "held"},
	} {
		id := e.start("manual-held", "held-"+name, `{}`)
		cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "a" })
		err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
			Outcome: events.OutcomeHeld, Error: &held, Time: time.Now().UTC(), Cmd: cmd})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
			if err != nil {
				t.Fatalf("%s: GetWorkflow: %v", name, err)
			}
			if s := resp.Msg.Workflow.Steps[0]; s.WaitingFor != "" {
				if len(s.WaitingFor) > 20_000 {
					t.Fatalf("%s: waiting_for is %d bytes", name, len(s.WaitingFor))
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the held report was not recorded", name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		resp, err := e.wf.GetHistory(ctx(t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id}))
		if err != nil {
			t.Fatalf("%s: GetHistory: %v", name, err)
		}
		if n := len(resp.Msg.Events); n < 3 || resp.Msg.Events[n-1].Type != string(events.TypeStepHeld) {
			t.Fatalf("%s: history %v", name, types(resp.Msg.Events))
		}
	}
}
