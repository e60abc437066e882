package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A definition's constant that YAML reads as other than what is written
// is refused when put, naming its field: a whole number beyond a uint64
// (read as a rounded float64), a number beyond a float64's range (read as
// the text "1e400"), a !!binary value whose bytes are not text (every
// run failed on it), a tag YAML ignores (!money 12 read as 12), and a
// number YAML 1.1 and 1.2 read apart (0755: 493 or 755). One an earlier
// version stored still loads, and its runs go on as they did.
func TestADefinitionConstantYAMLWouldChangeIsRefusedWhenPut(t *testing.T) {
	e := newEnv(t, envOpts{})
	for src, want := range map[string][]string{
		`{"name": "yamlnum", "steps": [{"id": "a", "task": "echo", "input": {"n": 12345678901234567890123}}]}`: {`field "input.n"`, "12345678901234567890123", "beyond ±2^53", "string"},
		"name: yamlnum\nsteps:\n  - { id: a, task: echo, input: { n: 1e400 } }\n":                              {`field "input.n"`, "1e400", "beyond the range", "quote it"},
		"name: yamlnum\nsteps:\n  - { id: a, task: echo, input: { b: !!binary gIGC } }\n":                      {`field "input.b"`, "not valid UTF-8", "base64"},
		"name: yamlnum\nsteps:\n  - { id: a, task: echo, input: { m: !money 12 } }\n":                          {`field "input.m"`, "tag !money is not one Weft reads", "remove it"},
		"name: yamlnum\nsteps:\n  - { id: a, task: echo, input: { mode: 0755 } }\n":                            {`field "input.mode"`, "0755 reads as the octal number 493 here and as 755 in YAML 1.2", "quote it for text"},
	} {
		wantCodeAll(t, e.putDefErr(src), connect.CodeInvalidArgument, want...)
	}
	const stored = "name: yamlbin\nsteps:\n  - { id: a, task: echo, input: { b: !!binary gIGC } }\n"
	if _, _, err := e.node.Store.PutDefinition(ctx(t), "yamlbin", stored, "an earlier version", time.Now()); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(e.start("yamlbin", "", ``), 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("a run of the stored definition: %v %v; want FAILED, as before", w.Status, w.Error)
	} else {
		t.Logf("the stored definition's run: %v", w.Error)
	}
	e.healthy()
}

