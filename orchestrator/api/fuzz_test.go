package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/api"
)

// FuzzConnectJSON posts arbitrary bodies to the Connect JSON endpoints of
// a real server: every answer must be a well-formed Connect response with
// a code a client can act on (never a panic, a hang or an internal error).
func FuzzConnectJSON(f *testing.F) {
	for _, seed := range []string{
		`{"definition": "d", "input": {"n": 1}}`,
		`{"definition": "d", "workflowId": "x", "requestId": "r", "input": [1, 2.5, "s", null, true]}`,
		`{"workflowId": "x", "name": "go", "payload": {"a": {"b": [1]}}}`,
		`{"source": "name: d\nsteps: [ { id: a, task: echo, input: \"${ input }\" } ]"}`,
		`{"source": "name: d\nsteps: [ { id: a, foreach: \"${ input }\", do: [ { id: b, task: echo } ] } ]"}`,
		`{"workflowId": "x", "pageSize": -1, "pageToken": "zz"}`,
		`{"definition": 5}`, `{`, ``, `null`, `[]`, `{"input": 1e400}`,
	} {
		for proc := range procedures {
			f.Add(uint8(proc), []byte(seed))
		}
	}
	ns := natstest.Start(f)
	store, err := eventstore.Open(context.Background(), ns.Connect(f), eventstore.Config{})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := api.New(store, api.Config{})
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	hs := api.NewHTTPServer("", srv.Handler())
	go func() { _ = hs.Serve(ln) }()
	f.Cleanup(func() { _ = hs.Close() })
	base := "http://" + ln.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second}
	// Something to find: a definition and a workflow.
	post(f, client, base, "/weft.v1.DefinitionService/PutDefinition", []byte(`{"source": "name: d\nsteps: [ { id: a, wait: { signal: go } } ]"}`))
	post(f, client, base, "/weft.v1.WorkflowService/StartWorkflow", []byte(`{"definition": "d", "workflowId": "x"}`))

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		proc := procedures[int(which)%len(procedures)]
		code, out := post(t, client, base, proc, body)
		if code == http.StatusOK {
			return
		}
		c, _ := out["code"].(string)
		switch c {
		case "invalid_argument", "not_found", "already_exists", "failed_precondition", "aborted", "out_of_range", "resource_exhausted", "unimplemented":
		default:
			t.Fatalf("%s with %q: HTTP %d, code %q: %v", proc, body, code, c, out)
		}
	})
}

var procedures = []string{
	"/weft.v1.WorkflowService/StartWorkflow",
	"/weft.v1.WorkflowService/GetWorkflow",
	"/weft.v1.WorkflowService/GetHistory",
	"/weft.v1.WorkflowService/ListWorkflows",
	"/weft.v1.WorkflowService/SignalWorkflow",
	"/weft.v1.WorkflowService/CancelWorkflow",
	"/weft.v1.WorkflowService/RetryWorkflow",
	"/weft.v1.DefinitionService/PutDefinition",
	"/weft.v1.DefinitionService/GetDefinition",
	"/weft.v1.TriggerService/ListTriggerFailures",
}

func post(t testing.TB, c *http.Client, base, proc string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := c.Post(base+proc, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", proc, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: response %q is not JSON", proc, raw)
	}
	return resp.StatusCode, out
}
