package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/node"
)

// An executor keeps its command claimed by the ack wait the consumer has,
// whatever the executor's own --task-ack-wait: here the executor is
// started with 12 s (as an operator would for long steps), the
// orchestrator with 3 s, and the orchestrator sets the task consumer to
// its own when it first dispatches the type. A 4.5 s attempt must run
// once, not again beside itself when the consumer's ack wait passes.
func TestAnAckWaitSetByAnotherPartRunsAStepOnce(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true, taskAckWait: 3 * time.Second})
	e.putDef("name: longdef\nsteps:\n  - { id: a, task: long, input: 1, timeout: 1m }\n")
	var calls atomic.Int32
	n, err := node.Start(context.Background(), node.Config{
		NATSURL:  e.ns.URL(),
		Logger:   testLogger(),
		Store:    eventstore.Config{TaskAckWait: 12 * time.Second},
		Executor: &executor.Config{},
		Handlers: map[string]executor.Handler{"long": func(ctx context.Context, _ *executor.Task) (any, error) {
			calls.Add(1)
			select {
			case <-time.After(4500 * time.Millisecond):
			case <-ctx.Done():
			}
			return "done", nil
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	id := e.start("longdef", "", "")
	w := e.waitClosed(id, 40*time.Second)
	if got := calls.Load(); got != 1 {
		t.Fatalf("one attempt's handler ran %d times at once (run %s)", got, w.GetStatus())
	}
}
