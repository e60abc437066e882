package bench_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/bench"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
)

// TestBenchRuns runs the load tool briefly against an embedded Weft and
// checks that what it reports adds up. (Figures come from `weft bench`;
// WEFT_BENCH_N makes this a longer run.)
func TestBenchRuns(t *testing.T) {
	ns := natstest.Start(t)
	n, err := node.Start(context.Background(), node.Config{NATSURL: ns.URL(), Store: eventstore.Config{},
		Orchestrator: &orchestrator.Config{}, Executor: &executor.Config{}, Builtins: true, API: &api.Config{}, APIAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	count, conc := 200, 16
	if s := os.Getenv("WEFT_BENCH_N"); s != "" {
		count, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("WEFT_BENCH_C"); s != "" {
		conc, _ = strconv.Atoi(s)
	}
	res, err := bench.Run(context.Background(), bench.Config{Server: n.APIURL, NATSURL: ns.URL(), N: count, C: conc, Floor: true, Pipeline: true, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", res)
	if res.Workflows != count || res.Events != 8*count || res.P50ms <= 0 || res.P99ms < res.P50ms || res.FloorRatio <= 0 || res.PipelineRatio <= 0 {
		t.Fatalf("result does not add up: %+v", res)
	}
}
