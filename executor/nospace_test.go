package executor

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// While JetStream has no room for a result, the command is given back and
// its handler runs again on each delivery; those come ever further apart
// (they came every 2.5 s, so during an outage of an hour an http step
// called its service some 1,400 times). Once room is made, the result is
// reported: nothing is lost.
func TestAnUnreportableResultIsRunAgainEverLessOften(t *testing.T) {
	ns := natstest.StartWith(t, func(o *server.Options) { o.JetStreamMaxStore = 8 << 20 })
	var runs atomic.Int32
	filled := make(chan struct{})
	b := newBenchOn(t, ns, eventstore.Config{ResultReplyWait: -1}, Config{}, map[string]Handler{"once": func(ctx context.Context, _ *Task) (any, error) {
		if runs.Add(1) == 1 {
			select {
			case <-filled:
			case <-ctx.Done():
			}
		}
		return "ok", nil
	}})
	b.command("wf-full", "once", events.RetryPolicy{MaxAttempts: 3})
	for deadline := time.Now().Add(10 * time.Second); runs.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the handler never ran")
		}
	}
	makeRoom := natstest.Fill(t, ns.Connect(t))
	close(filled)
	// Its deliveries come 1, 2, 4 and 8 s apart (after the report's own
	// tries, 1.5 s): 4 runs within 16 s, where a delivery every second
	// made 6 or 7.
	for deadline := time.Now().Add(16 * time.Second); time.Now().Before(deadline) && runs.Load() <= 4; time.Sleep(20 * time.Millisecond) {
	}
	if n := runs.Load(); n > 4 {
		t.Errorf("the handler ran %d times in 16 s while its result could not be stored; want at most 4", n)
	}
	makeRoom()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := b.js.Stream(context.Background(), eventstore.ResultsStream)
		if err != nil {
			t.Fatal(err)
		}
		if r.CachedInfo().State.Msgs > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no result reported once room was made (the handler ran %d times)", runs.Load())
		}
	}
}
