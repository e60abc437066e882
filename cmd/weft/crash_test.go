package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary weftBinary built once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// weftBinary builds the weft binary once per test run.
func weftBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "weft-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "weft")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serverProc is a `weft server` running as a child process.
type serverProc struct {
	t       *testing.T
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
	apiURL  string
	logPath string
}

func startServerProc(t *testing.T, data string) *serverProc {
	t.Helper()
	addr := freeAddr(t)
	p := &serverProc{t: t, apiURL: "http://" + addr, logPath: filepath.Join(t.TempDir(), "server.log"),
		args: []string{"server", "--data", data, "--addr", addr, "--nats-addr", freeAddr(t), "--task-ack-wait", "2s"}}
	p.start()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

func (p *serverProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd = exec.Command(weftBinary(p.t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { _ = p.cmd.Wait(); logf.Close(); close(exited) }()
	defs := weftv1connect.NewDefinitionServiceClient(http.DefaultClient, p.apiURL)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := defs.ListDefinitions(context.Background(), connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("server not ready: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL: no cleanup, no acks, no flush.
func (p *serverProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
}

// ledger is an outside system that counts calls per Idempotency-Key.
type ledger struct {
	mu    sync.Mutex
	calls map[string]int
	total int
	// slowAfter: calls after this many are held for a while, so that
	// steps are in flight when the server dies.
	slowAfter int
}

func (l *ledger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	l.calls[r.Header.Get("Idempotency-Key")]++
	l.total++
	slow := l.total > l.slowAfter
	l.mu.Unlock()
	if slow {
		time.Sleep(500 * time.Millisecond)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"ok": true}`)
}

func (l *ledger) snapshot() (map[string]int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int, len(l.calls))
	for k, v := range l.calls {
		m[k] = v
	}
	return m, l.total
}

// The whole server is killed with SIGKILL while many workflows are in
// flight, then started again on the same data dir: every workflow
// completes, every step reached the outside system, and no step whose
// completion was recorded before the kill ran again.
func TestServerKilledMidWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a server process")
	}
	led := &ledger{calls: map[string]int{}, slowAfter: 40}
	effects := httptest.NewServer(led)
	defer effects.Close()

	data := t.TempDir()
	p := startServerProc(t, data)
	wf := weftv1connect.NewWorkflowServiceClient(http.DefaultClient, p.apiURL)
	defs := weftv1connect.NewDefinitionServiceClient(http.DefaultClient, p.apiURL)
	ctx := context.Background()
	_, err := defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: `
name: effects
steps:
  - { id: one, task: http, input: { method: POST, url: "${ input.url }", body: { step: 1 } } }
  - { id: two, task: http, input: { method: POST, url: "${ input.url }", body: { step: 2 } } }
  - { id: three, task: http, input: { method: POST, url: "${ input.url }", body: { step: 3 } } }
`}))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	input, _ := structpb.NewValue(map[string]any{"url": effects.URL})
	for i := range n {
		_, err := wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: "effects", WorkflowId: fmt.Sprintf("crash-%d", i), Input: input}))
		if err != nil {
			t.Fatal(err)
		}
	}
	// Let some steps happen, then record which completions are in history.
	deadline := time.Now().Add(60 * time.Second)
	for _, total := led.snapshot(); total < n; _, total = led.snapshot() {
		if time.Now().After(deadline) {
			t.Fatalf("only %d calls before the kill", total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	recorded := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("crash-%d", i)
		resp, err := wf.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageSize: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.Msg.Events {
			if ev.Type == "StepCompleted" {
				recorded[id+"/"+ev.StepPath] = true
			}
		}
	}
	p.kill()
	_, callsAtKill := led.snapshot()
	if len(recorded) == 0 || len(recorded) == 3*n {
		t.Fatalf("kill came at the wrong moment: %d of %d steps recorded", len(recorded), 3*n)
	}
	p.start()

	for i := range n {
		id := fmt.Sprintf("crash-%d", i)
		deadline := time.Now().Add(90 * time.Second)
		for {
			resp, err := wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
			if err != nil {
				t.Fatal(err)
			}
			if s := resp.Msg.Workflow.Status; s == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
				break
			} else if s != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING || time.Now().After(deadline) {
				log, _ := os.ReadFile(p.logPath)
				t.Fatalf("%s: %v %v\n%s", id, s, resp.Msg.Workflow.Error, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		hist, err := wf.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageSize: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		scheduled := map[string]int{}
		for _, ev := range hist.Msg.Events {
			if ev.Type == "StepScheduled" {
				scheduled[ev.StepPath]++
			}
		}
		for _, step := range []string{"one", "two", "three"} {
			if scheduled[step] != 1 {
				t.Fatalf("%s: step %s scheduled %d times", id, step, scheduled[step])
			}
		}
	}
	calls, total := led.snapshot()
	for i := range n {
		for _, step := range []string{"one", "two", "three"} {
			key := fmt.Sprintf("crash-%d/%s", i, step)
			if calls[key] == 0 {
				t.Errorf("step %s never reached the outside system", key)
			}
			if recorded[key] && calls[key] != 1 {
				t.Errorf("step %s completed before the kill but ran %d times", key, calls[key])
			}
		}
	}
	t.Logf("%d steps recorded before the kill, %d calls then, %d calls in all for %d steps", len(recorded), callsAtKill, total, 3*n)

	// The listing caught up too: the index entries a crash interrupted were
	// written by the restarted server.
	deadline = time.Now().Add(30 * time.Second)
	for {
		resp, err := wf.ListWorkflows(ctx, connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "effects", PageSize: 1000}))
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, w := range resp.Msg.Workflows {
			if w.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
				done++
			}
		}
		if done == n && len(resp.Msg.Workflows) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listing shows %d workflows, %d of them completed; want %d completed", len(resp.Msg.Workflows), done, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
