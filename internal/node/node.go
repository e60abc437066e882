// Package node assembles Weft's parts (orchestrator, executor, API) over
// one NATS connection, so the weft binary and end-to-end tests run the
// same wiring.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/executor/builtin"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/config"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// Config chooses the parts a node runs.
type Config struct {
	// NATSURL is the NATS server to use. Required.
	NATSURL string
	// NATSOptions are extra connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Store configures streams and consumers.
	Store eventstore.Config

	// Orchestrator runs an orchestrator when set.
	Orchestrator *orchestrator.Config
	// Executor runs a worker when set.
	Executor *executor.Config
	// Builtins registers the built-in task types on the worker. Default false.
	Builtins bool
	// Builtin configures the built-in task types; NATS (the node's
	// connection) and Logger (the node's) are filled in when unset.
	Builtin builtin.Config
	// Handlers are registered on the worker in addition to the built-ins.
	Handlers map[string]executor.Handler
	// API serves the API on APIAddr when set.
	API *api.Config
	// APIAddr is the API listener, host:port (port 0 picks a free one).
	APIAddr string
	// APITLS, when set, serves the API over TLS (HTTP/1.1 and HTTP/2,
	// chosen by ALPN) with these certificates; set ClientAuth and ClientCAs
	// to require client certificates. Default nil: plain HTTP/1.1 and h2c.
	APITLS *tls.Config

	// Metrics is the registry every part records its metrics on, one per
	// process (see metrics.NewRegistry and docs/operations.md); a part's own
	// Config.Metrics, when set, wins. The API serves it at GET /metrics
	// unless MetricsAddr is set. Default nil: no metrics.
	Metrics *prometheus.Registry
	// MetricsAddr, when set, serves Metrics at GET /metrics on a listener
	// of its own, host:port (port 0 picks a free one), instead of on the
	// API's. It needs Metrics.
	MetricsAddr string

	// TracerProvider makes every part's spans, unless a part's own
	// Config.TracerProvider is set. Default nil: the process-wide provider
	// (see internal/telemetry).
	TracerProvider trace.TracerProvider

	// LocalClock is this machine's clock, which the node bounds by the
	// JetStream servers' (see eventstore.Clock) to stamp events and fire
	// timers; a part's own Config.Now, when set, wins. Default time.Now.
	LocalClock func() time.Time

	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
}

// clockSync is how often a node compares its clock with JetStream's.
const clockSync = 10 * time.Second

// Node is a running set of parts.
type Node struct {
	NC    *nats.Conn
	Store *eventstore.Store
	Orch  *orchestrator.Orchestrator
	// Definitions is the cache of compiled definitions its parts share.
	Definitions *runs.Definitions
	// Clock is the node's clock bounded by JetStream's, which its parts
	// stamp events with.
	Clock *eventstore.Clock
	// Triggers runs beside the orchestrator.
	Triggers *trigger.Engine
	Worker   *executor.Worker
	// API serves the API when it runs.
	API *api.Server
	// APIURL is the API's base URL (http://host:port, or https:// with
	// APITLS) when the API runs.
	APIURL string
	// MetricsURL is the metrics' URL on their own listener
	// (http://host:port/metrics) when MetricsAddr is set.
	MetricsURL string

	http        *http.Server
	metricsHTTP *http.Server
	// apiLn and metricsLn are the listeners, bound before any part starts
	// and closed by Stop while not yet served.
	apiLn, metricsLn net.Listener
	stopAPI          context.CancelFunc
	stopStreams      context.CancelFunc
	stopRequests     context.CancelFunc
	stopClock        context.CancelFunc
	log              *slog.Logger
	// lost is closed when the NATS connection closes for good while the
	// node runs; stopping, once Stop began.
	lost     chan struct{}
	lostOnce sync.Once
	stopping atomic.Bool
	// downSince is when the NATS connection was lost (Unix nanoseconds),
	// 0 while it is up.
	downSince atomic.Int64
}

// Lost is closed when the node's NATS connection closed for good while it
// ran: the server refused it (a protocol error), or reconnecting stopped.
// Nothing the node does works after that; stop it, and start it again.
func (n *Node) Lost() <-chan struct{} { return n.lost }

