package main

import (
	"os"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/weftworks/weft/internal/otlptest"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, weft server exports its spans
// over OTLP/HTTP, under OTEL_SERVICE_NAME, and flushes them on shutdown.
func TestServerExportsTraces(t *testing.T) {
	recv := otlptest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_SERVICE_NAME", "weft-under-test")
	prev, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	defer func() { otel.SetTracerProvider(prev); otel.SetTextMapPropagator(prevProp) }()

	addr := freeAddr(t)
	server := "--server=http://" + addr
	srv := startServer(t, []string{"--addr", addr}, []string{server})
	file := filepath.Join(t.TempDir(), "hello.yaml")
	if err := os.WriteFile(file, []byte("name: hello\nsteps:\n  - { id: hi, task: echo, input: 1 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "start", "hello", "--id", "traced-cli", "--wait", server); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	// Stopping flushes the spans still batched.
	if err := srv.Stop(); err != nil {
		t.Fatalf("server: %v", err)
	}
	traced := recv.Spans(func(s otlptest.Span) bool { return s.Attrs["weft.workflow.id"] == "traced-cli" })
	if len(traced) < 2 || traced[0].Service != "weft-under-test" {
		t.Fatalf("spans of the run: %v", traced)
	}
}
