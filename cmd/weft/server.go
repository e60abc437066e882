package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/executor/builtin"
	"github.com/weftworks/weft/internal/embedded"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/internal/telemetry"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/definition"
)

// partFlags are the flags shared by the commands that run Weft's parts.
type partFlags struct {
	natsURL     string
	addr        string
	logLevel    string
	logFormat   string
	replicas    int
	taskAckWait time.Duration
	concurrency int
	// maxReads bounds the read calls the API answers at once (api.Config.MaxConcurrentReads).
	maxReads    int
	pprofAddr   string
	metricsAddr string

	// NATS client credentials, for an external cluster.
	natsCreds, natsTLSCA, natsUser, natsPassword string
	// API security (commands that serve the API).
	authTokens, tlsCert, tlsKey, tlsClientCA string
	// publishAllow: reserved subjects nats.publish may reach (executor, API).
	publishAllow []string
	// httpDeny: address ranges the http task may not connect to
	// (executor); httpDenyRanges parsed from it before the command runs.
	httpDeny       []string
	httpDenyRanges []netip.Prefix
	// ignoresConcurrency: the command takes --concurrency only to warn
	// that it bounds nothing there (orchestrator, API).
	ignoresConcurrency bool
}

func (p *partFlags) register(cmd *cobra.Command, withAddr bool) {
	f := cmd.Flags()
	p.registerNATS(cmd, envOr("WEFT_NATS_URL", ""))
	if withAddr {
		f.StringVar(&p.addr, "addr", "127.0.0.1:8080", "API listen address")
		f.StringVar(&p.authTokens, "auth-tokens", "", "`file` of bearer tokens the API accepts, one name:<sha256 hex> a line (see weft token create); default: no authentication")
		f.StringVar(&p.tlsCert, "tls-cert", "", "PEM certificate (chain) file: serve the API over HTTPS (needs --tls-key)")
		f.StringVar(&p.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
		f.StringVar(&p.tlsClientCA, "tls-client-ca", "", "PEM file of CA certificates: require API clients to present a certificate they signed (mTLS)")
		f.IntVar(&p.maxReads, "max-reads", 0, "reads of runs (GetWorkflow, GetHistory) the API answers at once, and as many of the listing (ListWorkflows, CountWorkflows); more wait their turn, so fast pollers cannot take the CPU runs need; 0: no bound (default: one a core with the embedded NATS server, where a read is CPU work; no bound with --nats-url, where it mostly waits on the network)")
	}
	f.StringVar(&p.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&p.logFormat, "log-format", "text", "log format: text (key=value) or json (one object a line)")
	f.IntVar(&p.replicas, "replicas", 0, "replicas of Weft's streams and buckets (default: 3 when NATS is a cluster, else 1)")
	f.DurationVar(&p.taskAckWait, "task-ack-wait", 30*time.Second, "how long a silent executor keeps a step before it is redelivered")
	f.StringVar(&p.pprofAddr, "pprof", "", "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060; default: off")
	metricsHelp := "serve Prometheus metrics at GET /metrics on this address, e.g. 127.0.0.1:9090; default: off"
	if withAddr {
		metricsHelp = "serve Prometheus metrics at GET /metrics on this address instead of on the API's (--addr), e.g. 127.0.0.1:9090"
	}
	f.StringVar(&p.metricsAddr, "metrics-addr", "", metricsHelp)
}

// registerPublishAllow adds --publish-allow, for the commands that run
// an executor or check definitions.
func (p *partFlags) registerPublishAllow(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&p.publishAllow, "publish-allow", nil, "subject `pattern`s (wildcards * and >; repeat the flag or separate with commas) that nats.publish steps may send to although they start with $, _INBOX. or weft., which belong to NATS and Weft; default: none. weft api checks literal subjects at put time: give it the executors' list")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if err := builtin.CheckPublishAllow(p.publishAllow); err != nil {
			return fmt.Errorf("--publish-allow: %w", err)
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// registerConcurrency adds --concurrency, for the commands that run an
// executor: the orchestrator and the API have no handlers to bound.
func (p *partFlags) registerConcurrency(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.concurrency, "concurrency", 64, "handlers running at once per task type (executor)")
}

// registerIgnoredConcurrency keeps --concurrency on the commands that
// run no executor, where earlier versions took it and it bounded
// nothing: it is hidden, and warned of in the log (in its --log-format,
// on standard error), so that a command line of an earlier version still
// starts.
func (p *partFlags) registerIgnoredConcurrency(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.concurrency, "concurrency", 64, "")
	_ = cmd.Flags().MarkHidden("concurrency")
	p.ignoresConcurrency = true
}

