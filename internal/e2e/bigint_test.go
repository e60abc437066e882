package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A whole number the API cannot carry exactly (its numbers are float64:
// 9007199254740993 reads back as 9007199254740992) is refused at the door
// that takes JSON (a webhook's body, a step's output), with what to do,
// rather than kept exact in the run and shown rounded by every reader: a
// run's computations would use one number and its input, history and
// exports (the copy kept past retention) another.
func TestAWholeNumberTheAPIRoundsIsRefusedAtItsDoor(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: bigint
triggers:
  - webhook: bigint-hook
steps:
  - { id: show, task: echo, input: "${ string(input.id) }" }
  - { id: grow, task: echo, input: "${ input.id + 1 }" }
`)
	code, out := postHook(t, e.node.APIURL+"/hooks/bigint-hook", []byte(`{"id": 9007199254740993}`), map[string]string{"Idempotency-Key": "big-1"})
	if code == http.StatusAccepted {
		id, _ := out["workflow_id"].(string)
		w := e.waitClosed(id, 20*time.Second)
		t.Fatalf("accepted a number the API cannot show: input reads back as %s, while the run saw %s",
			toJSON(w.Input), toJSON(w.Steps[0].Output))
	}
	if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "9007199254740993") || !strings.Contains(msg, "string") {
		t.Fatalf("answered %d %v; want 400 naming the number and saying to send it as a string", code, out)
	}
	// The same beyond an int64, or written with a fraction: a float64
	// would carry another number.
	for i, body := range []string{`{"id": 12345678901234567891}`, `{"id": 9007199254740993.0}`} {
		code, out := postHook(t, e.node.APIURL+"/hooks/bigint-hook", []byte(body), map[string]string{"Idempotency-Key": fmt.Sprintf("big-f%d", i)})
		if code == http.StatusAccepted {
			id, _ := out["workflow_id"].(string)
			t.Fatalf("body %s accepted: the run's input reads back as %s", body, toJSON(e.waitClosed(id, 20*time.Second).Input))
		}
		if msg, _ := out["error"].(string); code != http.StatusBadRequest || !strings.Contains(msg, "string") {
			t.Fatalf("body %s: answered %d %v; want 400 saying to send it as a string", body, code, out)
		}
	}
	// 2^53 is carried exactly; plus one (by the run), it is not: the
	// step that computed it fails, as a result that cannot be recorded
	// does.
	code, out = postHook(t, e.node.APIURL+"/hooks/bigint-hook", []byte(`{"id": 9007199254740992}`), map[string]string{"Idempotency-Key": "big-2"})
	if code != http.StatusAccepted {
		t.Fatalf("2^53: answered %d %v", code, out)
	}
	id, _ := out["workflow_id"].(string)
	w := e.waitClosed(id, 20*time.Second)
	if got := toJSON(w.Input); got != `{"id":9007199254740992}` {
		t.Fatalf("2^53 reads back as %s", got)
	}
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || !strings.Contains(w.Error.GetMessage(), "9007199254740993") {
		t.Fatalf("status %v error %v, want FAILED naming 2^53+1", w.Status, w.Error)
	}
	e.healthy()
}

// A definition with a constant beyond ±2^53 is refused when put, naming
// the field; one an earlier version stored (here, written straight to the
// store) still loads, so a run of it goes on as it did: the step fails on
// the constant, as before.
func TestADefinitionConstantBeyond2p53IsRefusedWhenPutAndLoadsWhenStored(t *testing.T) {
	e := newEnv(t, envOpts{})
	const src = "name: bigc\nsteps:\n  - { id: show, task: echo, input: { x: 9007199254740993 } }\n"
	wantCodeAll(t, e.putDefErr(src), connect.CodeInvalidArgument, `field "input.x"`, "9007199254740993", "string")
	if _, _, err := e.node.Store.PutDefinition(ctx(t), "bigc", src, "an earlier version", time.Now()); err != nil {
		t.Fatal(err)
	}
	w := e.waitClosed(e.start("bigc", "", ``), 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.GetType() != "expression" {
		t.Fatalf("a run of the stored definition: %v %v; want FAILED with expression, as before", w.Status, w.Error)
	}
	e.healthy()
}

// The API's JSON reads a value's numbers as float64s before Weft sees
// them, so a whole number it would round is refused there, naming where
// it is, as a webhook's body refuses it: a start's input and a signal's
// payload. 2^53, a number written with an exponent that is its float, and
// a long number written as a string are taken and read back as sent.
func TestAWholeNumberTheAPIsJSONWouldRoundIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef("name: bigapi\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	call := func(procedure, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(e.node.APIURL+"/weft.v1.WorkflowService/"+procedure, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", procedure, err)
		}
		return resp.StatusCode, out
	}
	refused := func(procedure, body, where, number string) {
		t.Helper()
		code, out := call(procedure, body)
		msg, _ := out["message"].(string)
		if code != http.StatusBadRequest || out["code"] != "invalid_argument" || !strings.Contains(msg, where+": whole number "+number) || !strings.Contains(msg, "send it as a string") {
			t.Errorf("%s %s: answered %d %v; want invalid_argument naming %s and %s", procedure, body, code, out, where, number)
		}
	}
	refused("StartWorkflow", `{"definition": "bigapi", "workflowId": "big-1", "input": {"ids": [1, 9007199254740993]}}`, "input.ids[1]", "9007199254740993")
	refused("StartWorkflow", `{"definition": "bigapi", "workflowId": "big-1", "input": {"n": 12345678901234567891}}`, "input.n", "12345678901234567891")
	refused("StartWorkflow", `{"definition": "bigapi", "workflowId": "big-1", "input": 9007199254740993.0}`, "input", "9007199254740993.0")
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "big-1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a refused start left a run: %v", err)
	}

	const input = `{"at":1.5e+300,"big":9007199254740992,"id":"12345678901234567890"}`
	if code, out := call("StartWorkflow", `{"definition": "bigapi", "workflowId": "big-1", "input": `+input+`}`); code != http.StatusOK {
		t.Fatalf("start: answered %d %v", code, out)
	}
	refused("SignalWorkflow", `{"workflowId": "big-1", "name": "go", "payload": {"id": 9007199254740993}}`, "payload.id", "9007199254740993")
	if code, out := call("SignalWorkflow", `{"workflowId": "big-1", "name": "go", "payload": 9007199254740992}`); code != http.StatusOK {
		t.Fatalf("signal: answered %d %v", code, out)
	}
	w := e.waitClosed("big-1", 20*time.Second)
	if got := toJSON(w.Input); got != input {
		t.Errorf("the input reads back as %s; want %s", got, input)
	}
	if got := toJSON(w.Steps[0].Output); got != `9007199254740992` {
		t.Errorf("the signal's payload reads back as %s", got)
	}
}

// A field or enum value the API's JSON does not know is refused, saying
// what there is, rather than dropped: a misspelt workflowId would start a
// run under a generated id, a misspelt payload signal with none, and an
// enum value in lower case list every run.
func TestAFieldOrEnumValueTheAPIDoesNotKnowIsRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef("name: strict\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	for _, c := range []struct{ procedure, body, want string }{
		{"StartWorkflow", `{"definition": "strict", "workflowID": "s-1"}`, `unknown field "workflowID" (did you mean "workflowId"?); the fields of StartWorkflowRequest are definition, revision, input, workflowId, requestId`},
		{"StartWorkflow", `{"definition": "strict", "id": "s-1"}`, `unknown field "id"; the fields of StartWorkflowRequest are`},
		{"SignalWorkflow", `{"workflowId": "s-1", "name": "go", "data": {}}`, `unknown field "data"; the fields of SignalWorkflowRequest are workflowId, name, payload, requestId`},
		{"ListWorkflows", `{"status": "completed"}`, `invalid value for enum field status: "completed"; status is one of WORKFLOW_STATUS_UNSPECIFIED, WORKFLOW_STATUS_RUNNING`},
	} {
		resp, err := http.Post(e.node.APIURL+"/weft.v1.WorkflowService/"+c.procedure, "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if msg, _ := out["message"].(string); err != nil || resp.StatusCode != http.StatusBadRequest || out["code"] != "invalid_argument" || !strings.Contains(msg, c.want) {
			t.Errorf("%s %s: answered %d %v (%v); want invalid_argument saying %q", c.procedure, c.body, resp.StatusCode, out, err, c.want)
		}
	}
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "s-1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a refused start left a run: %v", err)
	}
}

// A definition whose task type no executor has asked for (a typo of a
// built-in one, here) is put with a warning that says so, and which type
// was meant: its runs would wait at that step, which only weft doctor
// reports, a minute later.
func TestATaskTypeNoExecutorServesIsWarnedOfWhenPut(t *testing.T) {
	e := newEnv(t, envOpts{})
	put := e.putDef("name: typo\nsteps:\n  - { id: a, task: ecoh, input: 1 }\n  - { id: b, task: echo, input: 2 }\n")
	if len(put.Warnings) != 1 || !strings.Contains(put.Warnings[0], `step "a": no executor has asked for commands of task type "ecoh" yet: its runs wait at that step until one does (did you mean "echo"?)`) {
		t.Fatalf("put warnings %q; want one for step a's task type, suggesting echo", put.Warnings)
	}
}
