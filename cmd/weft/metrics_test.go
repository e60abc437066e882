package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/internal/logbuf"
	"github.com/weftworks/weft/orchestrator/api"
)

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// With --auth-tokens, /metrics on the API address still answers without
// a token, and everything else still wants one.
func TestMetricsOpenWithTokens(t *testing.T) {
	token, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokens := writeTestFile(t, "tokens", api.TokenLine("ci", token, api.RoleAdmin)+"\n")
	addr := freeAddr(t)
	startServer(t, []string{"--addr", addr, "--auth-tokens", tokens}, []string{"--server=http://" + addr, "--token", token})

	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "# TYPE go_goroutines gauge") || !strings.Contains(body, "weft_task_backlog{task=\"echo\"}") {
		t.Fatalf("/metrics without a token: %d\n%.500s", code, body)
	}
	if code, body := get(t, "http://"+addr+"/weft.v1.DefinitionService/ListDefinitions"); code != http.StatusUnauthorized {
		t.Fatalf("a service without a token: %d %s", code, body)
	}
	// Only the exact path is open.
	if code, _ := get(t, "http://"+addr+"/metrics/x"); code != http.StatusUnauthorized {
		t.Fatalf("/metrics/x without a token: %d", code)
	}
}

// runPart runs `weft args...` in this process until the test ends, and
// returns what it printed (output and logs) once that contains want.
func runPart(t *testing.T, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	out := &logbuf.Buffer{}
	go func() { done <- run(ctx, args, out, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("weft %s: %v", args[0], err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("weft %s did not stop on cancel", args[0])
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("weft %s stopped: %v\n%s", args[0], err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("weft %s did not print %q:\n%s", args[0], want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out.String()
}

// --metrics-addr serves the metrics on a listener of their own: instead
// of the API's for weft server, and as the only one of weft orchestrator
// and weft executor.
func TestMetricsAddr(t *testing.T) {
	addr, metricsAddr, natsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	runPart(t, "weft metrics on http://"+metricsAddr+"/metrics", "server", "--data", t.TempDir(), "--nats-addr", natsAddr,
		"--addr", addr, "--metrics-addr", metricsAddr, "--log-level", "error")
	code, body := get(t, "http://"+metricsAddr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "weft_task_backlog{task=\"echo\"}") || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Fatalf("--metrics-addr: %d\n%.500s", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the API with --metrics-addr: %d", code)
	}

	natsURL := "nats://" + natsAddr
	execMetrics, orchMetrics := freeAddr(t), freeAddr(t)
	runPart(t, "weft metrics on", "executor", "--nats-url", natsURL, "--metrics-addr", execMetrics, "--log-level", "error")
	runPart(t, "weft metrics on", "orchestrator", "--nats-url", natsURL, "--metrics-addr", orchMetrics, "--log-level", "error")
	// Each part reports what it does itself.
	code, body = get(t, "http://"+execMetrics+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "go_goroutines") || strings.Contains(body, "weft_orchestrator_") || strings.Contains(body, "weft_task_backlog") {
		t.Fatalf("executor --metrics-addr: %d\n%.500s", code, body)
	}
	code, body = get(t, "http://"+orchMetrics+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "weft_orchestrator_decision_seconds_count") || !strings.Contains(body, "weft_task_backlog{task=\"echo\"}") {
		t.Fatalf("orchestrator --metrics-addr: %d\n%.500s", code, body)
	}
	// Without --metrics-addr, a part with no API serves no metrics.
	out := runPart(t, "weft running", "executor", "--nats-url", natsURL, "--log-level", "info")
	if strings.Contains(out, "weft metrics on") {
		t.Fatalf("executor without --metrics-addr:\n%s", out)
	}
}