// registerHTTPDeny adds --http-deny, for the commands that run an
// executor.
func (p *partFlags) registerHTTPDeny(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&p.httpDeny, "http-deny", nil, "address `range`s in CIDR notation (or single addresses; repeat the flag or separate with commas) that http steps may not connect to, e.g. 169.254.169.254/32,10.0.0.0/8,127.0.0.0/8,::1/128. Checked on the address dialed, so names resolving into a range and redirects are refused too (error type denied); with it, HTTP_PROXY and HTTPS_PROXY are ignored. Default: none")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		ranges, err := builtin.ParseHTTPDeny(p.httpDeny)
		if err != nil {
			return fmt.Errorf("--http-deny: %w", err)
		}
		p.httpDenyRanges = ranges
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}

// builtinConfig is the built-in task types' configuration from the flags.
func (p *partFlags) builtinConfig() builtin.Config {
	return builtin.Config{PublishAllow: p.publishAllow, HTTPDeny: p.httpDenyRanges}
}

// registerNATS adds the flags that say how to reach NATS: --nats-url
// (default url) and its credentials.
func (p *partFlags) registerNATS(cmd *cobra.Command, url string) {
	f := cmd.Flags()
	f.StringVar(&p.natsURL, "nats-url", url, "NATS server URL (env WEFT_NATS_URL)")
	f.StringVar(&p.natsCreds, "nats-creds", "", "NATS credentials file (JWT and NKey seed) for --nats-url")
	f.StringVar(&p.natsTLSCA, "nats-tls-ca", "", "PEM file of CA certificates to trust for --nats-url's TLS")
	f.StringVar(&p.natsUser, "nats-user", "", "NATS user name for --nats-url (password from --nats-password or WEFT_NATS_PASSWORD)")
	f.StringVar(&p.natsPassword, "nats-password", "", "NATS password for --nats-user (env WEFT_NATS_PASSWORD)")
}

// servePprof serves the Go runtime's profiles on addr, apart from the API.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	var h http.Handler = mux
	if t, ok := ln.Addr().(*net.TCPAddr); ok && t.IP.IsLoopback() {
		// Like the API open on a loopback address: a web page whose name
		// an attacker rebinds to 127.0.0.1 would otherwise read the
		// profiles and the command line (--nats-password among it) from
		// the browser of someone on this machine. It names its own host.
		h = api.RequireLoopbackHost(mux)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiles served", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() { _ = srv.Close() }, nil
}

// cmdline serves the command line as pprof.Cmdline does (arguments
// separated by NUL bytes), with its secrets left out: the value of
// --nats-password and the password or token of a URL's user
// (nats://user:pw@host, nats://token@host).
// Whatever reaches the profiles' address reads it, and an http step runs
// on this host unless the operator denies loopback (--http-deny).
func cmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redactArgs(os.Args), "\x00"))
}

// redacted stands for a secret redactArgs leaves out.
const redacted = "REDACTED"

// urlUser finds a URL's user: "://user:password@" or "://token@" (NATS
// takes a user without a password for a token). The host follows the
// last '@' before the path, as in net/url: a password may hold '@'.
var urlUser = regexp.MustCompile(`://([^/\s]*)@`)

