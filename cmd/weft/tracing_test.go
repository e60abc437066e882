package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	stdout, logs := &syncBuffer{}, &syncBuffer{}
	go func() {
		done <- run(ctx, []string{"server", "--data", t.TempDir(), "--addr", addr, "--nats-addr", "127.0.0.1:0", "--log-level", "error"}, stdout, logs)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "weft API listening") {
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	server := "--server=http://" + addr
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
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop on cancel")
	}
	traced := recv.Spans(func(s otlptest.Span) bool { return s.Attrs["weft.workflow.id"] == "traced-cli" })
	if len(traced) < 2 || traced[0].Service != "weft-under-test" {
		t.Fatalf("spans of the run: %v", traced)
	}
}
