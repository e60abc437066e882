package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]weftv1.WorkflowStatus{
		"":          weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED,
		"running":   weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING,
		"Completed": weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED,
		"FAILED":    weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED,
		"canceled":  weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED,
		"suspended": weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED,
	} {
		got, err := parseStatus(in)
		if err != nil || got != want {
			t.Errorf("parseStatus(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"unspecified", "done", "workflow_status_running"} {
		if _, err := parseStatus(in); err == nil || !strings.Contains(err.Error(), "invalid --status") {
			t.Errorf("parseStatus(%q) error = %v; want invalid --status", in, err)
		}
	}
}

func TestParseJSONFlag(t *testing.T) {
	if v, err := parseJSONFlag("input", "", nil); v != nil || err != nil {
		t.Errorf(`parseJSONFlag("") = %v, %v; want nil, nil`, v, err)
	}
	for in, want := range map[string]string{
		`{"a": [1, "x", true, null]}`: `{"a":[1,"x",true,null]}`,
		` 42 `:                        `42`,
		`"s"`:                         `"s"`,
		`null`:                        `null`,
	} {
		v, err := parseJSONFlag("input", in, nil)
		if err != nil {
			t.Errorf("parseJSONFlag(%q): %v", in, err)
			continue
		}
		if got := valueJSON(v); got != want {
			t.Errorf("valueJSON(parseJSONFlag(%q)) = %s; want %s", in, got, want)
		}
	}
	// From a file and from standard input, as the API would read them:
	// a number a float64 would round is refused, not sent rounded.
	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, []byte(`{"big": [1, 2]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := parseJSONFlag("input", "@"+file, nil); err != nil || valueJSON(v) != `{"big":[1,2]}` {
		t.Errorf("parseJSONFlag(@file) = %s, %v", valueJSON(v), err)
	}
	if v, err := parseJSONFlag("payload", "-", strings.NewReader(`"from stdin"`)); err != nil || valueJSON(v) != `"from stdin"` {
		t.Errorf("parseJSONFlag(-) = %s, %v", valueJSON(v), err)
	}
	if _, err := parseJSONFlag("input", "@"+file+".missing", nil); err == nil || !strings.HasPrefix(err.Error(), "invalid --input: ") {
		t.Errorf("parseJSONFlag(@missing) error = %v", err)
	}
	if _, err := parseJSONFlag("input", `{"id": 9007199254740993}`, nil); err == nil || !strings.Contains(err.Error(), "send it as a string") {
		t.Errorf("parseJSONFlag(2^53+1) error = %v; want it refused", err)
	}
	for _, in := range []string{"{", "hello", `{"a":1} x`} {
		if _, err := parseJSONFlag("input", in, nil); err == nil || !strings.HasPrefix(err.Error(), "invalid --input: ") {
			t.Errorf("parseJSONFlag(%q) error = %v; want invalid --input", in, err)
		}
	}
}

func TestFormatEvent(t *testing.T) {
	ts := timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC))
	for _, tc := range []struct {
		ev   *weftv1.HistoryEvent
		want string
	}{
		{
			&weftv1.HistoryEvent{Sequence: 1, Time: ts, Type: "WorkflowStarted",
				Data: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}})},
			`1  2025-03-01T12:00:00.0000005Z  WorkflowStarted  {"n":1}`,
		},
		{
			&weftv1.HistoryEvent{Sequence: 7, Time: ts, Type: "StepFailed", StepPath: "a.b", Attempt: 2},
			`7  2025-03-01T12:00:00.0000005Z  StepFailed  step=a.b attempt=2`,
		},
		{
			&weftv1.HistoryEvent{Sequence: 3, Type: "StepScheduled", StepPath: "a"},
			`3  StepScheduled  step=a`,
		},
		{
			&weftv1.HistoryEvent{Sequence: 4, Time: ts, Type: "SignalReceived", Identity: "cert:CN=bob",
				Data: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"name": structpb.NewStringValue("go")}})},
			`4  2025-03-01T12:00:00.0000005Z  SignalReceived  by=cert:CN=bob  {"name":"go"}`,
		},
	} {
		if got := formatEvent(tc.ev); got != tc.want {
			t.Errorf("formatEvent = %q; want %q", got, tc.want)
		}
	}
}

func TestFormatSearch(t *testing.T) {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{
		"customer": structpb.NewStringValue("ann"),
		"note":     structpb.NewStringValue("two words"),
		"empty":    structpb.NewStringValue(""),
		"n":        structpb.NewNumberValue(42),
		"big":      structpb.NewNumberValue(1 << 40),
		"ratio":    structpb.NewNumberValue(0.25),
		"vip":      structpb.NewBoolValue(true),
		"due":      structpb.NewStringValue("2025-03-01T12:00:00Z"),
	}}
	want := `big=1099511627776 customer=ann due=2025-03-01T12:00:00Z empty="" n=42 note="two words" ratio=0.25 vip=true`
	if got := formatSearch(s); got != want {
		t.Errorf("formatSearch = %q\nwant %q", got, want)
	}
	if got := formatSearch(nil); got != "" {
		t.Errorf("formatSearch(nil) = %q, want empty", got)
	}
	if got := clip("abcdef", 4); got != "abc…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("ééé", 3); got != "ééé" {
		t.Errorf("clip of a short string = %q", got)
	}
}

func TestFormatFailure(t *testing.T) {
	for _, tc := range []struct {
		f    *weftv1.Failure
		want string
	}{
		{nil, ""},
		{&weftv1.Failure{Message: "boom"}, "boom"},
		{&weftv1.Failure{Type: "Timeout", Message: "too slow", StepPath: "x"}, "Timeout: too slow"},
	} {
		if got := formatFailure(tc.f); got != tc.want {
			t.Errorf("formatFailure(%v) = %q; want %q", tc.f, got, tc.want)
		}
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":        "http://127.0.0.1:8080",
		"http://localhost:1":    "http://localhost:1",
		"https://weft.example/": "https://weft.example/",
	} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRPCErr(t *testing.T) {
	err := rpcErr(connect.NewError(connect.CodeNotFound, errors.New("workflow x not found")))
	if got, want := err.Error(), "not_found: workflow x not found"; got != want {
		t.Errorf("rpcErr = %q; want %q", got, want)
	}
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("CodeOf(rpcErr) = %v; want not_found", connect.CodeOf(err))
	}
	plain := errors.New("plain")
	if rpcErr(plain) != plain || rpcErr(nil) != nil {
		t.Error("rpcErr changed a non-Connect error")
	}
}

// fakeAwaits serves AwaitWorkflow from answer, called with the number of
// the call (from 1), and records the requests.
type fakeAwaits struct {
	weftv1connect.UnimplementedWorkflowServiceHandler
	answer func(n int) (*weftv1.Workflow, error)

	mu   sync.Mutex
	reqs []*weftv1.AwaitWorkflowRequest
}

func (f *fakeAwaits) AwaitWorkflow(_ context.Context, req *connect.Request[weftv1.AwaitWorkflowRequest]) (*connect.Response[weftv1.AwaitWorkflowResponse], error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, req.Msg)
	n := len(f.reqs)
	f.mu.Unlock()
	w, err := f.answer(n)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.AwaitWorkflowResponse{Workflow: w}), nil
}

func (f *fakeAwaits) requests() []*weftv1.AwaitWorkflowRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*weftv1.AwaitWorkflowRequest(nil), f.reqs...)
}

// serveFake serves f and returns client flags that reach it.
func serveFake(t *testing.T, f *fakeAwaits) *clientFlags {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(weftv1connect.NewWorkflowServiceHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &clientFlags{server: srv.URL}
}

// waitWorkflow awaits again when the server's timeout passes and retries
// while the server is unavailable or ends the call, until the run closes.
func TestWaitWorkflowRetries(t *testing.T) {
	done := &weftv1.Workflow{Id: "w", Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED}
	f := &fakeAwaits{answer: func(n int) (*weftv1.Workflow, error) {
		switch n {
		case 1:
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("restarting"))
		case 2:
			return nil, connect.NewError(connect.CodeDeadlineExceeded, errors.New("still running: await it again"))
		case 3:
			return nil, connect.NewError(connect.CodeCanceled, errors.New("shutting down"))
		}
		return done, nil
	}}
	var notes bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wf, err := waitWorkflow(ctx, serveFake(t, f), "w", &notes)
	if err != nil || wf.GetStatus() != done.Status {
		t.Fatalf("waitWorkflow = %v, %v; want the completed run", wf, err)
	}
	reqs := f.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d calls; want 4", len(reqs))
	}
	for _, r := range reqs {
		if r.GetWorkflowId() != "w" || r.GetTimeout().AsDuration() != awaitCallTimeout {
			t.Errorf("request %v; want workflow w, timeout %s", r, awaitCallTimeout)
		}
	}
	if got := notes.String(); strings.Count(got, "retrying") != 2 || !strings.Contains(got, "unavailable: restarting") {
		t.Errorf("notes %q; want one for each outage", got)
	}
}

// Other errors end waitWorkflow at once; so does the end of its context,
// whose deadline bounds each call's timeout.
func TestWaitWorkflowGivesUp(t *testing.T) {
	f := &fakeAwaits{answer: func(int) (*weftv1.Workflow, error) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New(`workflow "w" not found`))
	}}
	_, err := waitWorkflow(context.Background(), serveFake(t, f), "w", &bytes.Buffer{})
	if connect.CodeOf(err) != connect.CodeNotFound || len(f.requests()) != 1 {
		t.Fatalf("waitWorkflow = %v after %d calls; want not_found after 1", err, len(f.requests()))
	}

	f = &fakeAwaits{answer: func(int) (*weftv1.Workflow, error) {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("down"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = waitWorkflow(ctx, serveFake(t, f), "w", &bytes.Buffer{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unavailable: down") || time.Since(start) > 5*time.Second {
		t.Fatalf("waitWorkflow = %v after %s; want the context's deadline and the last failure", err, time.Since(start))
	}
	reqs := f.requests()
	if len(reqs) < 2 {
		t.Fatalf("%d calls; want retries", len(reqs))
	}
	if d := reqs[0].GetTimeout().AsDuration(); d <= 0 || d > 500*time.Millisecond {
		t.Errorf("call timeout %s; want at most the context's 500ms", d)
	}

	// weft await --timeout says the server did not answer, not that the run
	// is still running.
	out, err := runCLI(t, "await", "w", "--timeout", "300ms", "--server", serveFake(t, f).server)
	if err == nil || err.Error() != "no answer about workflow w within 300ms: unavailable: down" {
		t.Fatalf("await: %v\n%s", err, out)
	}
}

// A command given the wrong number of arguments says how it is used, and
// one that cannot reach the API asks whether a server runs there.
func TestCLIErrorsSayWhatToDo(t *testing.T) {
	if _, err := runCLI(t, "get"); err == nil || !strings.Contains(err.Error(), "usage: weft get ID") {
		t.Errorf("weft get: %v; want its usage", err)
	}
	if _, err := runCLI(t, "get", "x", "--server", "http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "is a weft server running at the address --server") {
		t.Errorf("weft get against no server: %v; want the question", err)
	}
}

// A Connect error wrapped with what it was about (the run an export was
// reading, the request id to make a write again with) is rendered with
// those words kept around it.
func TestRPCErrKeepsWhatWrapsIt(t *testing.T) {
	ce := connect.NewError(connect.CodeNotFound, errors.New("workflow \"r-1\" not found"))
	err := rpcErr(fmt.Errorf("history of r-1: %w", ce))
	if got, want := err.Error(), `history of r-1: not_found: workflow "r-1" not found`; got != want {
		t.Errorf("rpcErr = %q; want %q", got, want)
	}
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("rpcErr's code = %v; want not_found", connect.CodeOf(err))
	}
	if got := rpcErr(ce).Error(); got != `not_found: workflow "r-1" not found` {
		t.Errorf("rpcErr of a bare error = %q", got)
	}
}

// A write answered Aborted was answered: the note of its next try says
// that it met another write, not that the server could not answer.
func TestAnAbortedWriteIsNotedAsMetAnother(t *testing.T) {
	var notes bytes.Buffer
	tries := 0
	retried, err := callAgain(context.Background(), "retry", "req-1", &notes, func() error {
		if tries++; tries == 1 {
			return connect.NewError(connect.CodeAborted, errors.New(`workflow "wf" changed while it was read to retry it; read it again`))
		}
		return nil
	})
	if err != nil || !retried {
		t.Fatalf("callAgain: retried %v, %v; want made again, no error", retried, err)
	}
	if n := notes.String(); strings.Contains(n, "could not answer") || !strings.Contains(n, "met another write") {
		t.Errorf("note of a write answered Aborted: %q", n)
	}
}