// redactArgs returns args with the value of every --nats-password (as the
// next argument or after '=') and the passwords and tokens of URLs
// replaced by redacted.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		switch {
		case i > 0 && args[i-1] == "--nats-password":
			a = redacted
		case strings.HasPrefix(a, "--nats-password="):
			a = "--nats-password=" + redacted
		}
		out[i] = redactURLs(a)
	}
	return out
}

// redactURLs returns s with the passwords and tokens of the URLs in it
// replaced by redacted.
func redactURLs(s string) string {
	return urlUser.ReplaceAllStringFunc(s, func(m string) string {
		if user, _, ok := strings.Cut(m[len("://"):len(m)-1], ":"); ok {
			return "://" + user + ":" + redacted + "@"
		}
		return "://" + redacted + "@"
	})
}

func (p *partFlags) logger(cmd *cobra.Command) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(p.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", p.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch p.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", p.logFormat)
}

func (p *partFlags) storeConfig() eventstore.Config {
	return eventstore.Config{Replicas: p.replicas, TaskAckWait: p.taskAckWait}
}

// natsOptions returns the NATS connection options for the credential
// flags; they need --nats-url, as the embedded server has no credentials.
func (p *partFlags) natsOptions() ([]nats.Option, error) {
	password := p.natsPassword
	if password == "" {
		password = os.Getenv("WEFT_NATS_PASSWORD")
	}
	if p.natsURL == "" {
		for _, f := range [][2]string{{"--nats-creds", p.natsCreds}, {"--nats-tls-ca", p.natsTLSCA}, {"--nats-user", p.natsUser}, {"--nats-password", p.natsPassword}} {
			if f[1] != "" {
				return nil, fmt.Errorf("%s needs --nats-url (the embedded NATS server takes no credentials)", f[0])
			}
		}
		return nil, nil
	}
	var opts []nats.Option
	if p.natsCreds != "" {
		if p.natsUser != "" {
			return nil, errors.New("use --nats-creds or --nats-user, not both")
		}
		if _, err := os.Stat(p.natsCreds); err != nil {
			return nil, fmt.Errorf("--nats-creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(p.natsCreds))
	}
	if p.natsUser != "" {
		opts = append(opts, nats.UserInfo(p.natsUser, password))
	} else if p.natsPassword != "" {
		return nil, errors.New("--nats-password needs --nats-user")
	}
	if p.natsTLSCA != "" {
		if _, err := os.Stat(p.natsTLSCA); err != nil {
			return nil, fmt.Errorf("--nats-tls-ca: %w", err)
		}
		opts = append(opts, nats.RootCAs(p.natsTLSCA))
	}
	return opts, nil
}

// embeddedReads is the bound on reads of an API beside an embedded NATS
// server: --max-reads when given, else one a core. Its reads are the
// process's own CPU work, which pollers would take from the runs.
func embeddedReads(given bool, maxReads int) int {
	if given {
		return maxReads
	}
	return runtime.GOMAXPROCS(0)
}

// apiSecurity loads the API's tokens and TLS configuration from the flags.
func (p *partFlags) apiSecurity() (*api.Config, *tls.Config, error) {
	if p.maxReads < 0 {
		return nil, nil, fmt.Errorf("--max-reads %d: give 0 (no bound) or the number of reads of each kind answered at once", p.maxReads)
	}
	cfg := &api.Config{PublishAllow: p.publishAllow, MaxConcurrentReads: p.maxReads}
	if p.authTokens != "" {
		tokens, err := api.LoadTokens(p.authTokens)
		if err != nil {
			return nil, nil, fmt.Errorf("--auth-tokens: %w", err)
		}
		cfg.Tokens = tokens
	}
	tlsCfg, err := serverTLS(p.tlsCert, p.tlsKey, p.tlsClientCA)
	return cfg, tlsCfg, err
}

// serverTLS builds the API's TLS configuration: nil without a certificate;
// with clientCA, clients must present a certificate it signed.
func serverTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	switch {
	case certFile == "" && keyFile == "":
		if clientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := loadCertPool(clientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// loadCertPool reads a PEM file of CA certificates.
func loadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates", file)
	}
	return pool, nil
}

func serverCommands() []*cobra.Command {
	return []*cobra.Command{serverCmd(), orchestratorCmd(), executorCmd(), apiCmd()}
}

func serverCmd() *cobra.Command {
	var p partFlags
	var dataDir, natsAddr, syncMode string
	var o orchFlags
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
			natsOpts, err := p.natsOptions()
			if err != nil {
				return err
			}
			apiCfg, apiTLS, err := p.apiSecurity()
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
				if p.replicas > 1 {
					return fmt.Errorf("--replicas %d: the embedded NATS server is a single server and keeps one copy; give --nats-url of a cluster for more", p.replicas)
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
				// The parts in this process reach it over an in-memory
				// pipe: no loopback socket, no syscalls per message.
				natsOpts = append(natsOpts, nats.InProcessServer(ns))
				apiCfg.MaxConcurrentReads = embeddedReads(cmd.Flags().Changed("max-reads"), p.maxReads)
				log.Info("embedded NATS ready", "url", url, "data", abs)
			}
			return runParts(cmd, log, p, node.Config{
				NATSURL:      url,
				NATSOptions:  natsOpts,
				Store:        p.storeConfig(),
				Orchestrator: o.config(),
				Executor:     &executor.Config{Concurrency: p.concurrency},
				Builtins:     true,
				Builtin:      p.builtinConfig(),
				API:          apiCfg,
				APIAddr:      p.addr,
				APITLS:       apiTLS,
			})
		},
	}
	p.register(cmd, true)
	o.register(cmd)
	p.registerPublishAllow(cmd)
	p.registerHTTPDeny(cmd)
	p.registerConcurrency(cmd)
	cmd.Flags().StringVar(&dataDir, "data", "weft-data", "data directory of the embedded NATS server")
	cmd.Flags().StringVar(&natsAddr, "nats-addr", "127.0.0.1:4222", "listen address of the embedded NATS server")
	cmd.Flags().StringVar(&syncMode, "sync", "interval", "embedded JetStream disk sync: interval (default; a process crash loses nothing acknowledged, a power loss can lose the last interval) or always (fsync before every acknowledgement)")
	cmd.RunE = p.logFailure(cmd.RunE)
	return cmd
}

