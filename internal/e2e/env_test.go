package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// env is a Weft running in-process against a real embedded NATS.
type env struct {
	t    *testing.T
	ns   *natstest.Server
	node *node.Node
	wf   weftv1connect.WorkflowServiceClient
	defs weftv1connect.DefinitionServiceClient
	// taskAckWait is the env's envOpts.taskAckWait, for its workers.
	taskAckWait time.Duration
}

type envOpts struct {
	handlers    map[string]executor.Handler
	taskAckWait time.Duration
	noExecutor  bool
	maxHistory  int
	// maxChildDepth is the orchestrator's MaxChildDepth (default 100).
	maxChildDepth int
	// now is the orchestrator's clock (default time.Now).
	now func() time.Time
	// replyWait is the store's ResultReplyWait (default 2s).
	replyWait time.Duration
	// snapshotEvery is the orchestrator's SnapshotEvery (default 1,000).
	snapshotEvery int
	// retention is the orchestrator's Retention (default: keep for ever).
	retention time.Duration
	// publishAllow is the reserved subjects nats.publish may reach, for
	// the executor and the API's put-time check.
	publishAllow []string
	// logger receives the node's logs (default: testLogger()).
	logger *slog.Logger
	// tokens, when set, are the bearer tokens the API requires.
	tokens api.Tokens
	// metrics, when set, is the node's metrics registry (served at the
	// API's /metrics).
	metrics *prometheus.Registry
	// tracer, when set, is the node's TracerProvider.
	tracer trace.TracerProvider
	// localClock, when set, is the node's machine clock (node.Config.LocalClock).
	localClock func() time.Time
}

func testLogger() *slog.Logger {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{t: t, ns: natstest.Start(t), taskAckWait: o.taskAckWait}
	e.node = e.startNode(o, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	return e
}

func newClients(url string) (weftv1connect.WorkflowServiceClient, weftv1connect.DefinitionServiceClient) {
	return weftv1connect.NewWorkflowServiceClient(http.DefaultClient, url),
		weftv1connect.NewDefinitionServiceClient(http.DefaultClient, url)
}

// startNode starts another set of parts against the env's NATS.
func (e *env) startNode(o envOpts, withOrch, withAPI bool) *node.Node {
	e.t.Helper()
	cfg := node.Config{
		NATSURL: e.ns.URL(),
		Store:   eventstore.Config{TaskAckWait: o.taskAckWait, ResultReplyWait: o.replyWait},
		Logger:  o.logger,
		Metrics: o.metrics,

		TracerProvider: o.tracer,
		LocalClock:     o.localClock,
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	if withOrch {
		cfg.Orchestrator = &orchestrator.Config{MaxHistoryEvents: o.maxHistory, MaxChildDepth: o.maxChildDepth, Now: o.now,
			SnapshotEvery: o.snapshotEvery, Retention: o.retention}
	}
	if !o.noExecutor {
		cfg.Executor = &executor.Config{}
		cfg.Builtins = true
		cfg.Builtin.PublishAllow = o.publishAllow
		cfg.Handlers = o.handlers
	}
	if withAPI {
		cfg.API = &api.Config{PublishAllow: o.publishAllow, Tokens: o.tokens}
		cfg.APIAddr = "127.0.0.1:0"
	}
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("start node: %v", err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	return n
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func (e *env) putDef(src string) *weftv1.PutDefinitionResponse {
	e.t.Helper()
	resp, err := e.defs.PutDefinition(ctx(e.t), connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
	if err != nil {
		e.t.Fatalf("PutDefinition: %v", err)
	}
	return resp.Msg
}

func jsonValue(t *testing.T, s string) *structpb.Value {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
	pv, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

func (e *env) start(def, id, input string) string {
	e.t.Helper()
	resp, err := e.wf.StartWorkflow(ctx(e.t), connect.NewRequest(&weftv1.StartWorkflowRequest{
		Definition: def, WorkflowId: id, Input: jsonValue(e.t, input)}))
	if err != nil {
		e.t.Fatalf("StartWorkflow: %v", err)
	}
	return resp.Msg.WorkflowId
}

func (e *env) get(id string) *weftv1.Workflow {
	e.t.Helper()
	resp, err := e.wf.GetWorkflow(ctx(e.t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
	if err != nil {
		e.t.Fatalf("GetWorkflow %s: %v", id, err)
	}
	return resp.Msg.Workflow
}

// waitClosed polls until the workflow is closed (not running, suspended
// or queued).
func (e *env) waitClosed(id string, within time.Duration) *weftv1.Workflow {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		w := e.get(id)
		switch w.Status {
		case weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED, weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED:
		default:
			return w
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("workflow %s still running after %s: %v", id, within, w)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) history(id string) []*weftv1.HistoryEvent {
	e.t.Helper()
	var out []*weftv1.HistoryEvent
	tok := ""
	for {
		resp, err := e.wf.GetHistory(ctx(e.t), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageToken: tok, PageSize: 7}))
		if err != nil {
			e.t.Fatalf("GetHistory: %v", err)
		}
		out = append(out, resp.Msg.Events...)
		if tok = resp.Msg.NextPageToken; tok == "" {
			return out
		}
	}
}

func types(h []*weftv1.HistoryEvent) []string {
	out := make([]string, len(h))
	for i, ev := range h {
		out[i] = ev.Type
		if ev.StepPath != "" {
			out[i] += "(" + ev.StepPath + ")"
		}
	}
	return out
}

func toJSON(v *structpb.Value) string {
	if v == nil {
		return "null"
	}
	b, _ := v.MarshalJSON()
	var x any
	_ = json.Unmarshal(b, &x)
	b, _ = json.Marshal(x)
	return string(b)
}

// healthy fails the test unless `weft doctor`'s check finds every listed
// run moving, waiting or closed, and the listing in step with history,
// once what just changed has settled.
func (e *env) healthy() {
	e.t.Helper()
	var rep *doctor.Report
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		rep, err = doctor.Check(ctx(e.t), e.node.Store, doctor.Options{Grace: 500 * time.Millisecond})
		if err != nil {
			e.t.Fatalf("doctor: %v", err)
		}
		if rep.OK() {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	e.t.Fatalf("doctor: %s\n%s", rep.Summary(), b)
}

// redrive retries workflow id with RetryWorkflow, asking again, as a client
// would, while the call is Aborted: the run's history moved while it was
// read (a late result recorded in the failed run, say).
func (e *env) redrive(id, reason string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := e.wf.RetryWorkflow(ctx(e.t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id, Reason: reason}))
		if err == nil {
			return
		}
		if connect.CodeOf(err) != connect.CodeAborted || time.Now().After(deadline) {
			e.t.Fatalf("RetryWorkflow %s: %v", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// worker starts an executor of its own, with its own connection, that runs
// h for task type typ; it is stopped when the test ends.
func (e *env) worker(typ string, h executor.Handler) *executor.Worker {
	e.t.Helper()
	store, err := eventstore.Open(context.Background(), e.ns.Connect(e.t), eventstore.Config{TaskAckWait: e.taskAckWait})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := executor.New(store, executor.Config{Logger: testLogger()})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Register(typ, h); err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = w.Stop(context.Background()) })
	return w
}
