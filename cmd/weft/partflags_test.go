package main

import (
	"strings"
	"testing"
)

// --concurrency bounds an executor's handlers: the commands that run
// one offer it. The orchestrator and the API, which have none, do not
// offer it, and warn that it does nothing when a command line of an
// earlier version, which took it there, still gives it; they start all
// the same.
func TestConcurrencyOnlyWhereAnExecutorRuns(t *testing.T) {
	for _, part := range []string{"orchestrator", "api"} {
		out, err := runCLI(t, part, "--concurrency", "8", "--log-format", "nope")
		if err == nil || strings.Contains(err.Error(), "unknown flag") || !strings.Contains(out, "--concurrency has been deprecated, it bounds nothing here") {
			t.Errorf("weft %s --concurrency: %v\n%s\nwant a warning, then the start (failing here on the log format)", part, err, out)
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
