package e2e

import (
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const gateDef = `
name: gate
steps:
  - { id: wait, wait: { signal: go } }
  - { id: done, task: echo, input: "${ steps.wait.output }" }
`

const boomDef = `
name: boom
steps:
  - { id: fail, fail: { message: "boom", type: oops } }
`

// identities returns, for each event type of the history of id, the
// identities its events carry, in order.
func (e *env) identities(id string) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	for _, ev := range e.history(id) {
		out[ev.Type] = append(out[ev.Type], ev.Identity)
	}
	return out
}

// wantIdentity fails the test unless the events of type typ in got carry
// exactly want.
func wantIdentity(t *testing.T, what string, got map[string][]string, typ string, want ...string) {
	t.Helper()
	if len(got[typ]) != len(want) {
		t.Fatalf("%s: %s events by %q, want %q", what, typ, got[typ], want)
	}
	for i := range want {
		if got[typ][i] != want[i] {
			t.Fatalf("%s: %s events by %q, want %q", what, typ, got[typ], want)
		}
	}
}

// With tokens, what a request records names its token: a start by alice
// and a signal, cancel and retry by bob show as theirs, and each revision
// of a definition says who put it and when. The orchestrator's own events
// name no one.
func TestIdentityOfTokens(t *testing.T) {
	aliceToken, bobToken := "alice-secret-token", "bob-secret-token"
	e := newEnv(t, envOpts{tokens: api.Tokens{"alice": {Hash: api.HashToken(aliceToken), Role: api.RoleAdmin}, "bob": {Hash: api.HashToken(bobToken), Role: api.RoleAdmin}}})
	as := func(token string) (weftv1connect.WorkflowServiceClient, weftv1connect.DefinitionServiceClient) {
		c := tokenClient(http.DefaultClient, token)
		return weftv1connect.NewWorkflowServiceClient(c, e.node.APIURL), weftv1connect.NewDefinitionServiceClient(c, e.node.APIURL)
	}
	aliceWF, aliceDefs := as(aliceToken)
	bobWF, bobDefs := as(bobToken)
	e.wf, e.defs = aliceWF, aliceDefs
	c := ctx(t)

	before := time.Now().Add(-time.Second)
	e.putDef(gateDef)
	e.putDef(boomDef)
	if _, err := bobDefs.PutDefinition(c, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: gateDef + "# bob's\n"})); err != nil {
		t.Fatal(err)
	}
	// The same text again by bob makes no revision: alice's stays.
	if resp, err := bobDefs.PutDefinition(c, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: boomDef})); err != nil || resp.Msg.Changed {
		t.Fatalf("put boom again: %v %v", resp, err)
	}
	for _, tc := range []struct {
		name string
		rev  int32
		want string
	}{{"gate", 1, "alice"}, {"gate", 2, "bob"}, {"gate", 0, "bob"}, {"boom", 1, "alice"}} {
		resp, err := bobDefs.GetDefinition(c, connect.NewRequest(&weftv1.GetDefinitionRequest{Name: tc.name, Revision: tc.rev}))
		if err != nil {
			t.Fatal(err)
		}
		d := resp.Msg.Definition
		if d.PutBy != tc.want || d.CreatedTime == nil || d.CreatedTime.AsTime().Before(before) || d.CreatedTime.AsTime().After(time.Now()) {
			t.Fatalf("%s revision %d: put by %q at %v, want %q just now", tc.name, tc.rev, d.PutBy, d.CreatedTime.AsTime(), tc.want)
		}
	}
	list, err := aliceDefs.ListDefinitions(c, connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
	if err != nil || len(list.Msg.Definitions) != 2 || list.Msg.Definitions[0].PutBy != "alice" || list.Msg.Definitions[1].PutBy != "bob" {
		t.Fatalf("list: %v %v", list, err)
	}

	// A start by alice, a signal by bob.
	signaled := e.start("gate", "signaled", `{}`)
	eventually(t, 20*time.Second, "the wait", func() bool { return stepStatus(e.get(signaled), "wait") == weftv1.StepStatus_STEP_STATUS_WAITING })
	if _, err := bobWF.SignalWorkflow(c, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: signaled, Name: "go", Payload: jsonValue(t, `1`)})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(signaled, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("signaled: %v %v", w.Status, w.Error)
	}
	got := e.identities(signaled)
	wantIdentity(t, "signaled", got, "WorkflowStarted", "alice")
	wantIdentity(t, "signaled", got, "SignalReceived", "bob")
	for typ, ids := range got {
		if typ != "WorkflowStarted" && typ != "SignalReceived" {
			for _, id := range ids {
				if id != "" {
					t.Fatalf("signaled: the orchestrator's %s names %q", typ, id)
				}
			}
		}
	}

	// A cancel by bob.
	canceled := e.start("gate", "canceled", `{}`)
	if _, err := bobWF.CancelWorkflow(c, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: canceled, Reason: "no"})); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(canceled, 20*time.Second)
	got = e.identities(canceled)
	wantIdentity(t, "canceled", got, "WorkflowStarted", "alice")
	wantIdentity(t, "canceled", got, "CancelRequested", "bob")

	// A retry by bob.
	retried := e.start("boom", "retried", `{}`)
	e.waitClosed(retried, 20*time.Second)
	if _, err := bobWF.RetryWorkflow(c, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: retried})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the retried run to fail again", func() bool {
		return len(e.identities(retried)["WorkflowFailed"]) == 2
	})
	got = e.identities(retried)
	wantIdentity(t, "retried", got, "WorkflowStarted", "alice")
	wantIdentity(t, "retried", got, "WorkflowRetried", "bob")
}

