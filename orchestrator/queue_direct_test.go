package orchestrator

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A run of a definition with concurrency is queued by its first decision,
// which an orchestrator never records together with the start: offered
// it directly, the orchestrator loaded the definition, decided and
// declined, and only then did the start go the history stream's way, a
// round trip and a decision lost on every such start. Such a start is not
// offered; one of a definition without concurrency still is.
func TestAStartOfAQueuedDefinitionIsNotOfferedDirectly(t *testing.T) {
	r := newRig(t)
	store, err := eventstore.Open(r.ctx, r.ns.Connect(t), eventstore.Config{}) // starts offered directly
	if err != nil {
		t.Fatal(err)
	}
	r.store = store
	r.putDef("q", "name: q\nconcurrency: { limit: 1 }\nsteps:\n  - { id: a, task: work }\n")
	r.putDef("p", "name: p\nsteps:\n  - { id: a, task: work }\n")
	r.run()
	var offered atomic.Int64
	nc := r.ns.Connect(t)
	sub, err := nc.Subscribe("weft.ds.>", func(*nats.Msg) { offered.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	defs := runs.NewDefinitions(store)
	if _, err := runs.Start(r.ctx, store, defs, runs.StartRequest{Definition: "q", WorkflowID: "queued", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the run queued", func() bool {
		st, err := runs.ReadFromSnapshot(r.ctx, store, "queued")
		if err != nil {
			return false
		}
		runs.FoldMessages(st.State, st.Msgs)
		return st.State.Shown() == workflow.StatusRunning || st.State.Shown() == workflow.StatusQueued
	})
	if n := offered.Load(); n != 0 {
		t.Errorf("a start of a definition with concurrency was offered to the orchestrators directly %d time(s)", n)
	}
	if _, err := runs.Start(r.ctx, store, defs, runs.StartRequest{Definition: "p", WorkflowID: "plain", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the plain start offered directly", func() bool { return offered.Load() == 1 })
}