// orchFlags are the orchestrator's flags.
type orchFlags struct {
	snapEvery, maxHistory int
	maxChildDepth         int
	cacheMiB              int
	retention             string
}

// register adds --snapshot-every, --max-history-events,
// --max-child-depth, --cache-mib and --retention to cmd.
func (o *orchFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&o.snapEvery, "snapshot-every", 1000, "store a running workflow's state as a snapshot each time its history grows by this many events (and a tenth), so loading it again reads only the records after it; negative: never")
	cmd.Flags().IntVar(&o.maxHistory, "max-history-events", 100000, "fail a workflow (error type limit) whose history would grow past this many events")
	cmd.Flags().IntVar(&o.maxChildDepth, "max-child-depth", 100, "fail a workflow step (error type limit) whose child workflow would be deeper than this in a chain of child workflows, so a definition that starts itself without a case that stops it ends")
	cmd.Flags().IntVar(&o.cacheMiB, "cache-mib", 256, "keep the states of running runs in memory up to this many MiB, counted as the records each was folded from; the others are read again at their next input; a shard (of 16) keeps one run larger than its sixteenth besides")
	cmd.Flags().StringVar(&o.retention, "retention", "", "delete a closed run (history, snapshot, timers, listing entry) once it has been closed this long (e.g. 30d, 12h), unless its definition sets retention itself; empty: keep runs for ever")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if _, err := o.retentionDuration(); err != nil {
			return err
		}
		if o.snapEvery == 0 {
			return fmt.Errorf("--snapshot-every 0: give a number of events, or a negative number to take no snapshots")
		}
		if o.cacheMiB <= 0 {
			return fmt.Errorf("--cache-mib %d: give a positive number of MiB", o.cacheMiB)
		}
		if o.maxHistory <= 0 {
			return fmt.Errorf("--max-history-events %d: give a positive number of events", o.maxHistory)
		}
		if o.maxChildDepth <= 0 {
			return fmt.Errorf("--max-child-depth %d: give a positive depth", o.maxChildDepth)
		}
		return nil
	}
}

