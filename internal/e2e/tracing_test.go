package e2e

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// span is what the test receiver keeps of an exported span.
type span struct {
	name, traceID, spanID, parentID string
	attrs                           map[string]string
}

// otlpReceiver accepts OTLP/HTTP protobuf exports at POST /v1/traces.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
			http.NotFound(w, req)
			return
		}
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					sp := span{name: s.Name, traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
						parentID: hex.EncodeToString(s.ParentSpanId), attrs: map[string]string{}}
					for _, a := range s.Attributes {
						v := a.Value.GetStringValue()
						if iv, ok := a.Value.Value.(*commonpb.AnyValue_IntValue); ok {
							v = strconv.FormatInt(iv.IntValue, 10)
						}
						sp.attrs[a.Key] = v
					}
					r.spans = append(r.spans, sp)
				}
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// provider returns a TracerProvider exporting to r over OTLP/HTTP, shut
// down when the test ends.
func (r *otlpReceiver) provider(t *testing.T) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(r.srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// find returns the spans that match.
func (r *otlpReceiver) find(match func(span) bool) []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []span
	for _, s := range r.spans {
		if match(s) {
			out = append(out, s)
		}
	}
	return out
}

// traceparentServer is an outside HTTP endpoint recording the
// traceparent headers it receives.
type traceparentServer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string
}

