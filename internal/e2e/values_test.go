package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// nestedJSON returns a JSON list holding a list ... depth levels deep.
func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + "1" + strings.Repeat("]", depth)
}

// A signal payload nested too deeply is refused with InvalidArgument naming
// the payload, and the waiting run is left as it was: a proper signal
// still completes it.
func TestIssue13Item1_DeepSignalRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	id := e.start("approval", "deep-signal", `{"by": "ann"}`)
	eventually(t, 20*time.Second, "the wait", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	before := len(e.history(id))
	for _, depth := range []int{65, 260} {
		err := e.signal(id, "approve", `{"by": "ann", "deep": `+nestedJSON(depth)+`}`)
		wantCode(t, "deep signal", err, connect.CodeInvalidArgument, "payload.deep")
		if !strings.Contains(err.Error(), "64 levels") {
			t.Fatalf("deep signal: error %q does not say the limit", err)
		}
	}
	w := e.get(id)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING || stepStatus(w, "approve") != weftv1.StepStatus_STEP_STATUS_WAITING {
		t.Fatalf("after refused signals: %v, approve %v, error %v", w.Status, stepStatus(w, "approve"), w.Error)
	}
	if n := len(e.history(id)); n != before {
		t.Fatalf("history grew from %d to %d events: %v", before, n, types(e.history(id)))
	}
	// Exactly at the limit is accepted.
	if err := e.signal(id, "approve", `{"by": "ann", "deep": `+nestedJSON(63)+`}`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	e.history(id)
	e.healthy()
}

// A start whose input nests too deeply is refused and no run is created.
func TestIssue13Item1_DeepStartRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: hold
steps:
  - { id: a, task: echo, input: "${ input }" }
`)
	for _, depth := range []int{65, 254} {
		id := "deep-start-" + string(rune('a'+depth%26))
		_, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: "hold", WorkflowId: id, Input: jsonValue(t, `{"x": `+nestedJSON(depth)+`}`)}))
		wantCode(t, "deep start", err, connect.CodeInvalidArgument, "input.x")
		_, err = e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		wantCode(t, "refused start", err, connect.CodeNotFound, "not found")
	}
	// Exactly at the limit runs and reads back.
	id := e.start("hold", "at-limit", nestedJSON(64))
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != nestedJSON(64) {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	e.history(id)
	e.healthy()
}

// An http response whose JSON nests too deeply fails the step with
// invalid_output, once and catchably; the run does not hang.
func TestIssue13Item1_DeepHTTPResponseFailsStep(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(nestedJSON(300)))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: deep
steps:
  - id: fetch
    task: http
    input: { url: "${ input.url }" }
    catch:
      - errors: [invalid_output]
        do:
          - { id: caught, task: echo, input: "${ error.type + ': ' + error.message }" }
  - id: raw
    task: http
    input: { url: "${ input.url }", response: text }
output: { caught: "${ steps.fetch.output }", raw: "${ size(steps.raw.output.body) }" }
`)
	id := e.start("deep", "deep-http", `{"url": "`+srv.URL+`"}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	out := w.Output.GetStructValue().AsMap()
	caught, _ := out["caught"].(string)
	if !strings.HasPrefix(caught, "invalid_output: ") || !strings.Contains(caught, "64 levels") || !strings.Contains(caught, "response: text") {
		t.Fatalf("caught %q", caught)
	}
	if out["raw"] != float64(len(nestedJSON(300))) {
		t.Fatalf("raw body size %v", out["raw"])
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the server saw %d requests, want 2 (no retry of invalid_output)", n)
	}
	e.history(id)
	e.healthy()
}

// A text body that is not UTF-8 comes back base64-encoded, as do header
// values that are not; the run and its history read back.
func TestIssue13Item2_Latin1BodyReadable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Name"] = []string{"caf\xe9"}
		w.Header().Set("X-Plain", "cafe")
		switch r.URL.Path {
		case "/json":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(`{"a": 1}`))
		case "/bad-json":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("caf\xe9"))
		default:
			w.Header().Set("Content-Type", "text/plain; charset=iso-8859-1")
			_, _ = w.Write([]byte("caf\xe9"))
		}
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: latin1
steps:
  - { id: auto, task: http, input: { url: "${ input.url }" } }
  - { id: text, task: http, input: { url: "${ input.url }", response: text } }
  - { id: bytes, task: http, input: { url: "${ input.url + '/utf8' }", response: bytes } }
  - { id: json, task: http, input: { url: "${ input.url + '/json' }", response: json } }
  - id: notjson
    task: http
    input: { url: "${ input.url + '/bad-json' }", response: json }
    catch: [ { do: [ { id: notjson_caught, task: echo, input: "${ error.type }" } ] } ]
output:
  auto: "${ steps.auto.output }"
  text: "${ steps.text.output.body_base64 }"
  bytes: "${ steps.bytes.output }"
  json: "${ steps.json.output.body }"
  notjson: "${ steps.notjson.output }"
`)
	id := e.start("latin1", "latin1", `{"url": "`+srv.URL+`"}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("caf\xe9"))
	out := w.Output.GetStructValue().AsMap()
	auto := out["auto"].(map[string]any)
	if auto["body_base64"] != b64 || auto["body"] != nil {
		t.Fatalf("auto: %v", auto)
	}
	if h := auto["headers"].(map[string]any); h["X-Plain"] != "cafe" || h["X-Name"] != nil {
		t.Fatalf("headers: %v", h)
	}
	if h := auto["headers_base64"].(map[string]any); h["X-Name"] != b64 {
		t.Fatalf("headers_base64: %v", h)
	}
	if out["text"] != b64 {
		t.Fatalf("text: %v", out["text"])
	}
	if by := out["bytes"].(map[string]any); by["body_base64"] != b64 || by["body"] != nil {
		t.Fatalf("bytes: %v", by)
	}
	if js, _ := out["json"].(map[string]any); js["a"] != float64(1) {
		t.Fatalf("json: %v", out["json"])
	}
	if out["notjson"] != "invalid_output" {
		t.Fatalf("notjson: %v", out["notjson"])
	}
	h := e.history(id)
	if len(h) == 0 || h[len(h)-1].Type != "WorkflowCompleted" {
		t.Fatalf("history %v", types(h))
	}
	e.healthy()
}

// An http header value with a control character fails the step at once
// with invalid_input: it is not sent, and not retried.
func TestIssue13Item6_HeaderControlCharsFailInvalidInput(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	t.Cleanup(srv.Close)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: ctl
retry: { max_attempts: 3, initial_interval: 100ms }
steps:
  - { id: call, task: http, input: { url: "${ input.url }", headers: "${ input.headers }" } }
`)
	for i, v := range []string{"a\u0001b", "a\u001bb", "a\u007fb"} {
		in, _ := json.Marshal(map[string]any{"url": srv.URL, "headers": map[string]any{"X-Bad": v}})
		id := e.start("ctl", "ctl-"+string(rune('a'+i)), string(in))
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "invalid_input" || !strings.Contains(w.Error.Message, "X-Bad") {
			t.Fatalf("%q: status %v error %v", v, w.Status, w.Error)
		}
		for _, typ := range types(e.history(id)) {
			if strings.HasPrefix(typ, "StepAttemptFailed") {
				t.Fatalf("%q: retried: %v", v, types(e.history(id)))
			}
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the server saw %d requests", n)
	}
}

