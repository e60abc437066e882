package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Setup exports over OTLP/HTTP to the endpoint the standard variables
// name, with the service name they give.
func TestSetupFromEnvironment(t *testing.T) {
	var mu sync.Mutex
	var services, spans []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					services = append(services, a.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spans = append(spans, s.Name)
				}
			}
		}
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "weft-test")
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)

	tp, shutdown, err := Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, span := Tracer(tp).Start(context.Background(), "probe")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(spans) != 1 || spans[0] != "probe" || len(services) != 1 || services[0] != "weft-test" {
		t.Fatalf("exported spans %v of services %v", spans, services)
	}
}

// Without the variables, tracing stays off.
func TestSetupOff(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tp, shutdown, err := Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(*sdktrace.TracerProvider); ok {
		t.Fatal("Setup made an SDK provider without the variables")
	}
	_ = shutdown(context.Background())
}

// A run's recorded trace context parents the spans made from it.
func TestTraceParentRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, root := Tracer(tp).Start(context.Background(), "start")
	recorded := TraceParent(ctx)
	root.End()
	if recorded == "" || TraceParent(context.Background()) != "" {
		t.Fatalf("TraceParent: %q", recorded)
	}
	_, span := Start(context.Background(), Tracer(tp), recorded, "decision")
	defer span.End()
	got := span.(sdktrace.ReadOnlySpan)
	if got.SpanContext().TraceID() != root.SpanContext().TraceID() || got.Parent().SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("span in trace %s under %s, want %s under %s", got.SpanContext().TraceID(), got.Parent().SpanID(),
			root.SpanContext().TraceID(), root.SpanContext().SpanID())
	}
	_, fresh := Start(context.Background(), Tracer(tp), "", "decision")
	defer fresh.End()
	if fresh.(sdktrace.ReadOnlySpan).Parent().IsValid() {
		t.Fatal("a span without a recorded trace context has a parent")
	}
}
