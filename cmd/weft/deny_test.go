package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// --http-deny on weft server and weft executor: a bad range stops the
// command, other commands do not take it, and an http step to a denied
// address fails with error type denied without reaching it.
func TestHTTPDenyFlag(t *testing.T) {
	for _, cmd := range []string{"server", "executor"} {
		out, err := runCLI(t, cmd, "--http-deny", "10.0.0.0/8,10.0.0.0/33", "--nats-url", "nats://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "--http-deny") || !strings.Contains(err.Error(), `"10.0.0.0/33"`) {
			t.Fatalf("%s with a bad range: %v\n%s", cmd, err, out)
		}
	}
	for _, cmd := range []string{"orchestrator", "api"} {
		if out, err := runCLI(t, cmd, "--http-deny", "10.0.0.0/8", "--nats-url", "nats://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "unknown flag") {
			t.Fatalf("%s takes --http-deny: %v\n%s", cmd, err, out)
		}
	}

	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(target.Close)

	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr, "--http-deny", "169.254.169.254/32,10.0.0.0/8", "--http-deny", "127.0.0.0/8,::1/128"}, []string{server})
	file := filepath.Join(t.TempDir(), "fetch.yaml")
	src := "name: fetch\nsteps:\n  - { id: get, task: http, input: { url: \"" + target.URL + "/secret\" } }\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	out, err := runCLI(t, "start", "fetch", "--id", "fetch-1", "--wait", server)
	if err == nil || !strings.Contains(out, "FAILED") || !strings.Contains(out, "denied") || !strings.Contains(out, "127.0.0.0/8") {
		t.Fatalf("an http step to a denied address: %v\n%s", err, out)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the denied address", n)
	}
	// Not retried: one attempt, failed as denied.
	out, err = runCLI(t, "history", "fetch-1", server)
	if err != nil || strings.Count(out, "StepScheduled") != 1 || !strings.Contains(out, `"type":"denied"`) {
		t.Fatalf("history: %v\n%s", err, out)
	}
}
