package bench_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
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

// TestBenchRuns runs the load tool briefly in each wait mode against an
// embedded Weft and checks that what it reports adds up. (Figures come
// from `weft bench`; WEFT_BENCH_N and WEFT_BENCH_C make these longer runs.)
func TestBenchRuns(t *testing.T) {
	ns, n := startWeft(t)
	count, conc := 120, 16
	if s := os.Getenv("WEFT_BENCH_N"); s != "" {
		count, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("WEFT_BENCH_C"); s != "" {
		conc, _ = strconv.Atoi(s)
	}
	for _, tc := range []struct {
		name string
		cfg  bench.Config
	}{
		// Await reports the NATS side too, and the floor and pipeline.
		{"await", bench.Config{Wait: bench.WaitAwait, NATSURL: ns.URL(), AlsoNATS: true, Floor: true, Pipeline: true}},
		{"watch", bench.Config{Wait: bench.WaitWatch, NATSURL: ns.URL()}},
		// Poll runs with no NATS at all, so no events are counted.
		{"poll", bench.Config{Wait: bench.WaitPoll}},
		{"nats", bench.Config{Wait: bench.WaitNATS, NATSURL: ns.URL()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Server, cfg.N, cfg.C, cfg.Timeout = n.APIURL, count, conc, 2*time.Minute
			res, err := bench.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", res)
			checkResult(t, cfg, res)
		})
	}
}

// startWeft runs NATS and every part of Weft, the API on a loopback
// port, until the test ends.
func startWeft(t *testing.T) (*natstest.Server, *node.Node) {
	t.Helper()
	ns := natstest.Start(t)
	n, err := node.Start(context.Background(), node.Config{NATSURL: ns.URL(), Store: eventstore.Config{},
		Orchestrator: &orchestrator.Config{}, Executor: &executor.Config{}, Builtins: true, API: &api.Config{}, APIAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return ns, n
}

// checkResult fails t unless res adds up for a run of cfg.
func checkResult(t *testing.T, cfg bench.Config, res bench.Result) {
	t.Helper()
	events := 0
	if cfg.NATSURL != "" {
		events = 8 * cfg.N // three steps of two events each, started and completed
	}
	if res.Workflows != cfg.N || res.Wait != cfg.Wait || res.Events != events || res.P50ms <= 0 || res.P99ms < res.P50ms || res.WorkflowsPerS <= 0 {
		t.Fatalf("result does not add up: %+v", res)
	}
	if (res.NATSWorkflowsPerS > 0) != cfg.AlsoNATS || (cfg.AlsoNATS && (res.NATSP50ms <= 0 || res.NATSP99ms < res.NATSP50ms)) {
		t.Fatalf("NATS figures do not fit AlsoNATS %v: %+v", cfg.AlsoNATS, res)
	}
	if (res.FloorRatio > 0) != cfg.Floor || (res.PipelineRatio > 0) != cfg.Pipeline {
		t.Fatalf("floor or pipeline figures do not fit the config: %+v", res)
	}
	if first, _, _ := strings.Cut(res.String(), "\n"); !strings.Contains(strings.ToLower(first), cfg.Wait) {
		t.Fatalf("first line does not name the wait mode %s:\n%s", cfg.Wait, res)
	}
}

// TestBenchConfigNeedsNATS: the modes that observe or measure NATS fail
// without NATSURL, before any workflow starts.
func TestBenchConfigNeedsNATS(t *testing.T) {
	for _, cfg := range []bench.Config{
		{Wait: bench.WaitNATS},
		{AlsoNATS: true},
		{Floor: true},
		{Pipeline: true},
		{Wait: "sleep", NATSURL: "nats://127.0.0.1:1"},
		{Wait: bench.WaitNATS, AlsoNATS: true, NATSURL: "nats://127.0.0.1:1"},
	} {
		cfg.Server = "http://127.0.0.1:1"
		if _, err := bench.Run(context.Background(), cfg); err == nil || !strings.HasPrefix(err.Error(), "bench: ") || strings.Contains(err.Error(), "connect") {
			t.Errorf("%+v: err %v, want a config error", cfg, err)
		}
	}
}

// An API answering Unavailable for a while (a restart behind a balancer,
// say) does not stop the bench: each client makes its call again, the
// starts by their request ids, so every run is measured once and the
// calls made again are counted.
func TestBenchRidesOutUnavailable(t *testing.T) {
	// In front of the API: from the 10th call to the 40th, 503 (which
	// Connect reads as Unavailable); before and after, the API.
	var calls atomic.Int64
	res, err := benchBehind(t, 40, func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if c := calls.Add(1); c >= 10 && c < 40 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.MadeAgain != 30 || !strings.Contains(res.String(), "made again: 30 calls the API could not answer") {
		t.Fatalf("calls made again: %d, want 30\n%s", res.MadeAgain, res)
	}
}

// A start whose answer is lost (NATS did not answer the API in time; or
// the API stopped: Canceled) may have been made: the bench makes it again
// by its request id, as weft start does, rather than stopping the run
// with the answer's error; each run is started and measured once.
func TestBenchMakesAStartWhoseAnswerWasLostAgain(t *testing.T) {
	// In front of the API: the first 5 starts are made, and answered as if
	// NATS had not answered in time.
	var starts atomic.Int64
	res, err := benchBehind(t, 20, func(w http.ResponseWriter, r *http.Request, api http.Handler) bool {
		if !strings.HasSuffix(r.URL.Path, "/StartWorkflow") || starts.Add(1) > 5 {
			return false
		}
		api.ServeHTTP(httptest.NewRecorder(), r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"code":"deadline_exceeded","message":"eventstore: append: context deadline exceeded"}`))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.MadeAgain != 5 {
		t.Fatalf("calls made again: %d, want 5\n%s", res.MadeAgain, res)
	}
}

// benchBehind runs n workflows with 4 clients against an embedded Weft
// through a server in front of its API, which passes each call on to api
// unless answer answers it (and returns true); it checks that the result
// adds up (each run's events once).
func benchBehind(t *testing.T, n int, answer func(w http.ResponseWriter, r *http.Request, api http.Handler) bool) (bench.Result, error) {
	t.Helper()
	ns, weft := startWeft(t)
	target, err := url.Parse(weft.APIURL)
	if err != nil {
		t.Fatal(err)
	}
	api := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer(w, r, api) {
			api.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	cfg := bench.Config{Server: front.URL, N: n, C: 4, Timeout: 2 * time.Minute, Wait: bench.WaitAwait, NATSURL: ns.URL()}
	res, err := bench.Run(context.Background(), cfg)
	if err == nil {
		checkResult(t, cfg, res)
	}
	return res, err
}
