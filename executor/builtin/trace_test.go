package builtin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/weftworks/weft/executor"
)

// attemptContext returns a context carrying a sampled span, as the
// executor's attempt span, and the traceparent it propagates.
func attemptContext(t *testing.T) (context.Context, string) {
	t.Helper()
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("test").Start(context.Background(), "attempt")
	t.Cleanup(func() { span.End() })
	sc := span.SpanContext()
	return ctx, "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// The http task sends its attempt span's trace context.
func TestHTTPSendsTraceparent(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
	}))
	defer srv.Close()
	ctx, want := attemptContext(t)
	if _, err := Handlers(Config{})["http"](ctx, executor.NewTask("wf-1", "step", "http", 1, map[string]any{"url": srv.URL})); err != nil {
		t.Fatal(err)
	}
	if tp := <-got; tp != want {
		t.Fatalf("traceparent %q, want %q", tp, want)
	}
}

// nats.publish sets the attempt span's trace context on the message,
// unless the step set the header itself.
func TestNATSPublishSetsTraceparent(t *testing.T) {
	nc := startNATS(t)
	sub, err := nc.SubscribeSync("traced")
	if err != nil {
		t.Fatal(err)
	}
	ctx, want := attemptContext(t)
	h := Handlers(Config{NATS: nc})["nats.publish"]
	for _, in := range []map[string]any{
		{"subject": "traced", "data": "a"},
		{"subject": "traced", "data": "b", "headers": map[string]any{"traceparent": "mine"}},
	} {
		if _, err := h(ctx, executor.NewTask("wf-1", "step", "nats.publish", 1, in)); err != nil {
			t.Fatal(err)
		}
	}
	for _, expect := range []string{want, "mine"} {
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if tp := msg.Header.Get("traceparent"); tp != expect {
			t.Fatalf("message %q: traceparent %q, want %q", msg.Data, tp, expect)
		}
	}
}
