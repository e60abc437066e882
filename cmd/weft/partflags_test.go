package main

import (
	"strings"
	"testing"
)

// --concurrency bounds an executor's handlers: the commands that run
// one take it, and the orchestrator and the API, which have none,
// refuse it rather than accept a setting that does nothing.
func TestConcurrencyOnlyWhereAnExecutorRuns(t *testing.T) {
	for _, part := range []string{"orchestrator", "api"} {
		_, err := runCLI(t, part, "--concurrency", "8", "--nats-url", "nats://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "unknown flag: --concurrency") {
			t.Errorf("weft %s --concurrency: %v; want unknown flag", part, err)
		}
	}
	for _, part := range []string{"server", "executor"} {
		out, err := runCLI(t, part, "--help")
		if err != nil || !strings.Contains(out, "--concurrency") {
			t.Errorf("weft %s --help does not offer --concurrency: %v\n%s", part, err, out)
		}
	}
}
