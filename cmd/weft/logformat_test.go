package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --log-format json writes one JSON object a line, and a line about a
// run names it by workflow_id (a step's by step and attempt too). Where
// the listeners are is said in the log too, and nothing plain is written
// on stdout, which a collector may read with stderr.
func TestLogFormatJSON(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	srv := startServer(t, []string{"--addr", addr, "--log-level", "info", "--log-format", "json"}, []string{server})
	logs := srv.Logs
	// The server answers before its log lines are all read from its
	// output: the line is waited for.
	want := `"msg":"weft API listening on","url":"http://` + addr + `"`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %s:\n%s", want, logs.String())
		}
	}
	if out := srv.Stdout.String(); out != "" {
		t.Errorf("stdout under --log-format json: %q", out)
	}
	file := filepath.Join(t.TempDir(), "noisy.yaml")
	if err := os.WriteFile(file, []byte(`
name: noisy
steps:
  - { id: say, task: log, input: { message: "hello from a step" } }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "start", "noisy", "--id", "json-1", "--wait", server); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	var found map[string]any
	for deadline := time.Now().Add(10 * time.Second); found == nil; {
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("a log line is not JSON: %v\n%s", err, line)
			}
			if m["msg"] == "hello from a step" {
				found = m
			}
		}
		if found == nil && time.Now().After(deadline) {
			t.Fatalf("no log line of the step:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if found["workflow_id"] != "json-1" || found["step"] != "say" || found["attempt"] != float64(1) {
		t.Fatalf("the step's log line: %v", found)
	}
}

// An unknown --log-format is refused.
func TestLogFormatUnknown(t *testing.T) {
	_, err := runCLI(t, "server", "--data", t.TempDir(), "--nats-addr", "127.0.0.1:0", "--log-format", "xml")
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("--log-format xml: %v", err)
	}
}
