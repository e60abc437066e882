package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/internal/natstest"
)

// The command line /debug/pprof/cmdline serves leaves out the NATS
// password and the passwords of NATS URLs: whatever reaches the profiles'
// address reads it, an http step among them (a definition's step runs on
// this host, and reaches loopback unless --http-deny says otherwise), and
// with the password it would reach JetStream's API.
func TestPprofCommandLineHoldsNoNATSPassword(t *testing.T) {
	nats := natstest.Start(t).URL()
	withUser := strings.Replace(nats, "nats://", "nats://weft:url-s3cret@", 1)
	pprofAddr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(weftBinary(t), "server", "--nats-url", withUser, "--nats-user", "weft", "--nats-password", "flag-s3cret",
		"--addr", freeAddr(t), "--pprof", pprofAddr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var body string
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/cmdline")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				body = strings.ReplaceAll(string(b), "\x00", " ")
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("profiles not served: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(body, "s3cret") {
		t.Errorf("the command line served holds a password: %q", body)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), "s3cret") {
			t.Errorf("the log holds a password:\n%s", log)
			break
		}
		if strings.Contains(string(log), "weft running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log its start:\n%s", log)
		}
	}
	if !strings.Contains(body, "--nats-password REDACTED") || !strings.Contains(body, "nats://weft:REDACTED@") || !strings.Contains(body, "--pprof "+pprofAddr) {
		t.Errorf("the command line served is not the command line with its secrets left out: %q", body)
	}
}

func TestRedactArgs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"weft server --nats-password pw --addr :1", "weft server --nats-password REDACTED --addr :1"},
		{"weft server --nats-password=pw", "weft server --nats-password=REDACTED"},
		{"weft api --nats-url nats://u:pw@a:4222,nats://v:pw2@b:4222", "weft api --nats-url nats://u:REDACTED@a:4222,nats://v:REDACTED@b:4222"},
		{"weft api --nats-url=tls://u:p%40w@a", "weft api --nats-url=tls://u:REDACTED@a"},
		{"weft api --nats-url nats://u@a --nats-user u", "weft api --nats-url nats://REDACTED@a --nats-user u"},
		// NATS takes a URL's user without a password for a token.
		{"weft api --nats-url nats://s3cr3t@a:4222,nats://s3cr3t@b:4222", "weft api --nats-url nats://REDACTED@a:4222,nats://REDACTED@b:4222"},
		// A password may hold '@': the host follows the last one.
		{"weft api --nats-url nats://u:p@ss@a:4222/", "weft api --nats-url nats://u:REDACTED@a:4222/"},
		{"weft api --nats-url nats://a:4222,nats://u:pw@b:4222", "weft api --nats-url nats://a:4222,nats://u:REDACTED@b:4222"},
	} {
		if got := strings.Join(redactArgs(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("redactArgs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
