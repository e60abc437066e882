package api

import (
	"context"

	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftworks/weft/internal/telemetry"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// newTracing returns the interceptor that makes a span of every request
// with cfg's TracerProvider: a child of the caller's traceparent when it
// sent one, so a run the request starts records the caller's trace.
func newTracing(cfg Config) (*otelconnect.Interceptor, error) {
	opts := []otelconnect.Option{otelconnect.WithPropagator(telemetry.Propagator), otelconnect.WithoutMetrics(),
		otelconnect.WithTrustRemote()}
	if cfg.TracerProvider != nil {
		opts = append(opts, otelconnect.WithTracerProvider(cfg.TracerProvider))
	}
	return otelconnect.NewInterceptor(opts...)
}

// traceRun records a request that changes a run (a signal, a cancel, a
// retry: name) as a short span in the run's own trace, linked to the
// request's span, so the run's trace shows what reached it and from where;
// the request's span names the run.
func (s *Server) traceRun(ctx context.Context, st *workflow.State, name string) {
	req := trace.SpanFromContext(ctx)
	req.SetAttributes(telemetry.WorkflowID.String(st.ID))
	_, span := telemetry.Start(ctx, telemetry.Tracer(s.cfg.TracerProvider), st.Trace, name,
		telemetry.WorkflowID.String(st.ID), telemetry.Definition.String(st.Definition))
	span.AddLink(trace.Link{SpanContext: req.SpanContext()})
	span.End()
}
