package api

import (
	"connectrpc.com/otelconnect"

	"github.com/weftworks/weft/internal/telemetry"
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
