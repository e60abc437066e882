package executor

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// A handler that returned its output before the worker's stop passed its
// deadline has made its effect: the stop's cancel, reaching the report
// still on its way (an orchestrator slow to answer), does not drop the
// outcome and give the command back to be run again.
func TestAnOutputBeingReportedWhenTheStopCancelsIsReported(t *testing.T) {
	b := newBenchWith(t, eventstore.Config{ResultReplyWait: 2 * time.Second}, map[string]Handler{
		"t": func(context.Context, *Task) (any, error) { return "done", nil },
	})
	// An orchestrator that takes the direct report and never answers.
	asked := make(chan struct{}, 1)
	sub, err := b.ns.Connect(t).Subscribe("weft.rd.>", func(*nats.Msg) {
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	b.command("wf-stop-report", "t", events.RetryPolicy{MaxAttempts: 3})
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("the result was never reported")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = b.w.Stop(stopCtx)
	if r := b.result(1); r.Outcome != events.OutcomeCompleted || r.Output != "done" {
		t.Fatalf("result %+v", r)
	}
}