// A JSON string escape that is half a surrogate pair ("\ud800") names no
// character: at every door that reads JSON it is refused, saying so,
// rather than taken as U+FFFD (a webhook's body, a NATS event, both
// recorded whole) or refused as "unexpected EOF" (the API's JSON). An
// http step's JSON response holding one is taken as the text it is.
func TestHalfASurrogatePairIsRefusedAtEveryJSONDoor(t *testing.T) {
	const bad = `{"n": 1, "s": "\ud800"}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(bad))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: sur
triggers:
  - subject: sur.in
    id: "${ 'sur-' + string(event.n) }"
  - webhook: sur-hook
    id: "${ 'surhook-' + string(event.n) }"
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
	e.putDef(`
name: surhttp
steps:
  - { id: fetch, task: http, input: { url: "${ input.url }" } }
output: "${ steps.fetch.output.body }"
`)
	for procedure, body := range map[string]string{
		"StartWorkflow":  `{"definition": "sur", "workflowId": "sur-api", "input": ` + bad + `}`,
		"SignalWorkflow": `{"workflowId": "sur-x", "name": "go", "payload": "\udc00"}`,
	} {
		resp, err := http.Post(e.node.APIURL+"/weft.v1.WorkflowService/"+procedure, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var ans map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if msg, _ := ans["message"].(string); resp.StatusCode != http.StatusBadRequest || ans["code"] != "invalid_argument" || !strings.Contains(msg, "surrogate pair") {
			t.Errorf("%s with half a surrogate pair: %d %v; want invalid_argument saying so", procedure, resp.StatusCode, ans)
		}
	}

	w := e.waitClosed(e.start("surhttp", "", `{"url": "`+srv.URL+`"}`), 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || w.Output.GetStringValue() != bad {
		t.Errorf("the http step's response: %v %v %s; want its body as the text sent", w.Status, w.Error, toJSON(w.Output))
	}

	refusedAtTriggerDoors(t, e, "sur", bad, `\ud800 at byte 15 is half a UTF-16 surrogate pair`, "surrogate pair")
	e.healthy()
}

// A handler's typed output (a struct, a named string type) holding a
// string that is not UTF-8 fails its step with invalid_output, naming
// the field, as a plain string does: it was recorded as U+FFFD, another
// string than the handler gave, and the step completed. Bytes are taken as
// base64.
func TestATypedHandlerOutputThatIsNotTextFailsTheStep(t *testing.T) {
	type out struct {
		Name string `json:"name"`
		Raw  []byte `json:"raw"`
	}
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"typed": func(_ context.Context, task *executor.Task) (any, error) {
			if task.Input == "bad" {
				return out{Name: "caf\xe9"}, nil
			}
			return out{Name: "café", Raw: []byte{0xff}}, nil
		},
	}})
	e.putDef("name: typed\nsteps:\n  - { id: a, task: typed, input: \"${ input }\" }\noutput: \"${ steps.a.output }\"\n")
	w := e.waitClosed(e.start("typed", "typed-bad", `"bad"`), 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.GetType() != "invalid_output" || !strings.Contains(w.Error.GetMessage(), "name: string is not valid UTF-8 (byte 0xe9 at offset 3)") {
		t.Errorf("a struct output with a Latin-1 string: %v %v %s; want FAILED with invalid_output naming the field", w.Status, w.Error, toJSON(w.Output))
	}
	w = e.waitClosed(e.start("typed", "typed-ok", `"ok"`), 20*time.Second)
	if got := toJSON(w.Output); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || got != `{"name":"café","raw":"/w=="}` {
		t.Errorf("a struct output that is text: %v %v %s", w.Status, w.Error, got)
	}
	e.healthy()
}

// A header sent more than once reaches a trigger's expressions whole, its
// values joined with ", " as HTTP joins them (and as an http step's
// response headers are): the values after the first were dropped without
// a word. Both doors: a webhook's request and a NATS message.
func TestARepeatedHeaderReachesATriggerWhole(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: hdrs
triggers:
  - subject: hdrs.in
    id: "${ 'hdrs-' + string(event.n) }"
    input: "${ headers['X-Tag'] }"
  - webhook: hdrs-hook
    id: "${ 'hdrshook-' + string(event.n) }"
    input: "${ headers['X-Tag'] }"
steps:
  - { id: a, task: echo, input: "${ input }" }
output: "${ input }"
`)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "hdrs.in")
	msg := nats.NewMsg("hdrs.in")
	msg.Data = []byte(`{"n": 1}`)
	msg.Header.Add("X-Tag", "a")
	msg.Header.Add("X-Tag", "b")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "run hdrs-1 to start", func() bool {
		_, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "hdrs-1"}))
		return err == nil
	})
	if w := e.waitClosed("hdrs-1", 20*time.Second); w.Output.GetStringValue() != "a, b" {
		t.Errorf("a NATS header sent twice reads as %s; want \"a, b\"", toJSON(w.Output))
	}

	url := e.node.APIURL + "/hooks/hdrs-hook"
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"n": 1}`))
		req.Header.Add("X-Tag", "a")
		req.Header.Add("X-Tag", "b, c")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusAccepted
	})
	if w := e.waitClosed("hdrshook-1", 20*time.Second); w.Output.GetStringValue() != "a, b, c" {
		t.Errorf("a webhook header sent twice reads as %s; want \"a, b, c\"", toJSON(w.Output))
	}
	e.healthy()
}

// A result from an executor other than the Go SDK's (any that writes the
// results protocol) whose output is read but is no value Weft holds (a
// map key that is not a string, a whole number beyond an int64) fails its
// step with invalid_output, as any output that cannot be recorded does:
// it was taken for a result of a newer version and given back for ever,
// and the step ran for ever.
func TestAForeignResultWhoseOutputIsNoValueFailsTheStep(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: foreign
steps:
  - id: a
    task: foreign
    catch: [ { errors: [invalid_output], do: [ { id: caught, set: { why: "error.message" } } ] } ]
output: "${ vars.why }"
`)
	for name, c := range map[string]struct {
		out  any
		want string
	}{
		"intkey": {map[string]any{"m": map[any]any{int64(1): "a"}}, "output: m: map key 1 is not a string"},
		"uint":   {[]any{uint64(1 << 63)}, "output: [0]: whole number 9223372036854775808 is beyond ±2^53"},
	} {
		id := e.start("foreign", "foreign-"+name, `{}`)
		cmd := e.recordOf(id, "the command of a", func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "a" })
		err := e.node.Store.PublishResult(context.Background(), events.Result{WorkflowID: id, Path: "a", Gen: 1, Attempt: 1,
			Outcome: events.OutcomeCompleted, Output: c.out, Time: time.Now().UTC(), Cmd: cmd})
		if err != nil {
			t.Fatal(err)
		}
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || !strings.HasPrefix(w.Output.GetStringValue(), c.want) {
			t.Errorf("%s: status %v output %s error %v; want the step failed with invalid_output saying %q", name, w.Status, toJSON(w.Output), w.Error, c.want)
		}
		e.history(id)
	}
	e.healthy()
}