// Start connects to NATS and starts the configured parts.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if cfg.NATSURL == "" {
		return nil, errors.New("node: NATSURL is required")
	}
	if cfg.MetricsAddr != "" && cfg.Metrics == nil {
		return nil, errors.New("node: MetricsAddr needs Metrics")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n = &Node{log: cfg.Logger, lost: make(chan struct{})}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = n.Stop(sctx)
			cancel()
		}
	}()
	if err = n.open(ctx, cfg); err != nil {
		return n, err
	}
	// One cache of compiled definitions serves every part.
	n.Definitions = runs.NewDefinitions(n.Store)
	// The addresses are taken before any part starts: a node that cannot
	// listen fails before it takes work it would then cut short.
	if err = n.listen(cfg); err != nil {
		return n, err
	}
	n.startClock(ctx, cfg)
	if cfg.Orchestrator != nil {
		if err = n.startEngine(ctx, cfg); err != nil {
			return n, err
		}
	}
	if cfg.Executor != nil {
		if err = n.startWorker(ctx, cfg); err != nil {
			return n, err
		}
	}
	if cfg.API != nil {
		if err = n.startAPI(cfg); err != nil {
			return n, err
		}
	}
	if cfg.MetricsAddr != "" {
		if err = n.serveMetrics(cfg); err != nil {
			return n, err
		}
	}
	return n, nil
}

// listen binds the API's and the metrics' listeners the configuration
// asks for.
func (n *Node) listen(cfg Config) (err error) {
	if cfg.API != nil {
		if t := cfg.APITLS; t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
			return errors.New("node: APITLS has no server certificate")
		}
		if n.apiLn, err = net.Listen("tcp", cfg.APIAddr); err != nil {
			return fmt.Errorf("API listener on %s: %w", cfg.APIAddr, err)
		}
	}
	if cfg.MetricsAddr != "" {
		if n.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics listener on %s: %w", cfg.MetricsAddr, err)
		}
	}
	return nil
}