// A handler's output that breaks the rule for values fails its step with
// invalid_output, once; a failure message that is not UTF-8 reads back.
func TestIssue13Item2_HandlerOutputsFollowTheRule(t *testing.T) {
	var calls atomic.Int64
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"bad": func(_ context.Context, task *executor.Task) (any, error) {
			calls.Add(1)
			switch task.Input {
			case "latin1":
				return map[string]any{"name": "caf\xe9"}, nil
			case "key":
				return map[string]any{"caf\xe9": 1}, nil
			case "nan":
				return []any{math.NaN()}, nil
			case "cycle":
				m := map[string]any{}
				m["self"] = []any{m}
				return m, nil
			case "deep":
				var v any = 1
				for range 65 {
					v = []any{v}
				}
				return v, nil
			}
			if task.Input == "loud" {
				return nil, executor.NonRetryable(executor.NewError("loud", "%s", strings.Repeat("e", 2<<20)))
			}
			return nil, executor.NonRetryable(executor.NewError("bad\xff", "message caf\xe9"))
		},
	}})
	e.putDef(`
name: bad
retry: { max_attempts: 3, initial_interval: 100ms }
steps:
  - { id: a, task: bad, input: "${ input }" }
`)
	for _, tc := range []struct{ in, typ, msg string }{
		{"latin1", "invalid_output", "output.name: string is not valid UTF-8"},
		{"key", "invalid_output", `output["caf\xe9"]: map key is not valid UTF-8`},
		{"nan", "invalid_output", "output[0]: number NaN is not finite"},
		{"deep", "invalid_output", "nest deeper than 64 levels"},
		// A value that contains itself fails the step, not the executor.
		{"cycle", "invalid_output", "does it contain itself?"},
		{"error", "bad\uFFFD", "message caf\uFFFD"},
		// A failure larger than a record holds is cut, not reported again
		// and again.
		{"loud", "loud", "eee... (2088983 bytes cut)"},
	} {
		before := calls.Load()
		id := e.start("bad", "bad-"+tc.in, `"`+tc.in+`"`)
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != tc.typ || !strings.Contains(w.Error.Message, tc.msg) ||
			len(w.Error.Message) > len("step a: ")+events.MaxErrorMessage {
			t.Fatalf("%s: status %v error %.200v", tc.in, w.Status, w.Error)
		}
		if n := calls.Load() - before; n != 1 {
			t.Fatalf("%s: %d attempts", tc.in, n)
		}
		e.history(id)
	}
	e.healthy()
}