// config is the orchestrator's configuration.
func (o *orchFlags) config() *orchestrator.Config {
	keep, _ := o.retentionDuration() // checked by PreRunE
	return &orchestrator.Config{SnapshotEvery: o.snapEvery, MaxHistoryEvents: o.maxHistory, MaxChildDepth: o.maxChildDepth, Retention: keep, CacheBytes: o.cacheMiB << 20}
}

// retentionDuration parses --retention like a definition's durations.
func (o *orchFlags) retentionDuration() (time.Duration, error) {
	if o.retention == "" {
		return 0, nil
	}
	d, err := definition.ParseDuration(o.retention)
	if err == nil && d <= 0 {
		err = errors.New("must be positive (leave it out to keep runs for ever)")
	}
	if err != nil {
		return 0, fmt.Errorf("--retention %s: %w", o.retention, err)
	}
	return d, nil
}

// partCmd is a command that runs some of Weft's parts against --nats-url;
// parts builds their configuration from the flags, and each of flags adds
// some of the command's own.
func partCmd(use, short string, withAddr bool, parts func(p *partFlags, cfg *node.Config) error, flags ...func(*partFlags, *cobra.Command)) *cobra.Command {
	var p partFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := p.logger(cmd)
			if err != nil {
				return err
			}
			if p.ignoresConcurrency && cmd.Flags().Changed("concurrency") {
				log.Warn("--concurrency bounds nothing here (only an executor runs handlers): take it off this command line", "command", use)
			}
			if p.natsURL == "" {
				return fmt.Errorf("--nats-url is required")
			}
			natsOpts, err := p.natsOptions()
			if err != nil {
				return err
			}
			cfg := node.Config{NATSURL: p.natsURL, NATSOptions: natsOpts, Store: p.storeConfig()}
			if err := parts(&p, &cfg); err != nil {
				return err
			}
			return runParts(cmd, log, p, cfg)
		},
	}
	p.register(cmd, withAddr)
	for _, f := range flags {
		f(&p, cmd)
	}
	cmd.RunE = p.logFailure(cmd.RunE)
	return cmd
}

// logFailure wraps run so that, under --log-format json, the error the
// command ends with (a start that failed, a stop cut short) is written
// as a JSON log record on standard error rather than as a plain line, so
// that a collector reading the process's output reads only JSON. The
// error is then returned as a loggedError, which main does not print
// again; under a --log-level above error, nothing logs it, and main
// prints it.
func (p *partFlags) logFailure(run func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if err == nil || p.logFormat != "json" {
			return err
		}
		log, lerr := p.logger(cmd)
		if lerr != nil || !log.Enabled(cmd.Context(), slog.LevelError) {
			return err // nothing would log it: main prints it
		}
		log.Error("weft exits", "err", err.Error())
		return loggedError{err}
	}
}

// loggedError is an error the command has written to its log already.
type loggedError struct{ err error }

func (e loggedError) Error() string { return e.err.Error() }
func (e loggedError) Unwrap() error { return e.err }

func orchestratorCmd() *cobra.Command {
	var o orchFlags
	cmd := partCmd("orchestrator", "Run an orchestrator against --nats-url", false, func(_ *partFlags, cfg *node.Config) error {
		cfg.Orchestrator = o.config()
		return nil
	}, (*partFlags).registerIgnoredConcurrency)
	o.register(cmd)
	return cmd
}

func executorCmd() *cobra.Command {
	return partCmd("executor", "Run an executor with the built-in task types against --nats-url", false, func(p *partFlags, cfg *node.Config) error {
		cfg.Executor, cfg.Builtins = &executor.Config{Concurrency: p.concurrency}, true
		cfg.Builtin = p.builtinConfig()
		return nil
	}, (*partFlags).registerPublishAllow, (*partFlags).registerHTTPDeny, (*partFlags).registerConcurrency)
}

