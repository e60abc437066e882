// Command weft is Weft's one binary: the server (everything in one process
// with an embedded NATS), each part on its own against an external NATS,
// and the client CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(os.Stderr, "weft:", err)
		}
		os.Exit(1)
	}
}

// run builds the command tree and executes it with args.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if h := refusedHint(err); h != "" {
		err = fmt.Errorf("%w%s", err, h)
	}
	return err
}

// refusedHint asks, for a call no server took (the connection was
// refused), whether one runs at the address the client was given; it is
// empty for any other error.
func refusedHint(err error) string {
	if connect.CodeOf(err) == connect.CodeUnavailable && errors.Is(err, syscall.ECONNREFUSED) {
		return " (is a weft server running at the address --server, or WEFT_SERVER, names?)"
	}
	return ""
}

// exactArgs is cobra.ExactArgs saying how the command is used.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("usage: %s (%d argument(s), got %d)", cmd.UseLine(), n, len(args))
		}
		return nil
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "Weft: durable workflows on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cf := &clientFlags{}
	root.PersistentFlags().StringVar(&cf.server, "server", envOr("WEFT_SERVER", "http://127.0.0.1:8080"), "Weft API address for client commands (env WEFT_SERVER)")
	root.AddCommand(serverCommands()...)
	root.AddCommand(clientCommands(cf)...)
	root.AddCommand(benchCmd(cf))
	root.AddCommand(tokenCommand())
	root.AddCommand(doctorCmd())
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
