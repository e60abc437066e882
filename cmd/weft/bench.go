package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/bench"
	"github.com/weftworks/weft/internal/embedded"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
)

func benchCmd(cf *clientFlags) *cobra.Command {
	var (
		n, c, orchs, pollers, floorBatch      int
		file, input, natsURL, wait            string
		syncMode                              string
		floor, pipe, alsoNATS, asJSON, noProg bool
		timeout                               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure throughput and latency: start -n workflows with -c concurrent clients",
		Long: `Applies a definition (default: three sequential echo steps), runs -n workflows
with -c concurrent clients and prints workflows/s, steps/s, history events/s
and start-to-result latency. Each client starts a workflow and waits for it the
way an API client does (Connect with JSON over HTTP/1.1), then takes the next:
--wait await (the default) calls AwaitWorkflow, watch follows WatchWorkflow to
the closing event, poll calls GetWorkflow until the run is closed, and nats
watches the closing records on NATS instead (a path no API client has, for
diagnosis). --also-nats, with an API wait, also reports when NATS carried each
closing record, as a second line. A call the API could not answer (Unavailable
while it restarts, say; DeadlineExceeded when NATS did not answer in time; or
Canceled as it stops), or a start that met another write (Aborted), is made
again, a start with the same request id, as weft start does, for up to a minute,
and counted.

Without --server (or WEFT_SERVER) it runs an embedded Weft in a temporary
directory and also reports this process's CPU seconds and peak RSS. With
--server (the API to measure) --nats-url names the NATS server it uses: then history events are
counted too, and it is needed by --wait nats, --also-nats, --floor and
--pipeline; --token (or WEFT_TOKEN) and --tls-ca, --tls-cert and --tls-key
reach an API that requires them, as for the other client commands. --floor measures plain JetStream publishes of as many same-sized
records with the same storage and prints Weft's events/s as a ratio of it.
--pipeline runs as many workflows through a bare two-consumer JetStream
pipeline and prints Weft's workflows/s as a ratio of it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			server := ""
			if cmd.Flags().Changed("server") || os.Getenv("WEFT_SERVER") != "" {
				server = serverURL(cf.server)
			}
			cfg := bench.Config{N: n, C: c, Input: input, Wait: wait, AlsoNATS: alsoNATS, Pollers: pollers, Floor: floor, FloorBatch: floorBatch, Pipeline: pipe,
				Timeout: timeout, Server: server, NATSURL: natsURL}
			if err := checkBenchFlags(cfg, server != ""); err != nil {
				return err
			}
			if server != "" {
				// The API may require a token (--token, WEFT_TOKEN) or
				// TLS settings, as for the other client commands.
				rt, err := cf.transport()
				if err != nil {
					return err
				}
				cfg.Transport = keepIdle(rt, 2*c)
			}
			if !noProg {
				cfg.Progress = cmd.ErrOrStderr()
			}
			if file != "" {
				src, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				cfg.Source = string(src)
			}
			if orchs < 1 {
				return fmt.Errorf("--orchestrators %d: run at least one", orchs)
			}
			embeddedRun := server == ""
			if embeddedRun {
				stop, err := startBenchNodes(ctx, &cfg, orchs, syncMode)
				if err != nil {
					return err
				}
				defer stop()
			} else if orchs != 1 {
				return fmt.Errorf("--orchestrators is for the embedded run (without --server)")
			}
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			return printBench(cmd.OutOrStdout(), res, asJSON, embeddedRun)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "n", "n", 1000, "workflows to run")
	f.IntVarP(&c, "c", "c", 16, "concurrent clients")
	f.IntVar(&pollers, "pollers", 0, "more clients calling GetWorkflow on running workflows as fast as they are answered, while the run lasts")
	f.StringVarP(&file, "file", "f", "", "definition to run (default: three sequential echo steps)")
	f.StringVar(&input, "input", `{"n": 1}`, "input of every workflow (JSON)")
	f.StringVar(&natsURL, "nats-url", "", "NATS the measured Weft uses (with --server; needed by --wait nats, --also-nats, --floor, --pipeline)")
	f.StringVar(&syncMode, "sync", "interval", "embedded JetStream disk sync: interval or always")
	f.IntVar(&orchs, "orchestrators", 1, "orchestrators in the embedded run, sharing the work")
	f.StringVar(&wait, "wait", bench.WaitAwait, "how each client learns its run finished: "+strings.Join(bench.Waits, ", "))
	f.BoolVar(&alsoNATS, "also-nats", false, "with an API wait, also report when NATS carried each closing record")
	f.BoolVar(&floor, "floor", false, "also measure plain JetStream publishes of as many events")
	f.IntVar(&floorBatch, "floor-batch", 0, "with --floor, also publish them in atomic batches of this many (one fsync a batch under --sync always)")
	f.BoolVar(&pipe, "pipeline", false, "also run as many workflows through a bare two-consumer JetStream pipeline (no state, no checks, no API)")
	f.BoolVar(&asJSON, "json", false, "print one JSON line")
	f.BoolVar(&noProg, "quiet", false, "no progress line")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long")
	cf.register(cmd)
	return cmd
}

// keepIdle lets the HTTP transport under rt (the client flags' own, or
// the one their bearer token wraps) keep n idle connections to the
// server, one per client and call in flight, and returns rt.
func keepIdle(rt http.RoundTripper, n int) http.RoundTripper {
	if b, ok := rt.(*bearer); ok {
		keepIdle(b.next, n)
	}
	if t, ok := rt.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = n
	}
	return rt
}

// checkBenchFlags rejects a bad --wait, --also-nats with --wait nats,
// and, against a --server, flags that need NATS without --nats-url.
func checkBenchFlags(cfg bench.Config, remote bool) error {
	if !slices.Contains(bench.Waits, cfg.Wait) {
		return fmt.Errorf("--wait %q: use one of %s", cfg.Wait, strings.Join(bench.Waits, ", "))
	}
	if cfg.AlsoNATS && cfg.Wait == bench.WaitNATS {
		return fmt.Errorf("--also-nats is for the API waits (await, watch, poll): --wait nats measures on NATS already")
	}
	var needs []string
	for _, f := range []struct {
		set  bool
		name string
	}{{cfg.Wait == bench.WaitNATS, "--wait nats"}, {cfg.AlsoNATS, "--also-nats"}, {cfg.Floor, "--floor"}, {cfg.Pipeline, "--pipeline"}} {
		if f.set {
			needs = append(needs, f.name)
		}
	}
	if remote && cfg.NATSURL == "" && len(needs) > 0 {
		verb := "needs"
		if len(needs) > 1 {
			verb = "need"
		}
		return fmt.Errorf("%s %s NATS: give --nats-url, the NATS server the --server uses", strings.Join(needs, " and "), verb)
	}
	return nil
}

// startBenchNodes runs an embedded NATS server in a temporary directory
// and orchs nodes on it (the first runs every part), pointing cfg at
// them; stop shuts them down and removes the directory.
func startBenchNodes(ctx context.Context, cfg *bench.Config, orchs int, syncMode string) (stop func(), err error) {
	if syncMode != "interval" && syncMode != "always" {
		return nil, fmt.Errorf("--sync %q: use interval or always", syncMode)
	}
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	dir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	ns, err := embedded.Start(embedded.Config{Addr: "127.0.0.1:0", DataDir: dir, SyncAlways: syncMode == "always"})
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { ns.Shutdown(); ns.WaitForShutdown() })
	var nodes []*node.Node
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, nd := range nodes {
			_ = nd.Stop(sctx)
		}
	})
	// The first node runs every part; more orchestrators, each with
	// its own connection, share the work.
	for i := range orchs {
		nc := node.Config{NATSURL: ns.ClientURL(), NATSOptions: []nats.Option{nats.InProcessServer(ns)}, Store: eventstore.Config{},
			Orchestrator: &orchestrator.Config{}, Logger: slog.New(slog.DiscardHandler)}
		if i == 0 {
			nc.Executor, nc.Builtins, nc.API, nc.APIAddr = &executor.Config{}, true, &api.Config{MaxConcurrentReads: embeddedReads(false, 0)}, "127.0.0.1:0"
		}
		nd, err := node.Start(ctx, nc)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, nd)
	}
	nd := nodes[0]
	cfg.Server, cfg.NATSURL = nd.APIURL, ns.ClientURL()
	cfg.ServerMsgs = func() (int64, int64) {
		v, err := ns.Varz(nil)
		if err != nil {
			return 0, 0
		}
		return v.InMsgs, v.OutMsgs
	}
	return stop, nil
}

// printBench writes res as one JSON line or as text; the CPU and memory
// figures are left out of the text when the run was not embedded.
func printBench(w io.Writer, res bench.Result, asJSON, embeddedRun bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	if !embeddedRun {
		res.CPUSeconds, res.PeakRSSMB = 0, 0 // they describe this client, not the server
	}
	fmt.Fprint(w, res.String())
	return nil
}
