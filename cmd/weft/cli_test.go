package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs one weft command in-process and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// The client commands against a `weft server` running in this process.
func TestCLIAgainstServer(t *testing.T) {
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- run(ctx, []string{"server", "--data", t.TempDir(), "--addr", addr, "--nats-addr", "127.0.0.1:0", "--log-level", "error",
			"--pprof", pprofAddr}, &out, &out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop on cancel")
		}
	})
	server := "--server=http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := runCLI(t, "def", "list", server); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Profiles are served apart from the API when asked for.
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("--pprof: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Fatalf("--pprof answered %d: %.200s", resp.StatusCode, body)
	}

	file := filepath.Join(t.TempDir(), "greet.yaml")
	if err := os.WriteFile(file, []byte(`
name: greet
steps:
  - id: hello
    task: echo
    input: "${ 'hello ' + input.name }"
  - id: shout
    task: echo
    input: "${ steps.hello.output.upperAscii() }"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "def", "apply", "-f", file, server)
	if err != nil || !strings.Contains(out, "greet") || !strings.Contains(out, "revision 1") {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	out, err = runCLI(t, "start", "greet", "--input", `{"name": "ada"}`, "--id", "cli-1", "--wait", server)
	if err != nil || !strings.Contains(out, "cli-1") || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, `"HELLO ADA"`) {
		t.Fatalf("start --wait: %v\n%s", err, out)
	}
	out, err = runCLI(t, "get", "cli-1", server)
	if err != nil || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "hello") || !strings.Contains(out, "shout") {
		t.Fatalf("get: %v\n%s", err, out)
	}
	out, err = runCLI(t, "history", "cli-1", server)
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			types = append(types, f[2])
		}
	}
	want := "WorkflowStarted StepScheduled StepCompleted StepScheduled StepCompleted WorkflowCompleted"
	if strings.Join(types, " ") != want {
		t.Fatalf("history types %v, want %s\n%s", types, want, out)
	}
	out, err = runCLI(t, "history", "cli-1", "--json", server)
	if err != nil || strings.Count(out, "\n") != 6 || !strings.Contains(out, `"type":"WorkflowCompleted"`) && !strings.Contains(out, `"type": "WorkflowCompleted"`) {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--status", "completed", server)
	if err != nil || !strings.Contains(out, "cli-1") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "get", "missing", server)
	if err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("get missing: %v\n%s", err, out)
	}
	out, err = runCLI(t, "start", "greet", "--input", `{bad`, server)
	if err == nil || !strings.Contains(err.Error(), "--input") {
		t.Fatalf("start with bad input: %v\n%s", err, out)
	}
}

// weft bench runs against an embedded Weft and prints one JSON line.
func TestBenchCommand(t *testing.T) {
	out, err := runCLI(t, "bench", "-n", "40", "-c", "4", "--floor", "--json", "--quiet")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench output %q: %v", out, err)
	}
	for _, k := range []string{"workflows", "workflows_per_s", "steps_per_s", "events_per_s", "p50_ms", "p90_ms", "p99_ms", "floor_events_per_s", "floor_ratio"} {
		if v, _ := res[k].(float64); v <= 0 {
			t.Fatalf("%s = %v in %s", k, res[k], out)
		}
	}
	if res["workflows"] != 40.0 || res["wait"] != "await" {
		t.Fatalf("workflows %v, wait %v", res["workflows"], res["wait"])
	}
}
