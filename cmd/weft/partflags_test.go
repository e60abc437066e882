package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// --concurrency bounds an executor's handlers: the commands that run
// one offer it. The orchestrator and the API, which have none, do not
// offer it, and warn that it does nothing when a command line of an
// earlier version, which took it there, still gives it; they start all
// the same.
func TestConcurrencyOnlyWhereAnExecutorRuns(t *testing.T) {
	for _, part := range []string{"orchestrator", "api"} {
		out, err := runCLI(t, part, "--concurrency", "8", "--nats-url", "nats://127.0.0.1:1")
		if err == nil || strings.Contains(err.Error(), "unknown flag") || !strings.Contains(out, "--concurrency bounds nothing here") {
			t.Errorf("weft %s --concurrency: %v\n%s\nwant a warning, then the start (failing here on the NATS URL)", part, err, out)
		}
		if help, _ := runCLI(t, part, "--help"); strings.Contains(help, "--concurrency") {
			t.Errorf("weft %s --help offers --concurrency:\n%s", part, help)
		}
	}
	for _, part := range []string{"server", "executor"} {
		out, err := runCLI(t, part, "--help")
		if err != nil || !strings.Contains(out, "--concurrency") {
			t.Errorf("weft %s --help does not offer --concurrency: %v\n%s", part, err, out)
		}
	}
}

// Under --log-format json the warning about --concurrency is a JSON log
// record on standard error, like every other line, and nothing plain is
// written on standard output, which a collector may read with it.
func TestIgnoredConcurrencyWarnsInTheLogFormat(t *testing.T) {
	for _, part := range []string{"orchestrator", "api"} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, []string{part, "--concurrency", "8", "--log-format", "json", "--nats-url", "nats://127.0.0.1:1"}, &stdout, &stderr)
		cancel()
		if err == nil {
			t.Fatalf("weft %s against no NATS started", part)
		}
		if stdout.Len() != 0 {
			t.Errorf("weft %s --log-format json --concurrency 8 wrote on standard output:\n%s", part, stdout.String())
		}
		var warned bool
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("weft %s --log-format json: a line of its log is not JSON: %q", part, line)
				continue
			}
			if msg, _ := rec["msg"].(string); strings.Contains(msg, "--concurrency bounds nothing here") && rec["level"] == "WARN" {
				warned = true
			}
		}
		if !warned {
			t.Errorf("weft %s --concurrency 8: no warning in its JSON log:\n%s", part, stderr.String())
		}
	}
}

// Under --log-format json the error a part command ends with (here, no
// NATS to connect to) is a JSON log record on standard error, and main
// does not print it again as a plain line.
func TestFailureIsLoggedInTheLogFormat(t *testing.T) {
	for _, part := range []string{"orchestrator", "api", "server"} {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := run(ctx, []string{part, "--log-format", "json", "--nats-url", "nats://127.0.0.1:1"}, &stdout, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
			t.Fatalf("weft %s against no NATS: %v", part, err)
		}
		if !errors.As(err, new(loggedError)) {
			t.Errorf("weft %s: its error is not marked as logged: main prints it again as a plain line", part)
		}
		var logged bool
		for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == "ERROR" && strings.Contains(fmt.Sprint(rec["err"]), "connect to NATS") {
				logged = true
			}
		}
		if !logged {
			t.Errorf("weft %s --log-format json: its error is not in its JSON log:\n%s", part, stderr.String())
		}
	}
	// Under text, the error is left to main, which prints it as before.
	err := run(context.Background(), []string{"orchestrator", "--nats-url", "nats://127.0.0.1:1"}, new(bytes.Buffer), new(bytes.Buffer))
	if err == nil || errors.As(err, new(loggedError)) {
		t.Errorf("weft orchestrator under text: %v; want an error main prints", err)
	}
}

// --max-child-depth reaches the orchestrator's configuration, and a depth
// that is not positive is refused before anything starts.
func TestMaxChildDepthFlag(t *testing.T) {
	for _, part := range []string{"server", "orchestrator"} {
		_, err := runCLI(t, part, "--nats-url", "nats://127.0.0.1:1", "--max-child-depth", "0")
		if err == nil || !strings.Contains(err.Error(), "--max-child-depth 0") {
			t.Errorf("%s --max-child-depth 0: %v", part, err)
		}
	}
	o := orchFlags{snapEvery: 1000, maxHistory: 10, maxChildDepth: 7, cacheMiB: 1}
	if got := o.config().MaxChildDepth; got != 7 {
		t.Fatalf("MaxChildDepth %d, want 7", got)
	}
}

// A --log-level above error logs no error record: the error a part
// command ends with is then left to main to print, not dropped.
func TestFailureAboveTheLogLevelIsPrinted(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"orchestrator", "--log-format", "json", "--log-level", "error+4", "--nats-url", "nats://127.0.0.1:1"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Fatalf("weft orchestrator against no NATS: %v", err)
	}
	if errors.As(err, new(loggedError)) && !strings.Contains(stderr.String(), "connect to NATS") {
		t.Errorf("weft orchestrator --log-level error+4: its error is marked as logged, but nothing logged it; main prints nothing:\n%s", stderr.String())
	}
}
