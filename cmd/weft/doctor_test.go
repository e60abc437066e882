package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
)

// weft doctor against a `weft server` running in this process: nothing
// stuck while the server is healthy; an index entry edited behind Weft's
// back is named, in text and JSON, and the command exits with status 1.
func TestDoctorCommand(t *testing.T) {
	addr, natsAddr := freeAddr(t), freeAddr(t)
	server, natsURL := "--server=http://"+addr, "nats://"+natsAddr
	startServer(t, []string{"--addr", addr, "--nats-addr", natsAddr}, []string{server})
	ctx := context.Background()
	dir := t.TempDir()
	for name, src := range map[string]string{
		"quick": "name: quick\nsteps:\n  - { id: a, task: echo, input: 1 }\n",
		"gate":  "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	} {
		file := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
			t.Fatalf("def apply: %v\n%s", err, out)
		}
	}
	if out, err := runCLI(t, "start", "quick", "--id", "quick-1", "--wait", server); err != nil || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("start quick: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "start", "gate", "--id", "gate-1", server); err != nil {
		t.Fatalf("start gate: %v\n%s", err, out)
	}

	// Healthy, once the index caught up with both runs.
	want := "1 running: 0 moving, 1 waiting for a signal, 0 stuck, 0 drifted\nnothing stuck or drifted"
	var out string
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, err = runCLI(t, "doctor", "--nats-url", natsURL, "--grace", "1ms")
		if err == nil && strings.Contains(out, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("doctor on a healthy server: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := runCLI(t, "doctor", "--nats-url", natsURL, "--grace", "1ms", "--all"); err != nil ||
		!strings.Contains(out, "gate-1") || !strings.Contains(out, `waiting for signal "go"`) || !strings.Contains(out, "quick-1") {
		t.Fatalf("doctor --all: %v\n%s", err, out)
	}
	// --retention is written as the servers' is; a wrong one, or a NATS
	// it cannot reach, says what to give it.
	// (This server keeps runs for ever: a check told it deletes them after
	// 30 days finds the closed run's deletion not scheduled.)
	if out, err := runCLI(t, "doctor", "--nats-url", natsURL, "--grace", "1ms", "--retention", "30d"); err == nil || !strings.Contains(out, "with a retention of 720h0m0s, but its deletion is not scheduled") {
		t.Fatalf("doctor --retention 30d: %v\n%s", err, out)
	}
	if _, err := runCLI(t, "doctor", "--nats-url", natsURL, "--retention", "soon"); err == nil || !strings.Contains(err.Error(), "--retention soon") {
		t.Fatalf("doctor --retention soon: %v", err)
	}
	if _, err := runCLI(t, "doctor", "--nats-url", "nats://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "give it the server's --nats-addr as --nats-url") {
		t.Fatalf("doctor with no NATS: %v", err)
	}

	// The completed run's index entry is made to say RUNNING.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventstore.WorkflowsBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "quick-1")
	if err != nil {
		t.Fatal(err)
	}
	var sum eventstore.Summary
	if err := msgpack.Unmarshal(entry.Value(), &sum); err != nil {
		t.Fatal(err)
	}
	sum.Status = "RUNNING"
	data, err := msgpack.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "quick-1", data); err != nil {
		t.Fatal(err)
	}

	out, err = runCLI(t, "doctor", "--nats-url", natsURL, "--grace", "1ms")
	if err == nil || !strings.Contains(out, "0 stuck, 1 drifted") ||
		!regexp.MustCompile(`quick-1\s+quick\s+drifted\s+index says RUNNING, history says COMPLETED`).MatchString(out) {
		t.Fatalf("doctor after the drift: %v\n%s", err, out)
	}
	// The binary exits with status 1, its report on stdout as JSON.
	cmd := exec.Command(weftBinary(t), "doctor", "--nats-url", natsURL, "--grace", "1ms", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("weft doctor --json: %v, want exit status 1\n%s%s", err, stdout.String(), stderr.String())
	}
	var rep struct {
		Running, Waiting, Stuck, Drifted int
		Problems                         []struct {
			ID       string `json:"id"`
			Findings []struct{ Kind, Reason string }
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if rep.Running != 1 || rep.Waiting != 1 || rep.Stuck != 0 || rep.Drifted != 1 || len(rep.Problems) != 1 ||
		rep.Problems[0].ID != "quick-1" || len(rep.Problems[0].Findings) != 1 ||
		rep.Problems[0].Findings[0].Kind != "drifted" || rep.Problems[0].Findings[0].Reason != "index says RUNNING, history says COMPLETED" {
		t.Fatalf("--json report: %+v\n%s", rep, stdout.String())
	}
	if !strings.Contains(stderr.String(), "0 stuck, 1 drifted") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
