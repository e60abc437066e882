// Command weft-chaos runs Weft's chaos proof: a 3-node NATS cluster, two
// orchestrators, two executors and an API as separate processes, a steady
// stream of workflows against an outside ledger, and a kill -9 of a random
// part every few seconds. The workflows cover every construct of the
// language (-shapes picks some). It prints one summary line and exits with
// status 1 when any workflow did not end as its definition must, or any
// effect or signal was lost or any decision was recorded twice.
//
//	go run ./cmd/weft-chaos -n 5000 -duration 10m -seed 1
//
// The hidden subcommand executor (weft-chaos executor --nats-url URL ...)
// is an executor of the task type of the beat shape, a Go executor built
// on package executor as a user's is; the harness runs it beside Weft's
// own and kills it as it kills them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftworks/weft/internal/chaos"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "executor" {
		beatExecutor(os.Args[2:])
		return
	}
	var cfg chaos.Config
	flag.IntVar(&cfg.Workflows, "n", 500, "number of workflows to start")
	flag.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "time over which the workflows are started, at a steady rate, while parts are killed")
	flag.DurationVar(&cfg.KillEvery, "kill-every", 5*time.Second, "time between two kills")
	flag.Int64Var(&cfg.Seed, "seed", 1, "seed of the kills, pauses and injected failures")
	flag.StringVar(&cfg.Dir, "dir", "", "run directory for store dirs, logs and reports (default: a temporary directory)")
	flag.BoolVar(&cfg.KeepLogs, "keep", false, "keep the run directory after a successful run (a failed run always keeps it)")
	flag.Float64Var(&cfg.FailRate, "fail-rate", 0.2, "fraction of the ledger's answers that are 503")
	flag.DurationVar(&cfg.Settle, "settle", 5*time.Minute, "how long after the last start every workflow has to close")
	shapes := flag.String("shapes", "all", "comma-separated workflow shapes to run: seq,fanout,wait,child,branches,each,control,waits,cancel,redrive,trigger,cron,sharedsignal,redrivecaught,retention,searched,suspended,queued,paused,limited,ratelimited,deadline,tasktimeout,beat,chain")
	quiet := flag.Bool("q", false, "print only the summary line")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "weft-chaos: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	var err error
	if cfg.Shapes, err = chaos.ParseShapes(*shapes); err != nil {
		fmt.Fprintf(os.Stderr, "weft-chaos: -shapes: %v\n", err)
		os.Exit(2)
	}
	if cfg.FailRate == 0 {
		cfg.FailRate = -1 // the Config's zero value means the default
	}
	logger := log.New(os.Stderr, "", log.Ltime)
	if !*quiet {
		cfg.Logf = logger.Printf
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	h, err := chaos.New(cfg)
	if err != nil {
		logger.Fatal(err)
	}
	res, err := h.Run(ctx)
	if res != nil {
		fmt.Println(res.Summary())
		for _, n := range res.Notes {
			fmt.Println("note: " + n)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Fprintf(os.Stderr, "logs and reports: %s\n", h.Dir())
		os.Exit(1)
	}
}

// beatExecutor runs the hidden executor subcommand until SIGINT or SIGTERM.
func beatExecutor(args []string) {
	fs := flag.NewFlagSet("weft-chaos executor", flag.ExitOnError)
	var cfg chaos.BeatExecutorConfig
	fs.StringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	fs.IntVar(&cfg.Store.Replicas, "replicas", 0, "replicas of Weft's streams (as Weft's parts are given)")
	fs.DurationVar(&cfg.Store.TaskAckWait, "task-ack-wait", 0, "task ack wait (as Weft's parts are given)")
	fs.Func("clock-epoch", "epoch (RFC 3339) of the flow control clock, which runs fast from it (default: the wall clock)", func(s string) (err error) {
		cfg.ClockEpoch, err = time.Parse(time.RFC3339Nano, s)
		return err
	})
	_ = fs.Parse(args)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := chaos.RunBeatExecutor(ctx, cfg); err != nil {
		cfg.Logger.Error("executor stopped", "err", err)
		os.Exit(1)
	}
}
