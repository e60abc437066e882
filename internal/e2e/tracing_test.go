package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/otlptest"
)

// provider returns a TracerProvider exporting to r over OTLP/HTTP, shut
// down when the test ends.
func provider(t *testing.T, r *otlptest.Receiver) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(r.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(50*time.Millisecond)))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
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
	recv := otlptest.Start(t)
	outside := newTraceparentServer(t)
	tp := provider(t, recv)
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
	tp2 := provider(t, recv)
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

	ofRun := spansOfRun("traced-1")
	var attempt otlptest.Span
	eventually(t, 10*time.Second, "the run's spans", func() bool {
		starts := recv.Spans(func(s otlptest.Span) bool { return strings.HasSuffix(s.Name, "/StartWorkflow") })
		attempts := recv.Spans(func(s otlptest.Span) bool { return ofRun(s) && s.Name == "weft.attempt" })
		signalled := recv.Spans(func(s otlptest.Span) bool {
			return ofRun(s) && s.Name == "weft.decide" && s.Attrs["weft.input"] == "external"
		})
		if len(attempts) > 0 {
			attempt = attempts[0]
		}
		return len(starts) > 0 && len(attempts) > 0 && len(signalled) > 0
	})
	start := recv.Spans(func(s otlptest.Span) bool { return strings.HasSuffix(s.Name, "/StartWorkflow") })[0]
	if start.TraceID != traceID || start.ParentID != "00f067aa0ba902b7" {
		t.Fatalf("the API's start span is in trace %s under %s, want the caller's %s under 00f067aa0ba902b7", start.TraceID, start.ParentID, traceID)
	}
	run := recv.Spans(ofRun)
	for _, s := range run {
		if s.TraceID != traceID {
			t.Errorf("span %s %v is in trace %s, want %s", s.Name, s.Attrs, s.TraceID, traceID)
		}
	}
	if attempt.Attrs["weft.step.path"] != "call" || attempt.Attrs["weft.attempt"] != "1" || attempt.Attrs["weft.definition"] != "traced" {
		t.Errorf("attempt span attributes %v", attempt.Attrs)
	}
	for _, s := range recv.Spans(func(s otlptest.Span) bool { return ofRun(s) && s.Name == "weft.decide" }) {
		if s.Attrs["weft.definition"] != "traced" {
			t.Errorf("decision span attributes %v", s.Attrs)
		}
	}
	got := outside.received()
	if want := "00-" + traceID + "-" + attempt.SpanID + "-01"; len(got) != 1 || got[0] != want {
		t.Fatalf("the outside endpoint received traceparent %q, want [%s] (the attempt's span)", got, want)
	}
}

// A start without a traceparent starts the run's trace: the API's span
// is its root, and the run's spans share its trace id.
func TestTracingStartWithoutTraceparent(t *testing.T) {
	recv := otlptest.Start(t)
	outside := newTraceparentServer(t)
	tp := provider(t, recv)
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
	ofRun := spansOfRun("traced-2")
	eventually(t, 10*time.Second, "the run's spans", func() bool {
		return len(recv.Spans(func(s otlptest.Span) bool { return strings.HasSuffix(s.Name, "/StartWorkflow") })) > 0 &&
			len(recv.Spans(func(s otlptest.Span) bool { return ofRun(s) && s.Name == "weft.attempt" })) > 0
	})
	start := recv.Spans(func(s otlptest.Span) bool { return strings.HasSuffix(s.Name, "/StartWorkflow") })[0]
	if start.ParentID != "" {
		t.Fatalf("the start span has parent %s, want none", start.ParentID)
	}
	run := recv.Spans(ofRun)
	if len(run) < 3 {
		t.Fatalf("%d spans of the run, want decisions and an attempt", len(run))
	}
	for _, s := range run {
		if s.TraceID != start.TraceID {
			t.Errorf("span %s is in trace %s, want the start's %s", s.Name, s.TraceID, start.TraceID)
		}
	}
	if got := outside.received(); len(got) != 1 || !strings.HasPrefix(got[0], "00-"+start.TraceID+"-") {
		t.Fatalf("the outside endpoint received traceparent %q, want one in trace %s", got, start.TraceID)
	}
	// The signal shows in the run's trace, linked to its request's span.
	sig := recv.Spans(func(s otlptest.Span) bool { return ofRun(s) && s.Name == "weft.signal" })
	req := recv.Spans(func(s otlptest.Span) bool { return strings.HasSuffix(s.Name, "/SignalWorkflow") })
	if len(sig) != 1 || len(req) != 1 {
		t.Fatalf("%d weft.signal spans of the run and %d SignalWorkflow spans, want one each", len(sig), len(req))
	}
	if want := req[0].TraceID + "/" + req[0].SpanID; len(sig[0].Links) != 1 || sig[0].Links[0] != want {
		t.Fatalf("weft.signal links %v, want the request's span %s", sig[0].Links, want)
	}
	if req[0].Attrs["weft.workflow.id"] != "traced-2" {
		t.Fatalf("the SignalWorkflow span has attributes %v, want weft.workflow.id", req[0].Attrs)
	}
}

// A child workflow joins its parent's trace.
func TestTracingChildJoinsParentTrace(t *testing.T) {
	recv := otlptest.Start(t)
	tp := provider(t, recv)
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
	var mum, child []otlptest.Span
	eventually(t, 10*time.Second, "the parent's and child's spans", func() bool {
		mum = recv.Spans(func(s otlptest.Span) bool { return s.Attrs["weft.workflow.id"] == "mum-1" })
		child = recv.Spans(func(s otlptest.Span) bool { return s.Attrs["weft.workflow.id"] == kid && s.Name == "weft.attempt" })
		return len(mum) > 0 && len(child) > 0
	})
	for _, s := range append(mum, child...) {
		if s.TraceID != mum[0].TraceID {
			t.Errorf("span %s %v is in trace %s, want the parent's %s", s.Name, s.Attrs, s.TraceID, mum[0].TraceID)
		}
	}
}

// spansOfRun matches the spans Weft makes for run id, leaving out the API
// requests' spans (named service/method), which are in their callers'
// traces.
func spansOfRun(id string) func(otlptest.Span) bool {
	return func(s otlptest.Span) bool { return s.Attrs["weft.workflow.id"] == id && !strings.Contains(s.Name, "/") }
}
