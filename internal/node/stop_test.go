package node_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/runs"
)

// A stop whose time runs out while a step still runs hands the step back,
// and says so: an operator stopping Weft to copy its data (or a service
// manager reading the exit status) is told what ran out and that the step
// runs again, not "context deadline exceeded" once for each part.
func TestAStopCutShortSaysTheStepIsHandedBack(t *testing.T) {
	ns := natstest.Start(t)
	entered := make(chan struct{}, 1)
	n, err := node.Start(context.Background(), node.Config{
		NATSURL:      ns.URL(),
		Logger:       slog.New(slog.DiscardHandler),
		Orchestrator: &orchestrator.Config{},
		Executor:     &executor.Config{},
		Handlers: map[string]executor.Handler{"block": func(ctx context.Context, _ *executor.Task) (any, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return nil, ctx.Err()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := n.Store.PutDefinition(ctx, "slow", "name: slow\nsteps:\n  - { id: s, task: block }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := runs.Start(ctx, n.Store, n.Definitions, runs.StartRequest{Definition: "slow", WorkflowID: "slow-1", Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the step never started")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer scancel()
	err = n.Stop(sctx)
	if err == nil {
		t.Fatal("a stop cut short returned no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "executor: the stop's time ran out with steps still running; they are handed back and run again") {
		t.Errorf("stop error %q; want it to say the executor's running steps are handed back", msg)
	}
	if c := strings.Count(msg, "context deadline exceeded"); c > 1 {
		t.Errorf("stop error %q says context deadline exceeded %d times; want once at most", msg, c)
	}
}