func newTraceparentServer(t *testing.T) *traceparentServer {
	s := &traceparentServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got = append(s.got, r.Header.Get("traceparent"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok": true}`)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *traceparentServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

const tracedDef = `
name: traced
steps:
  - { id: call, task: http, input: { method: POST, url: "${ input.url }" } }
  - id: approve
    wait: { signal: go }
output: "${ steps.approve.output }"
`

// One run is one trace: the API's start (a child of the caller's
// traceparent), every decision and the http step's attempt share the
// caller's trace id, the outside endpoint the step calls receives a
// traceparent of that trace, and after a restart of the node (a new
// process, another TracerProvider) the decision the signal brings joins
// the same trace.
func TestTracingOneRunOneTrace(t *testing.T) {
	recv := newOTLPReceiver(t)
	outside := newTraceparentServer(t)
	tp := recv.provider(t)
	e := newEnv(t, envOpts{tracer: tp})
	e.putDef(tracedDef)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "traced", WorkflowId: "traced-1",
		Input: jsonValue(t, `{"url": "`+outside.srv.URL+`"}`)})
	req.Header().Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if _, err := e.wf.StartWorkflow(ctx(t), req); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "wait to start", func() bool {
		return stepStatus(e.get("traced-1"), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})

	// Stop the node and start a new one with a TracerProvider of its own.
	if err := tp.ForceFlush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	tp2 := recv.provider(t)
	e.node = e.startNode(envOpts{tracer: tp2}, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	if err := e.signal("traced-1", "go", `"yes"`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed("traced-1", 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if err := tp2.ForceFlush(ctx(t)); err != nil {
		t.Fatal(err)
	}

	ofRun := func(s span) bool { return s.attrs["weft.workflow.id"] == "traced-1" }
	var attempt span
	eventually(t, 10*time.Second, "the run's spans", func() bool {
		starts := recv.find(func(s span) bool { return strings.HasSuffix(s.name, "/StartWorkflow") })
		attempts := recv.find(func(s span) bool { return ofRun(s) && s.name == "weft.attempt" })
		signalled := recv.find(func(s span) bool { return ofRun(s) && s.name == "weft.decide" && s.attrs["weft.input"] == "external" })
		if len(attempts) > 0 {
			attempt = attempts[0]
		}
		return len(starts) > 0 && len(attempts) > 0 && len(signalled) > 0
	})
	start := recv.find(func(s span) bool { return strings.HasSuffix(s.name, "/StartWorkflow") })[0]
	if start.traceID != traceID || start.parentID != "00f067aa0ba902b7" {
		t.Fatalf("the API's start span is in trace %s under %s, want the caller's %s under 00f067aa0ba902b7", start.traceID, start.parentID, traceID)
	}
	run := recv.find(ofRun)
	for _, s := range run {
		if s.traceID != traceID {
			t.Errorf("span %s %v is in trace %s, want %s", s.name, s.attrs, s.traceID, traceID)
		}
	}
	if attempt.attrs["weft.step.path"] != "call" || attempt.attrs["weft.attempt"] != "1" || attempt.attrs["weft.definition"] != "traced" {
		t.Errorf("attempt span attributes %v", attempt.attrs)
	}
	for _, s := range recv.find(func(s span) bool { return ofRun(s) && s.name == "weft.decide" }) {
		if s.attrs["weft.definition"] != "traced" {
			t.Errorf("decision span attributes %v", s.attrs)
		}
	}
	got := outside.received()
	if want := "00-" + traceID + "-" + attempt.spanID + "-01"; len(got) != 1 || got[0] != want {
		t.Fatalf("the outside endpoint received traceparent %q, want [%s] (the attempt's span)", got, want)
	}
}

// A start without a traceparent starts the run's trace: the API's span
// is its root, and the run's spans share its trace id.
func TestTracingStartWithoutTraceparent(t *testing.T) {
	recv := newOTLPReceiver(t)
	outside := newTraceparentServer(t)
	tp := recv.provider(t)
	e := newEnv(t, envOpts{tracer: tp})
	e.putDef(tracedDef)
	e.start("traced", "traced-2", `{"url": "`+outside.srv.URL+`"}`)
	if err := e.signal("traced-2", "go", `1`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed("traced-2", 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	if err := tp.ForceFlush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	ofRun := func(s span) bool { return s.attrs["weft.workflow.id"] == "traced-2" }
	eventually(t, 10*time.Second, "the run's spans", func() bool {
		return len(recv.find(func(s span) bool { return strings.HasSuffix(s.name, "/StartWorkflow") })) > 0 &&
			len(recv.find(func(s span) bool { return ofRun(s) && s.name == "weft.attempt" })) > 0
	})
	start := recv.find(func(s span) bool { return strings.HasSuffix(s.name, "/StartWorkflow") })[0]
	if start.parentID != "" {
		t.Fatalf("the start span has parent %s, want none", start.parentID)
	}
	run := recv.find(ofRun)
	if len(run) < 3 {
		t.Fatalf("%d spans of the run, want decisions and an attempt", len(run))
	}
	for _, s := range run {
		if s.traceID != start.traceID {
			t.Errorf("span %s is in trace %s, want the start's %s", s.name, s.traceID, start.traceID)
		}
	}
	if got := outside.received(); len(got) != 1 || !strings.HasPrefix(got[0], "00-"+start.traceID+"-") {
		t.Fatalf("the outside endpoint received traceparent %q, want one in trace %s", got, start.traceID)
	}
}

// A child workflow joins its parent's trace.
func TestTracingChildJoinsParentTrace(t *testing.T) {
	recv := newOTLPReceiver(t)
	tp := recv.provider(t)
	e := newEnv(t, envOpts{tracer: tp})
	e.putDef("name: kid\nsteps:\n  - { id: hi, task: echo, input: 1 }\n")
	e.putDef("name: mum\nsteps:\n  - { id: sub, workflow: kid, input: {} }\n")
	e.start("mum", "mum-1", `{}`)
	if w := e.waitClosed("mum-1", 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	kid := e.childOf("mum-1", "sub")
	if err := tp.ForceFlush(ctx(t)); err != nil {
		t.Fatal(err)
	}
	var mum, child []span
	eventually(t, 10*time.Second, "the parent's and child's spans", func() bool {
		mum = recv.find(func(s span) bool { return s.attrs["weft.workflow.id"] == "mum-1" })
		child = recv.find(func(s span) bool { return s.attrs["weft.workflow.id"] == kid && s.name == "weft.attempt" })
		return len(mum) > 0 && len(child) > 0
	})
	for _, s := range append(mum, child...) {
		if s.traceID != mum[0].traceID {
			t.Errorf("span %s %v is in trace %s, want the parent's %s", s.name, s.attrs, s.traceID, mum[0].traceID)
		}
	}
}
