package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, weft server exports its spans
// over OTLP/HTTP, under OTEL_SERVICE_NAME, and flushes them on shutdown.
func TestServerExportsTraces(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	var services []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
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
					for _, a := range s.Attributes {
						if a.Key == "weft.workflow.id" {
							runs[a.Value.GetStringValue()]++
						}
					}
				}
			}
		}
	}))
	defer recv.Close()
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
	mu.Lock()
	defer mu.Unlock()
	if runs["traced-cli"] < 2 || len(services) == 0 || services[0] != "weft-under-test" {
		t.Fatalf("spans by run %v, services %v", runs, services)
	}
}
