package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/embedded"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
)

// partFlags are the flags shared by the commands that run Weft's parts.
type partFlags struct {
	natsURL     string
	addr        string
	logLevel    string
	replicas    int
	taskAckWait time.Duration
	concurrency int
}

func (p *partFlags) register(cmd *cobra.Command, withAddr bool) {
	f := cmd.Flags()
	f.StringVar(&p.natsURL, "nats-url", envOr("WEFT_NATS_URL", ""), "NATS server URL (env WEFT_NATS_URL)")
	if withAddr {
		f.StringVar(&p.addr, "addr", "127.0.0.1:8080", "API listen address")
	}
	f.StringVar(&p.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.IntVar(&p.replicas, "replicas", 1, "replicas of Weft's streams and buckets")
	f.DurationVar(&p.taskAckWait, "task-ack-wait", 30*time.Second, "how long a silent executor keeps a step before it is redelivered")
	f.IntVar(&p.concurrency, "concurrency", 64, "handlers running at once per task type (executor)")
}

func (p *partFlags) logger(cmd *cobra.Command) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(p.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", p.logLevel)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl})), nil
}

func (p *partFlags) storeConfig() eventstore.Config {
	return eventstore.Config{Replicas: p.replicas, TaskAckWait: p.taskAckWait}
}

func serverCommands() []*cobra.Command {
	return []*cobra.Command{serverCmd(), orchestratorCmd(), executorCmd(), apiCmd()}
}

func serverCmd() *cobra.Command {
	var p partFlags
	var dataDir, natsAddr, syncMode string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run everything in one process (embedded NATS unless --nats-url)",
		Long: `Runs the API, an orchestrator and an executor with the built-in task types.
Without --nats-url it embeds a NATS server with JetStream storing in --data and
listening on --nats-addr, so outside executors and producers can connect.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := p.logger(cmd)
			if err != nil {
				return err
			}
			url := p.natsURL
			if url == "" {
				abs, err := filepath.Abs(dataDir)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(abs, 0o755); err != nil {
					return fmt.Errorf("--data %s: %w", abs, err)
				}
				if syncMode != "interval" && syncMode != "always" {
					return fmt.Errorf("--sync %q: use interval (flush on an interval; survives process crashes) or always (fsync every write; survives power loss)", syncMode)
				}
				ns, err := embedded.Start(embedded.Config{Addr: natsAddr, DataDir: abs, SyncAlways: syncMode == "always"})
				if err != nil {
					return err
				}
				defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
				url = ns.ClientURL()
				log.Info("embedded NATS ready", "url", url, "data", abs)
			}
			return runParts(cmd, log, p, node.Config{
				NATSURL:      url,
				Store:        p.storeConfig(),
				Orchestrator: &orchestrator.Config{},
				Executor:     &executor.Config{Concurrency: p.concurrency},
				Builtins:     true,
				API:          &api.Config{},
				APIAddr:      p.addr,
			})
		},
	}
	p.register(cmd, true)
	cmd.Flags().StringVar(&dataDir, "data", "weft-data", "data directory of the embedded NATS server")
	cmd.Flags().StringVar(&natsAddr, "nats-addr", "127.0.0.1:4222", "listen address of the embedded NATS server")
	cmd.Flags().StringVar(&syncMode, "sync", "interval", "embedded JetStream disk sync: interval (default; a process crash loses nothing acknowledged, a power loss can lose the last interval) or always (fsync before every acknowledgement)")
	return cmd
}

func orchestratorCmd() *cobra.Command {
	var p partFlags
	cmd := &cobra.Command{
		Use:   "orchestrator",
		Short: "Run an orchestrator against --nats-url",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := p.logger(cmd)
			if err != nil {
				return err
			}
			if p.natsURL == "" {
				return fmt.Errorf("--nats-url is required")
			}
			return runParts(cmd, log, p, node.Config{NATSURL: p.natsURL, Store: p.storeConfig(), Orchestrator: &orchestrator.Config{}})
		},
	}
	p.register(cmd, false)
	return cmd
}

func executorCmd() *cobra.Command {
	var p partFlags
	cmd := &cobra.Command{
		Use:   "executor",
		Short: "Run an executor with the built-in task types against --nats-url",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := p.logger(cmd)
			if err != nil {
				return err
			}
			if p.natsURL == "" {
				return fmt.Errorf("--nats-url is required")
			}
			return runParts(cmd, log, p, node.Config{NATSURL: p.natsURL, Store: p.storeConfig(),
				Executor: &executor.Config{Concurrency: p.concurrency}, Builtins: true})
		},
	}
	p.register(cmd, false)
	return cmd
}

func apiCmd() *cobra.Command {
	var p partFlags
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Serve the API against --nats-url",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := p.logger(cmd)
			if err != nil {
				return err
			}
			if p.natsURL == "" {
				return fmt.Errorf("--nats-url is required")
			}
			return runParts(cmd, log, p, node.Config{NATSURL: p.natsURL, Store: p.storeConfig(), API: &api.Config{}, APIAddr: p.addr})
		},
	}
	p.register(cmd, true)
	return cmd
}

// runParts starts the parts, reports where the API listens, and runs
// until the command's context ends (SIGINT/SIGTERM).
func runParts(cmd *cobra.Command, log *slog.Logger, p partFlags, cfg node.Config) error {
	ctx := cmd.Context()
	cfg.Logger = log
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	var parts []string
	if cfg.Orchestrator != nil {
		parts = append(parts, "orchestrator")
	}
	if cfg.Executor != nil {
		parts = append(parts, "executor")
	}
	if n.APIURL != "" {
		parts = append(parts, "api")
		fmt.Fprintf(cmd.OutOrStdout(), "weft API listening on %s\n", n.APIURL)
	}
	log.Info("weft running", "parts", strings.Join(parts, ","), "nats", cfg.NATSURL)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.Stop(sctx)
}
