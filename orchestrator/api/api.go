package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/executor/builtin"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/config"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/trigger"
	"github.com/weftworks/weft/orchestrator/workflow"
	console "github.com/weftworks/weft/web"
)

// Config tunes the API.
type Config struct {
	// MaxPayloadBytes bounds a workflow input or signal payload (encoded).
	// Default 1 MiB.
	MaxPayloadBytes int
	// MaxDefinitionBytes bounds a definition's source text. Default 256 KiB.
	MaxDefinitionBytes int
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock stamping API events. Default time.Now.
	Now func() time.Time
	// Tokens, when not nil, are the bearer tokens the API accepts (see
	// LoadTokens and RequireTokens): every request then needs one, except
	// gRPC health checks, /metrics and webhooks, which check their own
	// signatures.
	// Default nil: no authentication; an empty map rejects every request.
	Tokens Tokens
	// PublishAllow lists the reserved subject patterns that nats.publish
	// steps may name as a literal subject (see builtin.CheckPublishSubject);
	// give it the executors' list. Default: none.
	PublishAllow []string
	// Definitions is the node's cache of compiled definitions. Default: one
	// of the server's own.
	Definitions *runs.Definitions
	// StateCacheSize is how many workflows' folded states are kept for
	// GetWorkflow and AwaitWorkflow. Default 4096.
	StateCacheSize int
	// StateCacheBytes bounds the kept states by their size: the stored
	// size of the records (or snapshot) each was folded from, which the
	// state takes a few times over in memory. Default 64 MiB.
	StateCacheBytes int
	// MaxConcurrentReads is how many reads of runs (GetWorkflow,
	// GetHistory) are answered at once, and as many of the listing
	// (ListWorkflows, CountWorkflows); more wait their turn, so clients
	// polling as fast as they are answered cannot take the CPU the runs
	// need. A turn is held for the whole call, waits on NATS included: bound
	// the reads where they are CPU work (NATS in the same process), not
	// where they mostly wait on the network. Default 0: no bound.
	MaxConcurrentReads int
	// Metrics is the registry the API records its metrics on: the runs it
	// starts and its webhook deliveries (see docs/operations.md). Default
	// nil: none.
	Metrics *prometheus.Registry
	// ServeMetrics serves Metrics at GET /metrics, open without a token
	// like the health checks (it carries no payloads). Default false.
	ServeMetrics bool
	// TracerProvider makes the spans of API requests; a request's
	// traceparent header becomes the trace of the run it starts. Default:
	// the process-wide provider (see internal/telemetry).
	TracerProvider trace.TracerProvider
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := config.NonNegative("api",
		config.Int("MaxPayloadBytes", c.MaxPayloadBytes),
		config.Int("MaxDefinitionBytes", c.MaxDefinitionBytes),
		config.Int("StateCacheSize", c.StateCacheSize),
		config.Int("StateCacheBytes", c.StateCacheBytes),
		config.Int("MaxConcurrentReads", c.MaxConcurrentReads)); err != nil {
		return err
	}
	if err := builtin.CheckPublishAllow(c.PublishAllow); err != nil {
		return fmt.Errorf("api: PublishAllow: %w", err)
	}
	if c.ServeMetrics && c.Metrics == nil {
		return errors.New("api: ServeMetrics needs Metrics")
	}
	for name := range c.Tokens {
		if err := CheckTokenName(name); err != nil {
			return fmt.Errorf("api: Tokens: %w", err)
		}
	}
	return nil
}

// Server implements WorkflowService and DefinitionService over the event store.
type Server struct {
	// ending: the process stops, and AwaitWorkflow calls end (EndAwaits).
	ending   atomic.Bool
	store    *eventstore.Store
	defs     *runs.Definitions
	triggers *trigger.Registry
	cfg      Config
	log      *slog.Logger
	// otel traces requests.
	otel *otelconnect.Interceptor
	// runReads bounds the reads of one run (GetWorkflow, GetHistory)
	// answered at once, listReads those of the listing (ListWorkflows,
	// CountWorkflows): a listing still being built holds no turn a poll
	// of a run waits for.
	runReads, listReads *reads
	// readMetrics records the reads' waits and the reads found behind
	// the follower.
	readMetrics *metrics.Reads

	// states are recently read workflows; interest wakes the calls
	// awaiting a workflow's close or watching its history.
	states   *states
	interest *interest
	barrier  *barrier
	// looks has room for the awaits' looks that may run at once.
	looks chan struct{}

	// runCtx is Start's context: the listing's watcher lives as long.
	runCtx context.Context
	// listing is the index's live copy ListWorkflows pages through, made
	// on the first call; building is closed when a copy being made is
	// ready (or failed, with listErr).
	listMu   sync.Mutex
	listing  *eventstore.Listing
	building chan struct{}
	listErr  error

	metrics apiMetrics
}

// apiMetrics are what the API records (nil: not recorded).
type apiMetrics struct {
	workflows *metrics.Workflows
	triggers  *metrics.Triggers
}