// The orchestrator holds results from any executor to the rule: one whose
// output breaks it fails the step with invalid_output (catchable), and what
// is recorded reads back.
func TestIssue13Item1_OrchestratorRefusesBadOutputs(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: manual
steps:
  - id: a
    task: manual
    catch: [ { errors: [invalid_output], do: [ { id: caught, set: { why: "error.message" } } ] } ]
output: "${ vars.why }"
`)
	deep := any("x")
	for range value.MaxStoredDepth + 1 {
		deep = map[string]any{"k": deep}
	}
	for name, out := range map[string]any{"deep": deep, "latin1": "caf\xe9", "nan": math.Inf(1)} {
		id := e.start("manual", "manual-"+name, `{}`)
		cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "a" })
		err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
			Outcome: events.OutcomeCompleted, Output: out, Time: time.Now().UTC(), Cmd: cmd})
		if err != nil {
			t.Fatal(err)
		}
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || !strings.HasPrefix(toJSON(w.Output), `"output`) {
			t.Fatalf("%s: status %v output %s error %v", name, w.Status, toJSON(w.Output), w.Error)
		}
		e.history(id)
	}
	e.healthy()
}

// A trigger event nested too deeply is recorded as a trigger failure and
// a webhook body answered 400; neither starts a run.
func TestIssue13Item1_DeepTriggerEventsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: deeptrig
triggers:
  - subject: deep.in
  - webhook: deep-hook
steps:
  - { id: a, task: echo, input: "${ input }" }
