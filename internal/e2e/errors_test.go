package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

func TestAPIErrors(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(threeSteps)
	c := ctx(t)

	_, err := e.wf.GetWorkflow(c, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "nope"}))
	wantCode(t, "unknown workflow", err, connect.CodeNotFound, `workflow "nope" not found`)

	_, err = e.wf.GetHistory(c, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: "nope"}))
	wantCode(t, "history of unknown workflow", err, connect.CodeNotFound, "not found")

	_, err = e.wf.SignalWorkflow(c, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "nope", Name: "x"}))
	wantCode(t, "signal unknown workflow", err, connect.CodeNotFound, "not found")

	_, err = e.wf.StartWorkflow(c, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "missing"}))
	wantCode(t, "unknown definition", err, connect.CodeNotFound, `definition "missing" not found`)

	_, err = e.wf.StartWorkflow(c, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "three", Revision: 7}))
	wantCode(t, "unknown revision", err, connect.CodeNotFound, "no revision 7")

	_, err = e.wf.StartWorkflow(c, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "three", WorkflowId: "bad id!"}))
	wantCode(t, "bad workflow id", err, connect.CodeInvalidArgument, "workflow_id")

	_, err = e.defs.PutDefinition(c, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: `
name: broken
steps:
  - id: a
    task: echo
    retry: { max_attempts: 0 }
  - id: b
    wait: { signal: go, timeout: 7x }
`}))
	wantCode(t, "bad definition", err, connect.CodeInvalidArgument, `step "a"`)
	for _, part := range []string{"retry.max_attempts", `step "b"`, "wait.timeout"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("bad definition error %q does not mention %s", err, part)
		}
	}

	// Same id + same request id: the existing run, started=false.
	req := &weftv1.StartWorkflowRequest{Definition: "three", WorkflowId: "dup", RequestId: "r1", Input: jsonValue(t, `{"n":1}`)}
	r1, err := e.wf.StartWorkflow(c, connect.NewRequest(req))
	if err != nil || !r1.Msg.Started {
		t.Fatalf("first start: %v %v", r1, err)
	}
	r2, err := e.wf.StartWorkflow(c, connect.NewRequest(req))
	if err != nil || r2.Msg.Started || r2.Msg.WorkflowId != "dup" {
		t.Fatalf("repeated start: %v %v", r2, err)
	}
	req.RequestId = "r2"
	_, err = e.wf.StartWorkflow(c, connect.NewRequest(req))
	wantCode(t, "same id, other request", err, connect.CodeAlreadyExists, "already exists")
	e.waitClosed("dup", 20*time.Second)

	// Without a workflow id, the request id alone makes a start idempotent.
	req = &weftv1.StartWorkflowRequest{Definition: "three", RequestId: "only-request", Input: jsonValue(t, `{"n":1}`)}
	r1, err = e.wf.StartWorkflow(c, connect.NewRequest(req))
	if err != nil || !r1.Msg.Started {
		t.Fatalf("start by request id: %v %v", r1, err)
	}
	r2, err = e.wf.StartWorkflow(c, connect.NewRequest(req))
	if err != nil || r2.Msg.Started || r2.Msg.WorkflowId != r1.Msg.WorkflowId {
		t.Fatalf("repeated start by request id: %v %v", r2, err)
	}

	// Unchanged definition text does not make a new revision.
	if got := e.putDef(threeSteps); got.Changed || got.Revision != 1 {
		t.Fatalf("re-put: %v", got)
	}
}

func wantCode(t *testing.T, what string, err error, code connect.Code, msg string) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("%s: got %v, want code %v", what, err, code)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: error %q does not say %q", what, err, msg)
	}
}

// postJSON calls a Connect unary procedure with plain HTTP and JSON.
func postJSON(t *testing.T, base, procedure, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+procedure, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: response %q is not JSON: %v", procedure, raw, err)
	}
	return resp.StatusCode, out
}

// The API is usable with nothing but HTTP POSTs of Connect JSON.
func TestPlainHTTPConnectJSON(t *testing.T) {
	e := newEnv(t, envOpts{})
	base := e.node.APIURL
	src, _ := json.Marshal(threeSteps)
	code, out := postJSON(t, base, "/weft.v1.DefinitionService/PutDefinition", `{"source": `+string(src)+`}`)
	if code != 200 || out["name"] != "three" {
		t.Fatalf("PutDefinition: %d %v", code, out)
	}
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/StartWorkflow", `{"definition": "three", "workflowId": "plain", "input": {"n": 1}}`)
	if code != 200 || out["workflowId"] != "plain" || out["started"] != true {
		t.Fatalf("StartWorkflow: %d %v", code, out)
	}
	eventually(t, 20*time.Second, "completion", func() bool {
		_, out = postJSON(t, base, "/weft.v1.WorkflowService/GetWorkflow", `{"workflowId": "plain"}`)
		w, _ := out["workflow"].(map[string]any)
		return w["status"] == "WORKFLOW_STATUS_COMPLETED"
	})
	w := out["workflow"].(map[string]any)
	if b, _ := json.Marshal(w["output"]); string(b) != `{"a":{"n":1},"b":2,"c":"n=2"}` {
		t.Fatalf("output %s", b)
	}
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/GetHistory", `{"workflowId": "plain"}`)
	if evs, _ := out["events"].([]any); code != 200 || len(evs) != 8 {
		t.Fatalf("GetHistory: %d %v", code, out)
	}
	// Errors come back as Connect JSON errors with the right code.
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/GetWorkflow", `{"workflowId": "nope"}`)
	if code != 404 || out["code"] != "not_found" {
		t.Fatalf("unknown workflow: %d %v", code, out)
	}
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/StartWorkflow", `{"definition": "three", "input": {"n": 1`)
	if code != 400 || out["code"] != "invalid_argument" {
		t.Fatalf("malformed JSON: %d %v", code, out)
	}
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/StartWorkflow", `{"definition": "three", "input": "{not json"}`)
	if code != 200 {
		t.Fatalf("a JSON string input is valid input: %d %v", code, out)
	}
	code, out = postJSON(t, base, "/weft.v1.WorkflowService/StartWorkflow", `{"definition": 5}`)
	if code != 400 || out["code"] != "invalid_argument" {
		t.Fatalf("wrong field type: %d %v", code, out)
	}
}