var (
	_ weftv1connect.WorkflowServiceHandler   = (*Server)(nil)
	_ weftv1connect.DefinitionServiceHandler = (*Server)(nil)
	_ weftv1connect.TriggerServiceHandler    = (*Server)(nil)
)

// New returns an API server over store.
func New(store *eventstore.Store, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	config.Default(&cfg.MaxPayloadBytes, 1<<20)
	config.Default(&cfg.MaxDefinitionBytes, 256<<10)
	config.Default(&cfg.Logger, slog.Default())
	config.DefaultClock(&cfg.Now)
	if cfg.Definitions == nil {
		cfg.Definitions = runs.NewDefinitions(store)
	}
	config.Default(&cfg.StateCacheSize, 4096)
	config.Default(&cfg.StateCacheBytes, 64<<20)
	log := cfg.Logger.With("component", "api")
	s := &Server{store: store, defs: cfg.Definitions, triggers: trigger.NewRegistry(store, cfg.Definitions, log), cfg: cfg, log: log,
		states: newStates(cfg.StateCacheSize, int64(cfg.StateCacheBytes)), metrics: apiMetrics{metrics.NewWorkflows(cfg.Metrics), metrics.NewTriggers(cfg.Metrics)}}
	s.interest = newInterest(store.FollowHistories, s.states.offer, s.states.clear, followLinger, store.HistoryCreated(), log)
	s.barrier = newBarrier(store.HistoriesLastSeq)
	s.looks = make(chan struct{}, maxLooks)
	metrics.NewWaiting(cfg.Metrics, s.Waiting)
	s.readMetrics = metrics.NewReads(cfg.Metrics)
	s.runReads = newReads(cfg.MaxConcurrentReads, s.readMetrics)
	s.listReads = newReads(cfg.MaxConcurrentReads, s.readMetrics)
	otel, err := newTracing(cfg)
	if err != nil {
		return nil, err
	}
	s.otel = otel
	return s, nil
}

// followLinger is how long the API follows the histories after the last
// AwaitWorkflow or WatchWorkflow call ended, in case another comes.
const followLinger = 30 * time.Second

// Start loads the definitions' webhooks and follows changes until ctx
// ends; the listing ListWorkflows keeps is followed as long.
func (s *Server) Start(ctx context.Context) error {
	s.listMu.Lock()
	s.runCtx = ctx
	s.listMu.Unlock()
	s.interest.setBase(ctx)
	if err := s.triggers.Start(ctx, nil); err != nil {
		return err
	}
	for _, m := range s.triggers.Webhooks() {
		s.warnUnsetSecrets(m.Definition, []*definition.Trigger{m.Trigger})
	}
	return nil
}

// currentListing returns the live copy of the workflow index, made on the
// first call (reading every entry once) and again if its watcher ended.
// One copy is made at a time, in the background: callers wait for it as
// long as their own ctx allows. Without Start it follows the index for the
// life of the process.
func (s *Server) currentListing(ctx context.Context) (*eventstore.Listing, error) {
	s.listMu.Lock()
	if s.listing != nil && s.listing.Err() == nil {
		l := s.listing
		s.listMu.Unlock()
		return l, nil
	}
	if s.building == nil {
		done := make(chan struct{})
		s.building = done
		runCtx := s.runCtx
		if runCtx == nil {
			runCtx = context.Background()
		}
		go func() {
			l, err := s.store.WatchListing(runCtx)
			s.listMu.Lock()
			s.listing, s.listErr, s.building = l, err, nil
			s.listMu.Unlock()
			close(done)
		}()
	}
	done := s.building
	s.listMu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.listing == nil {
		return nil, s.listErr
	}
	return s.listing, nil
}

// Handler returns the HTTP handler serving the services (Connect, gRPC and
// gRPC-Web), gRPC health checks, server reflection, webhooks and, with
// Config.ServeMetrics, GET /metrics. With Config.Tokens it requires a
// bearer token (RequireTokens) on all but the health checks, webhooks and
// metrics. The events it
// records carry the identity of who sent the request: the token's name,
// else the verified client certificate's subject, else Anonymous. The web
// console's pages and assets (package web) are served in front of all
// that, open like the health checks: they carry no data.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// Small responses are not worth compressing: gzip's setup costs more
	// than the bytes it saves.
	opts := connect.WithHandlerOptions(append(jsonCodecs(), connect.WithReadMaxBytes(s.cfg.MaxPayloadBytes+s.cfg.MaxDefinitionBytes+64<<10),
		connect.WithCompressMinBytes(4<<10), connect.WithInterceptors(s.otel, stopInterceptor{s}))...)
	mux.Handle(weftv1connect.NewWorkflowServiceHandler(s, opts))
	mux.Handle(weftv1connect.NewDefinitionServiceHandler(s, opts))
	mux.Handle(weftv1connect.NewTriggerServiceHandler(s, opts))
	mux.HandleFunc("/hooks/", s.webhook)
	services := []string{weftv1connect.WorkflowServiceName, weftv1connect.DefinitionServiceName, weftv1connect.TriggerServiceName}
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(services...)))
	reflector := grpcreflect.NewStaticReflector(services...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	if s.cfg.ServeMetrics {
		mux.Handle("GET "+MetricsPath, metrics.Handler(s.cfg.Metrics))
	}
	// Who sent a request is known once RequireTokens accepted its token.
	h := identify(mux)
	if s.cfg.Tokens != nil {
		h = RequireTokens(s.cfg.Tokens, s.log, h)
	}
	return console.Wrap(h)
}