`)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "deep.in")
	for _, m := range []string{`{"x": ` + nestedJSON(65) + `}`, `{"x": ` + nestedJSON(63) + `}`} {
		if err := nc.Publish("deep.in", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	eventually(t, 20*time.Second, "the deep event's failure and the other's run", func() bool {
		reasons = nil
		for _, f := range e.failures() {
			reasons = append(reasons, f.Reason)
		}
		return len(reasons) == 1 && countStatus(e.listAll("deeptrig"), weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED) == 1
	})
	if !strings.Contains(reasons[0], "payload.x[0]") || !strings.Contains(reasons[0], "64 levels") {
		t.Fatalf("failure %q", reasons)
	}
	url := e.node.APIURL + "/hooks/deep-hook"
	body := []byte(`{"x": ` + nestedJSON(65) + `}`)
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, body, nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "body.x[0]") {
		t.Fatalf("deep webhook: %d %v", code, out)
	}
	if n := len(e.listAll("deeptrig")); n != 1 {
		t.Fatalf("%d runs", n)
	}
}

// A value that entered at the limit can be wrapped by what workflows build,
// a child's output included: the parent's step completes with it.
func TestIssue13Item1_WrappedValuesFlowThroughChildren(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: wrapper
steps:
  - { id: a, task: echo, input: "${ input }" }
output: { wrapped: [ "${ steps.a.output }" ] }
`)
	e.putDef(`
name: outer
steps:
  - { id: kid, workflow: wrapper, input: "${ input }" }
output: { again: "${ steps.kid.output }" }
`)
	id := e.start("outer", "outer", nestedJSON(64))
	w := e.waitClosed(id, 20*time.Second)
	want := `{"again":{"wrapped":[` + nestedJSON(64) + `]}}`
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != want {
		t.Fatalf("status %v error %v output %s", w.Status, w.Error, toJSON(w.Output))
	}
	e.history(id)
	e.healthy()
}

// Requests whose record would be over the NATS message limit, and text
// fields over their bounds, are refused with InvalidArgument saying what
// to shrink (not Unavailable, which clients retry); the waiting run is
// left as it was.
func TestRequestsTooLargeToRecordAreRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	near := structpb.NewStringValue(strings.Repeat("x", 1<<20-100)) // within MaxPayloadBytes
	_, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "approval", Input: near}))
	wantCode(t, "start near the limit", err, connect.CodeInvalidArgument, "larger than the NATS server accepts")
	_, err = e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "approval",
		RequestId: strings.Repeat("r", 300)}))
	wantCode(t, "long request id", err, connect.CodeInvalidArgument, "request_id is 300 bytes; the limit is 256 bytes")

	id := e.start("approval", "big-requests", `{"by": "ann"}`)
	eventually(t, 20*time.Second, "the wait", func() bool {
		return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	before := len(e.history(id))
	_, err = e.wf.SignalWorkflow(ctx(t), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: id, Name: "approve", Payload: near}))
	wantCode(t, "signal near the limit", err, connect.CodeInvalidArgument, "larger than the NATS server accepts")
	_, err = e.wf.SignalWorkflow(ctx(t), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: id, Name: strings.Repeat("n", 300)}))
	wantCode(t, "long signal name", err, connect.CodeInvalidArgument, "name is 300 bytes; the limit is 256 bytes")
	long := strings.Repeat("r", 2000)
	_, err = e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id, Reason: long}))
	wantCode(t, "long cancel reason", err, connect.CodeInvalidArgument, "reason is 2000 bytes; the limit is 1024 bytes")
	_, err = e.wf.RetryWorkflow(ctx(t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id, Reason: long}))
	wantCode(t, "long retry reason", err, connect.CodeInvalidArgument, "reason is 2000 bytes")
	_, err = e.wf.ResumeWorkflow(ctx(t), connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: id, Reason: long}))
	wantCode(t, "long resume reason", err, connect.CodeInvalidArgument, "reason is 2000 bytes")
	if n := len(e.history(id)); n != before {
		t.Fatalf("history grew from %d to %d events", before, n)
	}
	if err := e.signal(id, "approve", `{"by": "ann"}`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
}
