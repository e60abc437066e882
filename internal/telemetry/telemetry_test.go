package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weftworks/weft/internal/otlptest"
)

// Setup exports over OTLP/HTTP to the endpoint the standard variables
// name, with the service name they give.
func TestSetupFromEnvironment(t *testing.T) {
	recv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
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
	if got := recv.Spans(nil); len(got) != 1 || got[0].Name != "probe" || got[0].Service != "weft-test" {
		t.Fatalf("exported spans %v", got)
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