// MetricsPath is where Handler serves the metrics with
// Config.ServeMetrics.
const MetricsPath = "/metrics"

// NewHTTPServer returns an HTTP server for h that speaks HTTP/1.1 and
// unencrypted HTTP/2 (h2c), as gRPC clients need, with up to
// MaxStreamsPerConn calls open at once on one HTTP/2 connection.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Addr: addr, Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: MaxStreamsPerConn}}
}

// MaxStreamsPerConn is how many calls one HTTP/2 connection may have open
// at once: a gRPC client sends all its calls on one connection and queues
// those past the server's limit, so an application awaiting thousands of
// runs through one client needs more than net/http's default of 250.
const MaxStreamsPerConn = 10000

// errorf builds a Connect error.
func errorf(code connect.Code, format string, args ...any) error {
	return connect.NewError(code, fmt.Errorf(format, args...))
}

// toConnect translates domain errors into Connect codes: the one place that does.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	var de *definition.Error
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &de), errors.As(err, new(*definition.InputError)):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, eventstore.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, eventstore.ErrTooLarge):
		return errorf(connect.CodeInvalidArgument, "the record this request makes is larger than the NATS server accepts: send a smaller input, payload or text (%v)", err)
	case errors.Is(err, eventstore.ErrNoSpace):
		return errorf(connect.CodeResourceExhausted, "NATS JetStream is out of storage, so nothing was stored: an operator must make room (raise the server's max_file_store or the account's storage limit, or delete closed runs); then make the call again (%v)", err)
	case errors.Is(err, eventstore.ErrConflict):
		return connect.NewError(connect.CodeAborted, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(connect.CodeDeadlineExceeded, "NATS did not answer within the call's time (%v): call again; a start, signal or cancel may have been made all the same, so make it again with the same request_id", err)
	}
	return connect.NewError(connect.CodeUnavailable, err)
}

// checkPayload enforces the payload size limit on v.
func (s *Server) checkPayload(field string, v *structpb.Value) error {
	if v == nil {
		return nil
	}
	if n := proto.Size(v); n > s.cfg.MaxPayloadBytes {
		return errorf(connect.CodeInvalidArgument, "%s is %d bytes; the limit is %d bytes: make it smaller, or pass what is large by reference (a URL, an object store key)", field, n, s.cfg.MaxPayloadBytes)
	}
	return nil
}

// Bounds of the API's text fields, in bytes: a reason is for people, a
// name or request id a key.
const (
	maxReason = 1024
	maxKey    = 256
)

// checkLen refuses text field v longer than max bytes.
func checkLen(field, v string, max int) error {
	if len(v) > max {
		return errorf(connect.CodeInvalidArgument, "%s is %d bytes; the limit is %d bytes", field, len(v), max)
	}
	return nil
}

// checkValue converts an input or payload and checks it against Weft's
// rule for values (value.Check), so that what is stored can be read back.
func checkValue(field string, v *structpb.Value) (any, error) {
	x, err := value.FromProto(v)
	if err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "%s: %v", field, err)
	}
	if err := value.Check(field, x, value.Limits{}); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return x, nil
}

func checkWorkflowID(id string) error {
	if id == "" {
		return errorf(connect.CodeInvalidArgument, "workflow_id is required")
	}
	if !eventstore.ValidWorkflowID(id) {
		return errorf(connect.CodeInvalidArgument, "workflow_id %q is invalid: use 1-128 letters, digits, '_', '-' or '='", id)
	}
	return nil
}

func randomID() string { return runs.RandomID() }

// readState reads and folds wf's history, from its latest snapshot on
// when it has one.
func (s *Server) readState(ctx context.Context, wf string) (*stateView, error) {
	if err := checkWorkflowID(wf); err != nil {
		return nil, err
	}
	l, err := runs.ReadFromSnapshot(ctx, s.store, wf)
	if err != nil {
		return nil, toConnect(err)
	}
	if l.State.Events == 0 && len(l.Msgs) == 0 {
		return nil, errorf(connect.CodeNotFound, "workflow %q not found", wf)
	}
	return foldMessages(l.State, l.Msgs)
}

// eventsOf flattens records into events with their history index. A
// corrupt record shows as an event of type CorruptRecord carrying its error.
func eventsOf(msgs []eventstore.Message) ([]events.Event, error) {
	var out []events.Event
	for _, m := range msgs {
		if m.Err != nil {
			out = append(out, events.Event{Type: TypeCorruptRecord, Time: m.Time,
				WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: workflow.ErrTypeCorruptHistory, Message: m.Err.Error()}}})
			continue
		}
		out = append(out, m.Record.Events...)
	}
	return out, nil
}

// TypeCorruptRecord is the history event type shown for a record that
// does not decode.
const TypeCorruptRecord events.Type = "CorruptRecord"
