package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// weft doctor's summary counts a queued run as waiting for a slot and a
// suspended one as waiting for a resume, not as waiting for a signal.
func TestDoctorSummaryNamesWhatRunsWaitFor(t *testing.T) {
	addr, natsAddr := freeAddr(t), freeAddr(t)
	server, natsURL := "--server=http://"+addr, "nats://"+natsAddr
	startServer(t, []string{"--addr", addr, "--nats-addr", natsAddr}, []string{server})
	dir := t.TempDir()
	for name, src := range map[string]string{
		// One run at a time, each waiting for a signal: the first holds
		// the slot, the others are queued.
		"one": "name: one\nconcurrency: { limit: 1 }\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
		// A step that cannot reach its service, suspended at its first failure.
		"down": "name: down\nsteps:\n  - id: call\n    task: http\n    input: { url: \"http://127.0.0.1:1/\" }\n    retry: { max_attempts: 1, exhausted: suspend }\n",
	} {
		file := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
			t.Fatalf("def apply: %v\n%s", err, out)
		}
	}
	for _, id := range []string{"one-1", "one-2", "one-3"} {
		if out, err := runCLI(t, "start", "one", "--id", id, server); err != nil {
			t.Fatalf("start %s: %v\n%s", id, err, out)
		}
	}
	if out, err := runCLI(t, "start", "down", "--id", "down-1", server); err != nil {
		t.Fatalf("start down-1: %v\n%s", err, out)
	}

	want := "4 running: 0 moving, 1 waiting for a signal, 2 queued for a slot, 1 suspended until resumed, 0 stuck, 0 drifted\nnothing stuck or drifted"
	var out string
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		out, err = runCLI(t, "doctor", "--nats-url", natsURL, "--grace", "1ms")
		if err == nil && strings.Contains(out, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doctor: %v\n%s\nwant it to say\n%s", err, out, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
