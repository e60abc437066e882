package node_test

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/metrics"
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

// A client of the metrics listener that holds its connection open (a
// scrape cut off half sent, a port scanner) does not hold the node's
// stop: the stop is not cut short by it, and the executor's steps keep
// the time the stop gives them. A scrape ended loses nothing: the next
// one reads the same registry.
func TestAMetricsClientDoesNotHoldTheStop(t *testing.T) {
	ns := natstest.Start(t)
	n, err := node.Start(context.Background(), node.Config{
		NATSURL:      ns.URL(),
		Logger:       slog.New(slog.DiscardHandler),
		Orchestrator: &orchestrator.Config{},
		Metrics:      metrics.NewRegistry(),
		MetricsAddr:  "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(n.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /metrics HTTP/1.1\r\n")); err != nil { // and no more
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if err := n.Stop(sctx); err != nil {
		t.Fatalf("stop with a metrics connection held open: %v", err)
	}
}