// Without tokens, requests are anonymous; runs that triggers start name
// their trigger (webhook:<name>, subject:<subject>, cron:<definition>),
// and a child run and its parent's cancel name the parent.
func TestIdentityOfTriggersAndChildren(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(gateDef)
	e.putDef(`
name: hooked
triggers:
  - webhook: audit-hook
  - subject: audit.orders.*
    id: "${ 'order-' + string(event.id) }"
steps:
  - { id: s, task: echo, input: "${ input }" }
`)
	e.putDef(`
name: mum
steps:
  - { id: kid, workflow: gate }
`)

	// Anonymous requests.
	anon := e.start("gate", "anon", `{}`)
	if err := e.signal(anon, "go", `1`); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(anon, 20*time.Second)
	got := e.identities(anon)
	wantIdentity(t, "anon", got, "WorkflowStarted", api.Anonymous)
	wantIdentity(t, "anon", got, "SignalReceived", api.Anonymous)
	anonCancel := e.start("gate", "anon-cancel", `{}`)
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: anonCancel})); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(anonCancel, 20*time.Second)
	wantIdentity(t, "anon-cancel", e.identities(anonCancel), "CancelRequested", api.Anonymous)

	// A webhook.
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, e.node.APIURL+"/hooks/audit-hook", []byte(`{"x": 1}`), nil)
		return code != http.StatusNotFound
	})
	hooked, _ := out["workflow_id"].(string)
	if code != http.StatusAccepted || hooked == "" {
		t.Fatalf("webhook: %d %v", code, out)
	}
	wantIdentity(t, "webhook", e.identities(hooked), "WorkflowStarted", "webhook:audit-hook")

	// A message on a trigger subject.
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	waitCaptured(t, js, "audit.orders.*")
	if _, err := js.Publish(ctx(t), "audit.orders.created", []byte(`{"id": 7}`)); err != nil {
		t.Fatal(err)
	}
	e.waitStartedAndClosed("order-7")
	wantIdentity(t, "subject", e.identities("order-7"), "WorkflowStarted", "subject:audit.orders.created")

	// A cron tick; the next revision stops the ticks.
	e.putDef(`
name: ticker
triggers: [ { cron: "* * * * * *" } ]
steps: [ { id: s, task: echo, input: "${ input }" } ]
`)
	var ticked []*weftv1.WorkflowSummary
	eventually(t, 20*time.Second, "a tick", func() bool { ticked = e.listAll("ticker"); return len(ticked) > 0 })
	e.putDef("name: ticker\nsteps: [ { id: s, task: echo } ]\n")
	wantIdentity(t, "cron", e.identities(ticked[0].Id), "WorkflowStarted", "cron:ticker")

	// A child run, and the cancel its parent's cancel sends it.
	mum := e.start("mum", "mum-1", `{}`)
	kid := workflow.ChildID(mum, "kid", 1)
	eventually(t, 20*time.Second, "the child to wait", func() bool {
		resp, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: kid}))
		return err == nil && stepStatus(resp.Msg.Workflow, "wait") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: mum})); err != nil {
		t.Fatal(err)
	}
	e.waitClosed(kid, 20*time.Second)
	got = e.identities(kid)
	wantIdentity(t, "child", got, "WorkflowStarted", "parent:"+mum)
	wantIdentity(t, "child", got, "CancelRequested", "parent:"+mum)
	wantIdentity(t, "parent", e.identities(mum), "CancelRequested", api.Anonymous)
}

// waitStartedAndClosed waits until workflow id exists and is closed.
func (e *env) waitStartedAndClosed(id string) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, "workflow "+id+" to close", func() bool {
		resp, err := e.wf.GetWorkflow(ctx(e.t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		return err == nil && resp.Msg.Workflow.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
}
