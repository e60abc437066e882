package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Item 3 of issue 13: --publish-allow lets nats.publish steps reach chosen
// reserved subjects, on weft server's executor and at put time; others
// stay refused, and a bad pattern stops the command.
func TestIssue13Item3_PublishAllowFlag(t *testing.T) {
	for _, cmd := range []string{"server", "executor", "api"} {
		out, err := runCLI(t, cmd, "--publish-allow", "$JS.>.x", "--nats-url", "nats://127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), "--publish-allow") {
			t.Fatalf("%s with a bad pattern: %v\n%s", cmd, err, out)
		}
	}
	if out, err := runCLI(t, "orchestrator", "--publish-allow", "a", "--nats-url", "nats://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Fatalf("orchestrator takes --publish-allow: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr, "--publish-allow", "$JS.API.STREAM.INFO.>"}, []string{server})
	apply := func(subject string) (string, error) {
		file := filepath.Join(t.TempDir(), "pub.yaml")
		src := "name: pub\nsteps:\n  - { id: p, task: nats.publish, input: { subject: \"" + subject + "\" } }\n"
		if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return runCLI(t, "def", "apply", "-f", file, server)
	}
	if out, err := apply("$JS.API.STREAM.PURGE.WEFT_HISTORY"); err == nil || !strings.Contains(out+err.Error(), "reserved") {
		t.Fatalf("a reserved subject outside the allow-list was accepted: %v\n%s", err, out)
	}
	if out, err := apply("$JS.API.STREAM.INFO.WEFT_HISTORY"); err != nil {
		t.Fatalf("an allowed subject was refused: %v\n%s", err, out)
	}
	out, err := runCLI(t, "start", "pub", "--id", "pub-1", "--wait", server)
	if err != nil || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("publishing to an allowed subject: %v\n%s", err, out)
	}
}
