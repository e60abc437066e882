package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/internal/logbuf"
)

// runCLI runs one weft command in-process and returns its output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String() + errOut.String(), err
}

// testServer is a `weft server` running in this process.
type testServer struct {
	// Logs is what it wrote to its standard error.
	Logs *logbuf.Buffer
	// Stdout is what it wrote to its standard output.
	Stdout *logbuf.Buffer
	stop   func() error
}

// Stop cancels the server and returns what it returned; it is also done
// when the test ends.
func (s *testServer) Stop() error { return s.stop() }

// startServer runs `weft server args...` in this process until the test
// ends, and waits until `weft def list probe...` succeeds.
func startServer(t *testing.T, args, probe []string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	s := &testServer{Logs: &logbuf.Buffer{}, Stdout: &logbuf.Buffer{}}
	// The data directory is made (and its removal registered) before the
	// server's stop is: cleanups run last first, so the server has stopped
	// writing to it when it is removed.
	data := t.TempDir()
	go func() {
		args := append([]string{"server", "--data", data, "--nats-addr", "127.0.0.1:0", "--log-level", "error"}, args...)
		done <- run(ctx, args, s.Stdout, s.Logs)
	}()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = errors.New("server did not stop on cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := runCLI(t, append([]string{"def", "list"}, probe...)...)
		if err == nil {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v\n%s", err, s.Logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The client commands against a `weft server` running in this process.
func TestCLIAgainstServer(t *testing.T) {
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr, "--pprof", pprofAddr}, []string{server})

	// Profiles are served apart from the API when asked for.
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("--pprof: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("goroutine profile")) {
		t.Fatalf("--pprof answered %d: %.200s", resp.StatusCode, body)
	}

	file := filepath.Join(t.TempDir(), "greet.yaml")
	if err := os.WriteFile(file, []byte(`
name: greet
search:
  name: "${ input.name }"
steps:
  - id: hello
    task: echo
    input: "${ 'hello ' + input.name }"
    search: { greeting: "${ steps.hello.output }" }
  - id: shout
    task: echo
    input: "${ steps.hello.output.upperAscii() }"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "def", "apply", "-f", file, server)
	if err != nil || !strings.Contains(out, "greet") || !strings.Contains(out, "revision 1") {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	// The file may be named as an argument as well; naming none, or two,
	// is refused with what to type.
	if out, err = runCLI(t, "def", "apply", file, server); err != nil || !strings.Contains(out, "revision 1 (unchanged)") {
		t.Fatalf("def apply FILE: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "def", "apply", server); err == nil || !strings.Contains(err.Error()+out, "weft def apply FILE") {
		t.Fatalf("def apply with no file: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "def", "apply", file, "-f", file+".other", server); err == nil || !strings.Contains(err.Error()+out, "apply one at a time") {
		t.Fatalf("def apply with two files: %v\n%s", err, out)
	}
	out, err = runCLI(t, "start", "greet", "--input", `{"name": "ada"}`, "--id", "cli-1", "--wait", server)
	if err != nil || !strings.Contains(out, "cli-1") || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, `"HELLO ADA"`) {
		t.Fatalf("start --wait: %v\n%s", err, out)
	}
	out, err = runCLI(t, "get", "cli-1", server)
	if err != nil || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "hello") || !strings.Contains(out, "shout") ||
		!strings.Contains(out, `search:      greeting="hello ada" name=ada`) {
		t.Fatalf("get: %v\n%s", err, out)
	}
	out, err = runCLI(t, "history", "cli-1", server)
	if err != nil {
		t.Fatalf("history: %v\n%s", err, out)
	}
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			types = append(types, f[2])
		}
	}
	want := "WorkflowStarted SearchAttributesSet StepScheduled StepCompleted SearchAttributesSet StepScheduled StepCompleted WorkflowCompleted"
	if strings.Join(types, " ") != want {
		t.Fatalf("history types %v, want %s\n%s", types, want, out)
	}
	if first, _, _ := strings.Cut(out, "\n"); !strings.Contains(first, "WorkflowStarted  by=anonymous  ") {
		t.Fatalf("history does not say who started the run: %s", first)
	}
	out, err = runCLI(t, "history", "cli-1", "--json", server)
	if err != nil || strings.Count(out, "\n") != 8 || !strings.Contains(out, `"type":"WorkflowCompleted"`) && !strings.Contains(out, `"type": "WorkflowCompleted"`) {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--status", "completed", server)
	if err != nil || !strings.Contains(out, "cli-1") || !strings.Contains(out, "STARTED-BY") ||
		!strings.Contains(out, `anonymous   greeting="hello ada" name=ada`) {
		t.Fatalf("list: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--query", `status == "completed" && definition == "greet"`, server)
	if err != nil || !strings.Contains(out, "cli-1") {
		t.Fatalf("list --query: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--query", `search.name == "ada" && search.greeting.startsWith("hello")`, server)
	if err != nil || !strings.Contains(out, "cli-1") {
		t.Fatalf("list --query on search attributes: %v\n%s", err, out)
	}
	out, err = runCLI(t, "list", "--query", `status == "running"`, server)
	if err != nil || strings.Contains(out, "cli-1") {
		t.Fatalf("list --query running listed a completed run: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "list", "--query", `status ==`, server); err == nil || !strings.Contains(err.Error(), "invalid_argument") {
		t.Fatalf("list with a bad query: %v\n%s", err, out)
	}
	// export writes each event of the runs found as a JSON line with the
	// run's id, and goes on after a run it names.
	q := `status == "completed" && definition == "greet"`
	out, err = runCLI(t, "export", "--query", q, "--since", "2000-01-01T00:00:00Z", server)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	var exported []map[string]any
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") {
			var ev map[string]any
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("export line %q: %v", line, err)
			}
			exported = append(exported, ev)
		}
	}
	if len(exported) != 8 || exported[0]["workflowId"] != "cli-1" || exported[0]["type"] != "WorkflowStarted" || exported[7]["type"] != "WorkflowCompleted" ||
		!strings.Contains(out, "exported 1 runs") || strings.Contains(out, "--resume-after") {
		t.Fatalf("export wrote %d events: %v\n%s", len(exported), exported, out)
	}
	if out, err = runCLI(t, "export", "--query", q, "--resume-after", "cli-1", server); err != nil || strings.Contains(out, "{") {
		t.Fatalf("export after the last run: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "export", "--since", "yesterday", server); err == nil || !strings.Contains(err.Error(), "--since") {
		t.Fatalf("export with a bad --since: %v\n%s", err, out)
	}
	out, err = runCLI(t, "get", "missing", server)
	if err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("get missing: %v\n%s", err, out)
	}
	out, err = runCLI(t, "start", "greet", "--input", `{bad`, server)
	if err == nil || !strings.Contains(err.Error(), "--input") {
		t.Fatalf("start with bad input: %v\n%s", err, out)
	}

	// await prints a closed run's outcome at once, and fails clearly for
	// an unknown id.
	out, err = runCLI(t, "await", "cli-1", server)
	if err != nil || !strings.Contains(out, "status: COMPLETED") || !strings.Contains(out, `output: "HELLO ADA"`) {
		t.Fatalf("await a closed run: %v\n%s", err, out)
	}
	out, err = runCLI(t, "await", "missing", "--timeout", "5s", server)
	if err == nil || !strings.Contains(err.Error(), "not_found") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("await missing: %v\n%s", err, out)
	}
	testAwaitRunning(t, server)
}

// testAwaitRunning awaits runs that close while, or not before, it waits.
func testAwaitRunning(t *testing.T, server string) {
	file := filepath.Join(t.TempDir(), "parked.yaml")
	if err := os.WriteFile(file, []byte(`
name: parked
steps:
  - id: w
    wait: { signal: go }
output: "${ steps.w.output }"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	for _, id := range []string{"parked-1", "parked-2"} {
		if out, err := runCLI(t, "start", "parked", "--id", id, server); err != nil {
			t.Fatalf("start %s: %v\n%s", id, err, out)
		}
	}
	out, err := runCLI(t, "await", "parked-1", "--timeout", "300ms", server)
	if err == nil || !strings.Contains(err.Error(), "parked-1 is still running after 300ms") {
		t.Fatalf("await --timeout on a running run: %v\n%s", err, out)
	}

	type result struct {
		out string
		err error
	}
	awaited := make(chan result, 1)
	go func() {
		out, err := runCLI(t, "await", "parked-1", server)
		awaited <- result{out, err}
	}()
	time.Sleep(200 * time.Millisecond) // the await is most likely waiting by now; if not, it finds the run closed
	// A signal no step waits for is sent, with a warning; one a step
	// waits for, without.
	if out, err := runCLI(t, "signal", "parked-2", "og", server); err != nil || !strings.Contains(out, `warning: no step of parked revision 1 waits for signal "og" (its waits: go)`) {
		t.Fatalf("signal og: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "signal", "parked-1", "go", "--payload", `{"ok": true}`, server); err != nil || strings.Contains(out, "warning") {
		t.Fatalf("signal: %v\n%s", err, out)
	}
	select {
	case r := <-awaited:
		if r.err != nil || !strings.Contains(r.out, "status: COMPLETED") || !strings.Contains(r.out, `output: {"ok":true}`) {
			t.Fatalf("await a run that closes: %v\n%s", r.err, r.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("await did not return after the run closed")
	}

	// A run that does not complete: the outcome is printed and the exit
	// status is non-zero.
	if out, err := runCLI(t, "cancel", "parked-2", "--reason", "not needed", server); err != nil {
		t.Fatalf("cancel: %v\n%s", err, out)
	}
	out, err = runCLI(t, "await", "parked-2", server)
	if err == nil || !strings.Contains(out, "status: CANCELED") || !strings.Contains(err.Error(), "workflow parked-2 failed") {
		t.Fatalf("await a canceled run: %v\n%s", err, out)
	}
	// weft schedules names a cron trigger by its key, which names its runs.
	cronFile := filepath.Join(t.TempDir(), "ticker.yaml")
	if err := os.WriteFile(cronFile, []byte("name: ticker\ntriggers:\n  - cron: \"0 0 1 1 *\"\nsteps:\n  - { id: a, task: echo, input: 1 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", cronFile, server); err != nil {
		t.Fatalf("def apply ticker: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err = runCLI(t, "schedules", server)
		if err == nil && regexp.MustCompile(`(?m)^DEFINITION\s+KEY\s+CRON.*\nticker\s+[0-9a-f]{12}\s+0 0 1 1 \*`).MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedules: %v\n%s", err, out)
		}
	}
	// A start of the same request is answered with its run, and says that
	// nothing was started again.
	for i, want := range []string{"", "cli-2 was started before by request cli-2-req: not started again"} {
		out, err = runCLI(t, "start", "greet", "--input", `{"name": "bob"}`, "--id", "cli-2", "--request-id", "cli-2-req", server)
		if err != nil || !strings.Contains(out, "cli-2") || strings.Contains(out, "not started again") != (want != "") || !strings.Contains(out, want) {
			t.Fatalf("start %d of one request: %v\n%s", i+1, err, out)
		}
	}
}

// weft bench runs against an embedded Weft and prints one JSON line.
func TestBenchCommand(t *testing.T) {
	out, err := runCLI(t, "bench", "-n", "40", "-c", "4", "--floor", "--floor-batch", "8", "--json", "--quiet")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench output %q: %v", out, err)
	}
	for _, k := range []string{"workflows", "workflows_per_s", "steps_per_s", "events_per_s", "p50_ms", "p90_ms", "p99_ms", "floor_events_per_s", "floor_ratio", "floor_batched_per_s"} {
		if v, _ := res[k].(float64); v <= 0 {
			t.Fatalf("%s = %v in %s", k, res[k], out)
		}
	}
	if res["workflows"] != 40.0 || res["wait"] != "await" {
		t.Fatalf("workflows %v, wait %v", res["workflows"], res["wait"])
	}
}

// start --wait of a run that fails prints the run's error once, with the
// outcome on standard output; the exit message only says the run failed,
// and the exit status is non-zero.
func TestStartWaitPrintsAFailedRunsErrorOnce(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr}, []string{server})
	file := filepath.Join(t.TempDir(), "hello.yaml")
	if err := os.WriteFile(file, []byte(`
name: hello
steps:
  - id: greet
    task: echo
    input: "${ 'hello ' + input.name }"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	// Started without --input: its input is null, and the step fails.
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, []string{"start", "hello", "--id", "hello-1", "--wait", server}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("start --wait of a failing run succeeded\n%s%s", &stdout, &stderr)
	}
	// main prints the returned error after the command's output.
	shown := stdout.String() + stderr.String() + "weft: " + err.Error() + "\n"
	_, runErr, _ := strings.Cut(stdout.String(), "status: FAILED\nerror: ")
	runErr, _, _ = strings.Cut(runErr, "\n")
	if runErr == "" || strings.Count(shown, runErr) != 1 || err.Error() != "workflow hello-1 failed" {
		t.Fatalf("want the run's error once, on standard output, and a non-zero exit; shown:\n%s", shown)
	}
	if !strings.Contains(runErr, `input is null, so it has no key "name": the run was started without input`) {
		t.Fatalf("the run's error %q does not say its input is null", runErr)
	}
}
