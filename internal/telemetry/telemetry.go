// Package telemetry sets up tracing: an OTLP/HTTP exporter when the
// standard OpenTelemetry variables ask for one, and the helpers that carry
// a run's trace context through its history.
package telemetry

import (
	"context"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys Weft's spans carry.
const (
	WorkflowID = attribute.Key("weft.workflow.id")
	Definition = attribute.Key("weft.definition")
	StepPath   = attribute.Key("weft.step.path")
	Attempt    = attribute.Key("weft.attempt")
)

// Propagator reads and writes W3C trace context (traceparent,
// tracestate) and baggage, whatever the process-wide propagator is.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{})

// Enabled reports whether the environment asks for traces to be
// exported: OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
func Enabled(getenv func(string) string) bool {
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs, once per process, a TracerProvider exporting spans over
// OTLP/HTTP (protobuf) when Enabled, and returns it with the function
// that flushes and stops it. The exporter, sampler (OTEL_TRACES_SAMPLER)
// and resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) follow the
// standard variables; the service name defaults to "weft". When tracing
// is off it returns the process-wide (no-op) provider.
func Setup(ctx context.Context) (trace.TracerProvider, func(context.Context) error, error) {
	if !Enabled(os.Getenv) {
		return otel.GetTracerProvider(), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "weft")),
		resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator)
	return tp, tp.Shutdown, nil
}

// Tracer returns Weft's tracer from tp, or from the process-wide
// provider when tp is nil.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer("github.com/weftworks/weft")
}

// TraceParent returns the traceparent of ctx's span, or "" when ctx
// carries no valid span context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// WithTraceParent returns ctx with the remote span context traceparent
// names as its parent, or ctx unchanged when traceparent is empty or
// invalid.
func WithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// Start starts a span named name as a child of the run whose recorded
// trace context is traceparent (a new trace when it is empty), so the
// short spans of a long run all join its trace.
func Start(ctx context.Context, tr trace.Tracer, traceparent, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := WithTraceParent(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), traceparent)
	return tr.Start(parent, name, trace.WithAttributes(attrs...))
}