func apiCmd() *cobra.Command {
	return partCmd("api", "Serve the API against --nats-url", true, func(p *partFlags, cfg *node.Config) error {
		apiCfg, apiTLS, err := p.apiSecurity()
		if err != nil {
			return err
		}
		cfg.API, cfg.APIAddr, cfg.APITLS = apiCfg, p.addr, apiTLS
		return nil
	}, (*partFlags).registerPublishAllow, (*partFlags).registerIgnoredConcurrency)
}

// logAPISecurity logs how the API is protected, with a warning when it
// listens beyond the loopback interface without tokens or client
// certificates.
func logAPISecurity(log *slog.Logger, cfg node.Config) {
	clientCerts := cfg.APITLS != nil && cfg.APITLS.ClientAuth == tls.RequireAndVerifyClientCert
	log.Info("API security", "tls", cfg.APITLS != nil, "client_certificates", clientCerts, "tokens", len(cfg.API.Tokens))
	host, _, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return
	}
	if cfg.API.Tokens == nil && !clientCerts {
		log.Warn("the API accepts requests from anyone who can reach it: use --auth-tokens or --tls-client-ca", "addr", cfg.APIAddr)
	}
}

// runParts starts the parts, reports where the API listens, and runs
// until the command's context ends (SIGINT/SIGTERM).
func runParts(cmd *cobra.Command, log *slog.Logger, p partFlags, cfg node.Config) error {
	ctx := cmd.Context()
	cfg.Logger = log
	// Traces are exported when the OTEL_EXPORTER_OTLP_* variables say where.
	tp, stopTracing, err := telemetry.Setup(ctx)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			log.Warn("could not flush the last spans", "err", err)
		}
	}()
	cfg.TracerProvider = tp
	// Metrics are served on the API's address, or on --metrics-addr.
	if cfg.API != nil || p.metricsAddr != "" {
		cfg.Metrics, cfg.MetricsAddr = metrics.NewRegistry(), p.metricsAddr
	}
	if p.pprofAddr != "" {
		stop, err := servePprof(p.pprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
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
	// Where each listener is: plain lines on stdout for a person, or,
	// under --log-format json, log records, so that a collector taking
	// stdout and stderr together reads nothing but JSON.
	listening := func(what, url string) {
		if p.logFormat == "json" {
			log.Info("weft "+what, "url", url)
			return
		}
		fmt.Fprintf(cmd.OutOrStdout(), "weft %s %s\n", what, url)
	}
	if n.APIURL != "" {
		parts = append(parts, "api")
		listening("API listening on", n.APIURL)
		listening("console on", n.APIURL+"/")
		logAPISecurity(log, cfg)
	}
	if n.MetricsURL != "" {
		listening("metrics on", n.MetricsURL)
	}
	log.Info("weft running", "parts", strings.Join(parts, ","), "nats", redactURLs(cfg.NATSURL))
	var lost error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-n.Lost():
		// Every part works through the connection: a process that stays
		// up would only look alive. Exit, for a supervisor to start it
		// again.
		lost = errors.New("the NATS connection closed for good; stopping (start weft again)")
		log.Error("shutting down", "err", lost)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// A second SIGINT or SIGTERM cuts the stop short: the steps still
	// running are handed back at once instead of being waited for.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-again:
			log.Warn("second signal: handing back what still runs and stopping now")
			cancel()
		case <-sctx.Done():
		}
		// A handler that ignores its context holds the stop for as long
		// as it runs (lifecycle.Drain waits for it once canceled): a
		// signal after the stop was cut short exits without it.
		select {
		case <-again:
			log.Error("third signal: exiting without waiting for the stop")
			os.Exit(1)
		case <-stopped:
		}
	}()
	return errors.Join(lost, n.Stop(sctx))
}
