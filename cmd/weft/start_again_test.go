package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A start whose answer is lost (NATS did not answer the API in time, as
// when it was stopped for minutes, or the API stopped) may have been made:
// weft start makes it again with the same request id, so the run is
// started once and --wait waits for it, rather than failing with the
// answer's error while the run goes on unawaited.
func TestStartIsMadeAgainWhenItsAnswerIsLost(t *testing.T) {
	calls := map[string]*atomic.Int32{"/StartWorkflow": {}}
	server := lossyServer(t, calls, http.StatusGatewayTimeout, `{"code":"deadline_exceeded","message":"eventstore: append to lost-1: context deadline exceeded"}`)
	file := filepath.Join(t.TempDir(), "one.yaml")
	if err := os.WriteFile(file, []byte("name: one\nsteps:\n  - { id: a, task: echo, input: 1 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	out, err := runCLI(t, "start", "one", "--id", "lost-1", "--wait", server)
	if err != nil || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "trying again with the same request id") ||
		strings.Contains(out, "not started again") {
		t.Fatalf("start --wait whose first answer was lost: %v\n%s", err, out)
	}
	if n := calls["/StartWorkflow"].Load(); n != 2 {
		t.Errorf("StartWorkflow called %d times; want 2 (the lost one, then once again)", n)
	}
	out, err = runCLI(t, "history", "lost-1", server)
	if err != nil || strings.Count(out, "WorkflowStarted") != 1 {
		t.Fatalf("history of lost-1: %v\n%s", err, out)
	}
}

// A signal or a cancel whose answer is lost is made again the same way,
// with a request id the command makes when given none: it is taken once.
func TestSignalAndCancelAreMadeAgainWhenTheirAnswerIsLost(t *testing.T) {
	calls := map[string]*atomic.Int32{"/SignalWorkflow": {}, "/CancelWorkflow": {}}
	server := lossyServer(t, calls, http.StatusServiceUnavailable, `{"code":"unavailable","message":"the API is stopping"}`)
	file := filepath.Join(t.TempDir(), "waits.yaml")
	if err := os.WriteFile(file, []byte("name: waits\nsteps:\n  - { id: a, wait: { signal: go } }\n  - { id: b, wait: { signal: go } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "start", "waits", "--id", "lost-2", server); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "signal", "lost-2", "go", server); err != nil || !strings.Contains(out, "trying again with the same request id") {
		t.Fatalf("signal whose first answer was lost: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "cancel", "lost-2", server); err != nil || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel whose first answer was lost: %v\n%s", err, out)
	}
	out, err := runCLI(t, "history", "lost-2", server)
	if err != nil || strings.Count(out, "SignalReceived") != 1 || strings.Count(out, "CancelRequested") != 1 {
		t.Fatalf("history of lost-2 (one signal, one cancel): %v\n%s", err, out)
	}
	for suffix, n := range calls {
		if got := n.Load(); got != 2 {
			t.Errorf("%s called %d times; want 2", suffix, got)
		}
	}
}

// A write made to an address where no server listens is made again (a
// server restarting refuses connections too), and the note that says so
// asks at once whether a server runs there, rather than after the five
// minutes of trying again.
func TestWriteMadeAgainOnARefusedConnectionAsksForTheServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noted := &noteWriter{noted: cancel}
	var out bytes.Buffer
	err := run(ctx, []string{"start", "one", "--server", "http://127.0.0.1:1"}, &out, noted)
	if err == nil {
		t.Fatal("start against no server succeeded")
	}
	note := noted.String()
	if !strings.Contains(note, "trying again with the same request id") ||
		!strings.Contains(note, "is a weft server running at the address --server") {
		t.Fatalf("the note about trying again does not ask whether a server runs there:\n%s", note)
	}
}

// A write given up (the command interrupted, or five minutes passed)
// while the server could not answer may have been made: the error names
// the request id to make it again with, once.
func TestWriteGivenUpNamesItsRequestID(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"signal", "run-1", "go", "--request-id", "sig-7", "--server", "http://127.0.0.1:1"}, &out, &noteWriter{noted: cancel})
	if err == nil || !strings.Contains(err.Error(), "unavailable: ") ||
		!strings.Contains(err.Error(), "make it again with --request-id sig-7") {
		t.Fatalf("signal given up: %v; want the request id to make it again with", err)
	}
}

// noteWriter keeps what a command writes on its standard error and calls
// noted after the first write.
type noteWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	noted func()
}

func (w *noteWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	w.noted()
	return n, err
}

func (w *noteWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A retry answered Aborted (it met another write at the run's history,
// a try of its own whose answer was lost, say) is made again with the
// same request id, and the run is redriven once.
func TestARetryAnsweredAbortedIsMadeAgain(t *testing.T) {
	calls := map[string]*atomic.Int32{"/RetryWorkflow": {}}
	server := lossyServer(t, calls, http.StatusConflict, `{"code":"aborted","message":"eventstore: append to fails-1: conflict"}`)
	file := filepath.Join(t.TempDir(), "fails.yaml")
	if err := os.WriteFile(file, []byte(`
name: fails
steps:
  - id: call
    task: http
    retry: { max_attempts: 1 }
    input: { method: GET, url: "http://127.0.0.1:1/" }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "start", "fails", "--id", "fails-1", "--wait", server); err == nil || !strings.Contains(out, "FAILED") {
		t.Fatalf("start --wait of a run that fails: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "retry", "fails-1", server); err != nil || !strings.Contains(out, "retry requested") {
		t.Fatalf("retry whose first answer was aborted: %v\n%s", err, out)
	}
	out, err := runCLI(t, "history", "fails-1", server)
	if err != nil || strings.Count(out, "WorkflowRetried") != 1 {
		t.Fatalf("history of fails-1 (one redrive): %v\n%s", err, out)
	}
	if n := calls["/RetryWorkflow"].Load(); n != 2 {
		t.Errorf("RetryWorkflow called %d times; want 2", n)
	}
}

// lossyServer runs a weft server behind a proxy that passes each call on,
// except the first call of each procedure named in calls (by the end of
// its path), which it makes and then answers with status and body, as if
// its answer was lost on the way back; it counts the calls of those
// procedures in calls and returns the --server flag of the proxy.
func lossyServer(t *testing.T, calls map[string]*atomic.Int32, status int, body string) string {
	t.Helper()
	addr := freeAddr(t)
	startServer(t, []string{"--addr", addr}, []string{"--server=http://" + addr})
	target, _ := url.Parse("http://" + addr)
	forward := httputil.NewSingleHostReverseProxy(target)
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for suffix, n := range calls {
			if strings.HasSuffix(r.URL.Path, suffix) && n.Add(1) == 1 {
				forward.ServeHTTP(httptest.NewRecorder(), r)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
				return
			}
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(lossy.Close)
	return "--server=" + lossy.URL
}
