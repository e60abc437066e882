package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// weft def pause and resume; def list and def get show the pause; a run
// started while paused completes after the resume.
func TestCLIPauseDefinition(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr}, []string{server})
	file := filepath.Join(t.TempDir(), "held.yaml")
	if err := os.WriteFile(file, []byte("name: held\nsteps:\n  - { id: a, task: echo, input: 42 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	out, err := runCLI(t, "def", "pause", "held", "--reason", "the API it calls is down", server)
	if err != nil || !strings.Contains(out, "definition held paused") {
		t.Fatalf("def pause: %v\n%s", err, out)
	}
	out, err = runCLI(t, "def", "list", server)
	if err != nil || !strings.Contains(out, "PAUSED") || !strings.Contains(out, "by anonymous: the API it calls is down") {
		t.Fatalf("def list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "def", "get", "held", server)
	if err != nil || !strings.Contains(out, "name: held") || !strings.Contains(out, "definition held is paused since ") ||
		!strings.Contains(out, "by anonymous: the API it calls is down") {
		t.Fatalf("def get: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "start", "held", "--id", "held-1", server); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "get", "held-1", server); err != nil || !strings.Contains(out, "RUNNING") {
		t.Fatalf("get while paused: %v\n%s", err, out)
	}
	out, err = runCLI(t, "def", "resume", "held", server)
	if err != nil || !strings.Contains(out, "definition held resumed") {
		t.Fatalf("def resume: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "await", "held-1", "--timeout", "20s", server); err != nil || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("await after resume: %v\n%s", err, out)
	}
	out, err = runCLI(t, "def", "list", server)
	if err != nil || strings.Contains(out, "anonymous:") {
		t.Fatalf("def list after resume: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "def", "resume", "held", server); err != nil || !strings.Contains(out, "definition held is not paused: nothing to resume") {
		t.Fatalf("def resume of a definition not paused: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"def", "pause", "nope"}, {"def", "resume", "nope"}} {
		if out, err := runCLI(t, append(args, server)...); err == nil || !strings.Contains(err.Error(), `not_found: definition "nope" not found`) {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}