// serveMetrics serves cfg.Metrics at GET /metrics on cfg.MetricsAddr.
func (n *Node) serveMetrics(cfg Config) error {
	ln := n.metricsLn
	n.metricsLn = nil
	mux := http.NewServeMux()
	mux.Handle("GET "+api.MetricsPath, metrics.Handler(cfg.Metrics))
	var h http.Handler = mux
	if loopback(ln.Addr()) {
		// As the API open on a loopback address: a page whose name
		// rebinds to 127.0.0.1 names its own host.
		h = api.RequireLoopbackHost(mux)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelInfo)}
	n.metricsHTTP, n.MetricsURL = hs, "http://"+ln.Addr().String()+api.MetricsPath
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// open connects to NATS and opens the store, waiting a while for
// JetStream to be ready.
func (n *Node) open(ctx context.Context, cfg Config) (err error) {
	opts := append([]nats.Option{nats.Name("weft"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false)}, cfg.NATSOptions...)
	// Losing NATS and getting it back are said once each: meanwhile every
	// call fails on its own (a deadline, no responders), which alone does
	// not tell an operator that the connection is the cause.
	opts = append(opts, nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
		if !n.stopping.Load() && n.downSince.CompareAndSwap(0, time.Now().UnixNano()) {
			n.log.Warn("lost the connection to NATS; reconnecting (runs wait meanwhile, nothing is lost)", "err", err)
		}
	}), nats.ReconnectHandler(func(nc *nats.Conn) {
		if down := n.downSince.Swap(0); down != 0 {
			n.log.Info("reconnected to NATS", "url", nc.ConnectedUrlRedacted(), "after", time.Since(time.Unix(0, down)).Round(time.Millisecond))
		}
	}))
	opts = append(opts, nats.ClosedHandler(func(nc *nats.Conn) {
		if !n.stopping.Load() {
			n.log.Error("the NATS connection closed for good", "err", nc.LastError())
			n.lostOnce.Do(func() { close(n.lost) })
		}
	}))
	if n.NC, err = nats.Connect(cfg.NATSURL, opts...); err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
	}
	if cfg.Store.Replicas <= 0 {
		// Replicate across a cluster; a single server holds one copy.
		cfg.Store.Replicas = 1
		if n.NC.ConnectedClusterName() != "" {
			cfg.Store.Replicas = 3
		}
	}
	// Open retries its own requests while the cluster elects leaders; a
	// cluster that just lost a node can still fail it: keep trying for a
	// while, soon, before giving up.
	for wait, deadline := 250*time.Millisecond, time.Now().Add(time.Minute); ; wait = min(2*wait, 2*time.Second) {
		if n.Store, err = eventstore.Open(ctx, n.NC, cfg.Store); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		cfg.Logger.Warn("JetStream not ready; retrying", "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// startClock syncs the node's clock with JetStream's once, then every
// clockSync until the node stops.
func (n *Node) startClock(ctx context.Context, cfg Config) {
	n.Clock = n.Store.NewClock(cfg.LocalClock)
	if err := n.Clock.Sync(ctx); err != nil {
		cfg.Logger.Warn("cannot compare the clock with JetStream's; using this machine's", "err", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	n.stopClock = cancel
	go n.Clock.Run(cctx, clockSync, cfg.Logger)
}

// startEngine starts the orchestrator and the trigger engine beside it.
func (n *Node) startEngine(ctx context.Context, cfg Config) (err error) {
	oc := *cfg.Orchestrator
	config.Default(&oc.Logger, cfg.Logger)
	config.Default(&oc.Definitions, n.Definitions)
	config.Default(&oc.TracerProvider, cfg.TracerProvider)
	config.Default(&oc.Metrics, cfg.Metrics)
	if oc.Now == nil {
		oc.Now = n.Clock.Now
	}
	if n.Orch, err = orchestrator.New(n.Store, oc); err != nil {
		return err
	}
	if err = n.Orch.Start(ctx); err != nil {
		return err
	}
	if n.Triggers, err = trigger.New(n.Store, trigger.Config{Logger: oc.Logger, Definitions: oc.Definitions, Metrics: oc.Metrics, Now: oc.Now}); err != nil {
		return err
	}
	return n.Triggers.Start(ctx)
}

// startWorker starts the executor's worker with the built-in task types
// and the configured handlers.
func (n *Node) startWorker(ctx context.Context, cfg Config) (err error) {
	ec := *cfg.Executor
	config.Default(&ec.Logger, cfg.Logger)
	if ec.Now == nil {
		ec.Now = n.Clock.Now
	}
	config.Default(&ec.TracerProvider, cfg.TracerProvider)
	config.Default(&ec.Metrics, cfg.Metrics)
	if n.Worker, err = executor.New(n.Store, ec); err != nil {
		return err
	}
	if cfg.Builtins {
		bc := cfg.Builtin
		config.Default(&bc.NATS, n.NC)
		config.Default(&bc.Logger, cfg.Logger)
		if err = builtin.CheckPublishAllow(bc.PublishAllow); err != nil {
			return fmt.Errorf("node: Builtin.PublishAllow: %w", err)
		}
		for typ, h := range builtin.Handlers(bc) {
			if err = n.Worker.Register(typ, h); err != nil {
				return err
			}
		}
	}
	for typ, h := range cfg.Handlers {
		if err = n.Worker.Register(typ, h); err != nil {
			return err
		}
	}
	return n.Worker.Start(ctx)
}

// startAPI serves the API on cfg.APIAddr.
func (n *Node) startAPI(cfg Config) error {
	ac := *cfg.API
	config.Default(&ac.Logger, cfg.Logger)
	config.Default(&ac.Definitions, n.Definitions)
	config.Default(&ac.TracerProvider, cfg.TracerProvider)
	config.Default(&ac.Metrics, cfg.Metrics)
	if ac.Now == nil {
		ac.Now = n.Clock.Now
	}
	if ac.Metrics != nil && cfg.MetricsAddr == "" {
		ac.ServeMetrics = true
	}
	srv, err := api.New(n.Store, ac)
	if err != nil {
		return err
	}
	apiCtx, cancel := context.WithCancel(context.Background())
	n.stopAPI = cancel
	n.API = srv
	if err := srv.Start(apiCtx); err != nil {
		return err
	}
	ln := n.apiLn
	n.apiLn = nil
	h := srv.Handler()
	clientCerts := cfg.APITLS != nil && cfg.APITLS.ClientAuth == tls.RequireAndVerifyClientCert
	if ac.Tokens == nil && !clientCerts && loopback(ln.Addr()) {
		// Open to whoever reaches it, which on a loopback address is this
		// machine: but a web page whose name rebinds to 127.0.0.1 reaches
		// it too, from the browser. It names another host.
		h = api.RequireLoopbackHost(h)
	}
	hs := api.NewHTTPServer(cfg.APIAddr, h)
	// Connection errors (failed TLS handshakes among them) go to the log.
	hs.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelInfo)
	n.APIURL = "http://" + ln.Addr().String()
	serve := hs.Serve
	if cfg.APITLS != nil {
		p := new(http.Protocols)
		p.SetHTTP1(true)
		p.SetHTTP2(true)
		hs.Protocols = p
		hs.TLSConfig = cfg.APITLS.Clone()
		n.APIURL = "https://" + ln.Addr().String()
		// ServeTLS adds h2 and http/1.1 to the ALPN protocols.
		serve = func(ln net.Listener) error { return hs.ServeTLS(ln, "", "") }
	}
	// When the node stops, the calls that wait for as long as they are
	// let (awaits, watches) end at once; other calls in flight finish
	// (Shutdown waits for them), and are cut short only when the stop's
	// context ends first: a start or a put cut halfway would answer an
	// error for what may be applied.
	base, stopRequests := context.WithCancel(context.Background())
	streams, stopStreams := context.WithCancel(context.Background())
	hs.BaseContext = func(net.Listener) context.Context { return base }
	hs.Handler = endWatches(streams, hs.Handler)
	n.http, n.stopStreams, n.stopRequests = hs, stopStreams, stopRequests
	go func() {
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("API server stopped", "err", err)
		}
	}()
	return nil
}

// Stop stops the parts in reverse order and closes the connection. It is
// safe to call more than once.
func (n *Node) Stop(ctx context.Context) error {
	n.stopping.Store(true)
	var errs []error
	for _, ln := range []*net.Listener{&n.apiLn, &n.metricsLn} {
		if *ln != nil { // bound, never served
			_ = (*ln).Close()
			*ln = nil
		}
	}
	if n.metricsHTTP != nil {
		// Closed, not shut down: a scrape ended loses nothing (the next
		// reads the same registry), and a client that holds its
		// connection open would otherwise hold the stop, the time of the
		// steps still running with it.
		errs = append(errs, stopErr("metrics", "", n.metricsHTTP.Close()))
		n.metricsHTTP = nil
	}
	if n.http != nil {
		n.API.EndAwaits()
		n.stopStreams()
		// The calls in flight get half of what is left of the stop's
		// time: the worker, stopped next, must still have time to let
		// its steps finish rather than hand them back to be run again.
		hctx := ctx
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			hctx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
			defer cancel()
		}
		errs = append(errs, stopErr("api", "before every call ended; the calls still open were ended, and their clients call again", n.http.Shutdown(hctx)))
		n.stopRequests()
		n.http = nil
	}
	if n.stopAPI != nil {
		n.stopAPI()
	}
	if n.Worker != nil {
		errs = append(errs, stopErr("executor", "with steps still running; they are handed back and run again", n.Worker.Stop(ctx)))
	}
	if n.Triggers != nil {
		errs = append(errs, stopErr("trigger engine", "before it finished; any event it held is taken again", n.Triggers.Stop(ctx)))
	}
	if n.Orch != nil {
		errs = append(errs, stopErr("orchestrator", "before it finished; any input it held is taken again", n.Orch.Stop(ctx)))
	}
	if n.stopClock != nil {
		n.stopClock()
	}
	if n.NC != nil {
		n.NC.Close()
	}
	return errors.Join(errs...)
}

// stopErr names the part whose stop ended with err and, for a stop whose
// time ran out (or that a second signal cut short), says what the part
// left: work handed back, to be done again, never lost. The context's
// error stays in the chain for errors.Is, out of the message.
func stopErr(part, left string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return cutShort{fmt.Sprintf("%s: the stop's time ran out %s", part, left), err}
	case errors.Is(err, context.Canceled):
		return cutShort{fmt.Sprintf("%s: the stop was cut short %s", part, left), err}
	}
	return fmt.Errorf("%s: %w", part, err)
}

// cutShort is a part's stop that its context ended.
type cutShort struct {
	msg string
	err error
}

func (e cutShort) Error() string { return e.msg }
func (e cutShort) Unwrap() error { return e.err }

// endWatches ends the WatchWorkflow calls h serves when stop ends: a
// watch lasts for as long as its caller lets it, and would hold the
// node's stop up. (Awaits, many more and each kept small, are ended by
// api.Server.EndAwaits without a context of their own.)
func endWatches(stop context.Context, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != weftv1connect.WorkflowServiceWatchWorkflowProcedure {
			h.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(stop, cancel)()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// loopback reports whether addr is a loopback address.
func loopback(addr net.Addr) bool {
	t, ok := addr.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}
