package e2e

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator/api"
)

// A node whose API address is taken fails to start: it must not take and
// run step commands on its way there (a supervisor restarting it in a
// loop would run, cut short and hand back the same steps again and again).
func TestANodeWhoseAddressIsTakenRunsNoStep(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef("name: slowdef\nsteps:\n  - { id: a, task: slow, input: 1 }\n")
	id := e.start("slowdef", "r1", "")
	// The command is stored before the second node starts.
	e.waitStep(id, "a", weftv1.StepStatus_STEP_STATUS_RUNNING)

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var ran atomic.Int32
	cfg := node.Config{
		NATSURL:  e.ns.URL(),
		Logger:   testLogger(),
		Executor: &executor.Config{},
		Handlers: map[string]executor.Handler{"slow": func(ctx context.Context, _ *executor.Task) (any, error) {
			ran.Add(1)
			return "done", nil
		}},
		API:     &api.Config{},
		APIAddr: taken.Addr().String(),
	}
	n, err := node.Start(context.Background(), cfg)
	if err == nil {
		_ = n.Stop(context.Background())
		t.Fatal("node started on a taken address")
	}
	t.Logf("start failed as it should: %v", err)
	if got := ran.Load(); got != 0 {
		t.Fatalf("a node that failed to start (%v) ran %d step attempt(s) first", err, got)
	}
}
