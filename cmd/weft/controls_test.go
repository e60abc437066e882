package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// escapes are terminal control sequences a run's outside world can put in
// text Weft records: clear the screen, set the window title, write the
// clipboard (OSC 52), and a bare carriage return that overwrites a line.
const escapes = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\rfake"

// No text a run's outside world chose reaches the operator's terminal as
// control characters: an http step's error (the body of a remote
// server's 4xx), a search attribute from a webhook's body, the subject a
// producer published on and a malformed trigger payload are shown with
// their control characters made visible, in every human-readable command.
func TestCLIShowsNoControlCharacters(t *testing.T) {
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("bad " + escapes))
	}))
	t.Cleanup(remote.Close)
	addr, natsAddr := freeAddr(t), freeAddr(t)
	server := "--server=http://" + addr
	startServerAt(t, addr, natsAddr, server)

	file := filepath.Join(t.TempDir(), "ctl.yaml")
	if err := os.WriteFile(file, []byte(`
name: ctl
search:
  who: "${ input.who }"
triggers:
  - webhook: ctl
  - subject: ctl.>
    input: { who: "${ subject }", url: "`+remote.URL+`" }
steps:
  - id: call
    task: http
    input: { url: "${ input.url }" }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	// A run started with text from outside (as a webhook's body would).
	// (JSON escapes C0 controls, but not DEL, C1 controls (U+009B is CSI)
	// or bidi overrides: --json output must.)
	out, err := runCLI(t, "start", "ctl", "--id", "ctl-1", "--input", `{"who": "\u001b[2Jann\r\u009b2J\u007f\u202eevil", "url": "`+remote.URL+`"}`, "--wait", server)
	if err == nil {
		t.Fatalf("start --wait: the run completed\n%s", out)
	}
	checkNoControls(t, "start --wait", out+err.Error())
	// A producer's message on a subject of its choice, and one that is
	// not JSON.
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("ctl.\x1b]0;owned\x07", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("ctl.x", []byte("not json "+escapes)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := runCLI(t, "list", "--status", "failed", server)
		if err == nil && strings.Count(out, "FAILED") >= 2 {
			if f, _ := runCLI(t, "triggers", "failures", server); strings.Contains(f, "not json") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs did not fail, or the failure was not recorded: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"get", "ctl-1"}, {"await", "ctl-1"}, {"history", "ctl-1"}, {"list"}, {"triggers", "failures"},
		{"get", "ctl-1", "--json"}, {"history", "ctl-1", "--json"}, {"export", "--query", "definition = 'ctl'"},
	} {
		out, err := runCLI(t, append(args, server)...)
		if err != nil {
			out += err.Error()
		}
		checkNoControls(t, strings.Join(args, " "), out)
	}
	// The JSON, escaped, reads back as what was recorded.
	var got struct {
		Input struct{ Who string } `json:"input"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "get", "ctl-1", "--json", server)), &got); err != nil ||
		got.Input.Who != "\x1b[2Jann\r\u009b2J\x7f\u202eevil" {
		t.Fatalf("weft get --json reads back as %q, %v", got.Input.Who, err)
	}
	out, err = runCLI(t, "list", server)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "ctl-") && strings.Contains(line, "subject:") {
			checkNoControls(t, "weft history of "+strings.Fields(line)[0], mustCLI(t, "history", strings.Fields(line)[0], server))
			checkNoControls(t, "weft get of "+strings.Fields(line)[0], mustCLI(t, "get", strings.Fields(line)[0], server))
		}
	}
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCLI(t, args...)
	if err != nil {
		return out + err.Error()
	}
	return out
}

// checkNoControls fails the test when out holds a control character other
// than a newline (or, between table columns, a tab).
func checkNoControls(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			t.Fatalf("%s prints control character %q at byte %d:\n%q", what, r, i, out)
		}
	}
}

// startServerAt starts a `weft server` with its API on addr and its NATS
// on natsAddr.
func startServerAt(t *testing.T, addr, natsAddr, server string) {
	t.Helper()
	startServer(t, []string{"--addr", addr, "--nats-addr", natsAddr}, []string{server})
}
