package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// typedDef is a definition whose input_schema wants a customer with an id.
const typedDef = `
name: typed
input_schema:
  type: object
  required: [customer]
  properties:
    customer: { type: object, required: [id], properties: { id: { type: string } } }
triggers:
  - subject: typed.in
    id: "${ 'typed-' + string(event.n) }"
    input: "${ event.body }"
  - webhook: typed-hook
steps:
  - { id: hello, task: echo, input: "${ input.customer.id }" }
`

// A definition's input_schema is compiled when it is put (a bad schema or
// one that refers outside itself is refused), returned with the
// definition, and checked when StartWorkflow starts a run: a refused
// input names the failing place.
func TestInputSchemaPutAndStart(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	for _, bad := range []struct{ schema, says string }{
		{`{type: objekt}`, `"input_schema": not a valid JSON Schema: /type`},
		{`{$ref: "https://example.com/customer.json"}`, `$ref "https://example.com/customer.json" is outside the schema: references outside input_schema are not followed`},
		{`[object]`, `"input_schema": must be a mapping`},
	} {
		err := e.putDefErr("name: bad\ninput_schema: " + bad.schema + "\nsteps: [{ id: a, task: echo }]")
		wantCodeAll(t, err, connect.CodeInvalidArgument, bad.says)
	}
	e.putDef(typedDef)

	_, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{
		Definition: "typed", WorkflowId: "bad-1", Input: jsonValue(t, `{"customer": {"name": "Ann"}}`)}))
	wantCodeAll(t, err, connect.CodeInvalidArgument, `input_schema: /customer: missing property 'id'`)
	_, err = e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{
		Definition: "typed", WorkflowId: "bad-2", Input: jsonValue(t, `{"customer": {"id": 7}}`)}))
	wantCodeAll(t, err, connect.CodeInvalidArgument, `input_schema: /customer/id: got number, want string`)
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "bad-1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a refused start left a run: %v", err)
	}
	if id := e.start("typed", "good-1", `{"customer": {"id": "c-1"}}`); id != "good-1" {
		t.Fatalf("started %q", id)
	}

	got, err := e.defs.GetDefinition(ctx(t), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: "typed"}))
	if err != nil {
		t.Fatal(err)
	}
	d := got.Msg.Definition
	if req := d.InputSchema.GetFields()["required"].GetListValue().GetValues(); len(req) != 1 || req[0].GetStringValue() != "customer" {
		t.Errorf("GetDefinition input_schema %v", d.InputSchema)
	}
	if steps := d.Outline.GetValues(); len(steps) != 1 || steps[0].GetStructValue().GetFields()["task"].GetStringValue() != "echo" {
		t.Errorf("GetDefinition outline %v", d.Outline)
	}
	list, err := e.defs.ListDefinitions(ctx(t), connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list.Msg.Definitions {
		if d.Name == "typed" && (d.InputSchema.GetFields()["type"].GetStringValue() != "object" || d.Outline != nil || d.Source != "") {
			t.Errorf("ListDefinitions %v", d)
		}
	}
}

// A trigger event whose input fails the schema starts no run: it is
// recorded as a trigger failure (a webhook delivery is answered 422) and
// the events behind it start theirs.
func TestInputSchemaTriggerRefusedAndSkipped(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(typedDef)
	if w := e.publishThenClosed("typed.in", "typed-2", `{"n": 1, "body": {"customer": {}}}`, `{"n": 2, "body": {"customer": {"id": "c-2"}}}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the event behind: %v", w.Status)
	}
	eventually(t, 20*time.Second, "the refused input to be recorded", func() bool {
		for _, f := range e.failures() {
			if f.Definition == "typed" && f.Reason == `input_schema: /customer: missing property 'id'` {
				return true
			}
		}
		return false
	})
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "typed-1"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the refused event started a run: %v", err)
	}

	url := e.node.APIURL + "/hooks/typed-hook"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, []byte(`{"customer": {"id": 3}}`), nil)
		return code != http.StatusNotFound
	})
	if msg, _ := out["error"].(string); code != http.StatusUnprocessableEntity || !strings.Contains(msg, "input_schema: /customer/id: got number, want string") {
		t.Fatalf("webhook delivery with a bad input: %d %v", code, out)
	}
}

// A workflow step whose child input fails the child's schema fails with
// error type invalid_input, which a catch handles; the child is not
// started and the parent goes on.
func TestInputSchemaChildRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(typedDef)
	e.putDef(`
name: parent
steps:
  - id: call
    workflow: typed
    input: "${ input }"
    catch:
      - errors: [invalid_input]
        do: [{ id: why, task: echo, input: "${ error }" }]
  - { id: after, task: echo, input: "${ steps.call.output }" }
`)
	id := e.start("parent", "parent-bad", `{"customer": {}}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("parent %v: %v", w.Status, w.Error)
	}
	if got, want := toJSON(w.Output), `{"message":"child definition \"typed\": input_schema: /customer: missing property 'id'","type":"invalid_input"}`; got != want {
		t.Fatalf("parent output %s, want %s", got, want)
	}
	if child := e.childOf(id, "call"); child != "" {
		if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: child})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("the refused child %s was started: %v", child, err)
		}
	}
	id = e.start("parent", "parent-good", `{"customer": {"id": "c-9"}}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"c-9"` {
		t.Fatalf("parent with a good input: %v %s", w.Status, toJSON(w.Output))
	}
}
