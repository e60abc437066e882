package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator/api"
)

// withToken adds "Authorization: Bearer <token>" to every request.
type withToken struct {
	token string
	next  http.RoundTripper
}

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+w.token)
	return w.next.RoundTrip(r)
}

func tokenClient(c *http.Client, token string) *http.Client {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	return &http.Client{Transport: withToken{token, next}}
}

// With tokens, every API request needs one, over Connect, gRPC and
// gRPC-Web alike; health checks and webhooks stay open.
func TestAuthTokens(t *testing.T) {
	token, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t)
	n, err := node.Start(context.Background(), node.Config{
		NATSURL: ns.URL(),
		API:     &api.Config{Tokens: api.Tokens{"ci": {Hash: api.HashToken(token), Role: api.RoleAdmin}}},
		APIAddr: "127.0.0.1:0",
		Logger:  testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(sctx)
	})
	c := ctx(t)
	url := n.APIURL

	wantUnauthenticated := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("%s: %v; want unauthenticated", what, err)
		}
		var ce *connect.Error
		if errors.As(err, &ce) && !strings.Contains(ce.Message(), "Authorization: Bearer <token>") {
			t.Fatalf("%s: message %q does not say how to send a token", what, ce.Message())
		}
	}
	list := &weftv1.ListDefinitionsRequest{}
	for name, opts := range map[string][]connect.ClientOption{
		"connect":  nil,
		"grpc":     {connect.WithGRPC()},
		"grpc-web": {connect.WithGRPCWeb()},
	} {
		defs := weftv1connect.NewDefinitionServiceClient(h2c(), url, opts...)
		_, err := defs.ListDefinitions(c, connect.NewRequest(list))
		wantUnauthenticated(name+" without a token", err)
		defs = weftv1connect.NewDefinitionServiceClient(tokenClient(h2c(), "weft_wrong"), url, opts...)
		_, err = defs.ListDefinitions(c, connect.NewRequest(list))
		wantUnauthenticated(name+" with a wrong token", err)
		defs = weftv1connect.NewDefinitionServiceClient(tokenClient(h2c(), token), url, opts...)
		if _, err := defs.ListDefinitions(c, connect.NewRequest(list)); err != nil {
			t.Fatalf("%s with the token: %v", name, err)
		}
	}

	// Streams too.
	watch, err := weftv1connect.NewWorkflowServiceClient(http.DefaultClient, url).
		WatchWorkflow(c, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: "w"}))
	if err == nil {
		watch.Receive()
		err = watch.Err()
		watch.Close()
	}
	wantUnauthenticated("watch without a token", err)

	// Plain HTTP with Connect's JSON: 401 and code "unauthenticated".
	post := func(auth string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, url+"/weft.v1.DefinitionService/ListDefinitions", strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	for _, auth := range []string{"", "Bearer weft_wrong", "Basic Y2k6eA=="} {
		if code, out := post(auth); code != http.StatusUnauthorized || out["code"] != "unauthenticated" {
			t.Fatalf("POST JSON with Authorization %q: %d %v", auth, code, out)
		}
	}
	if code, out := post("Bearer " + token); code != http.StatusOK {
		t.Fatalf("POST JSON with the token: %d %v", code, out)
	}

	// Health checks need no token; reflection does.
	health := grpchealth.NewClient(h2c(), url, connect.WithGRPC())
	if resp, err := health.Check(c, &grpchealth.CheckRequest{}); err != nil || resp.Status != grpchealth.StatusServing {
		t.Fatalf("health without a token: %v %v", resp, err)
	}
	refl := grpcreflect.NewClient(h2c(), url, connect.WithGRPC())
	stream := refl.NewStream(c)
	_, err = stream.ListServices()
	_, _ = stream.Close()
	wantUnauthenticated("reflection without a token", err)
	stream = grpcreflect.NewClient(tokenClient(h2c(), token), url, connect.WithGRPC()).NewStream(c)
	if _, err := stream.ListServices(); err != nil {
		t.Fatalf("reflection with the token: %v", err)
	}
	_, _ = stream.Close()

	// Webhooks keep their own authentication (an HMAC signature, here
	// none) and need no bearer token.
	defs := weftv1connect.NewDefinitionServiceClient(tokenClient(http.DefaultClient, token), url)
	if _, err := defs.PutDefinition(c, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: `
name: hooked
triggers: [ { webhook: open-hook } ]
steps: [ { id: s, task: echo, input: "${ input }" } ]
`})); err != nil {
		t.Fatal(err)
	}
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url+"/hooks/open-hook", []byte(`{"x": 1}`), nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusAccepted || out["workflow_id"] == nil {
		t.Fatalf("webhook without a bearer token: %d %v", code, out)
	}
}

// A token's role bounds what it may call through every protocol: a read
// token reads and awaits but cannot start a run, a run token starts runs
// but cannot put a definition, and each refusal is PermissionDenied
// naming the role the call needs.
func TestTokenRolesThroughTheAPI(t *testing.T) {
	admin, runner, reader := "weft_admin-secret", "weft_run-secret", "weft_read-secret"
	e := newEnv(t, envOpts{tokens: api.Tokens{"boss": {Hash: api.HashToken(admin), Role: api.RoleAdmin},
		"bot": {Hash: api.HashToken(runner), Role: api.RoleRun}, "wall": {Hash: api.HashToken(reader), Role: api.RoleRead}}})
	c := ctx(t)
	wantDenied := func(what string, err error, needs string) {
		t.Helper()
		var ce *connect.Error
		if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied || !strings.Contains(ce.Message(), "needs role "+needs) {
			t.Fatalf("%s: %v; want permission_denied saying it needs role %s", what, err, needs)
		}
	}
	src := "name: roles\nsteps:\n  - { id: a, task: echo }\n"
	for name, opts := range map[string][]connect.ClientOption{"connect": nil, "grpc": {connect.WithGRPC()}} {
		defsAs := func(token string) weftv1connect.DefinitionServiceClient {
			return weftv1connect.NewDefinitionServiceClient(tokenClient(h2c(), token), e.node.APIURL, opts...)
		}
		wfAs := func(token string) weftv1connect.WorkflowServiceClient {
			return weftv1connect.NewWorkflowServiceClient(tokenClient(h2c(), token), e.node.APIURL, opts...)
		}
		put := connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src})
		_, err := defsAs(runner).PutDefinition(c, put)
		wantDenied(name+": a run token putting a definition", err, "admin")
		_, err = defsAs(reader).PutDefinition(c, put)
		wantDenied(name+": a read token putting a definition", err, "admin")
		if _, err := defsAs(admin).PutDefinition(c, put); err != nil {
			t.Fatalf("%s: the admin token putting a definition: %v", name, err)
		}
		wf := "roles-" + name
		start := connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "roles", WorkflowId: wf})
		_, err = wfAs(reader).StartWorkflow(c, start)
		wantDenied(name+": a read token starting a run", err, "run")
		if _, err := wfAs(runner).StartWorkflow(c, start); err != nil {
			t.Fatalf("%s: the run token starting a run: %v", name, err)
		}
		got, err := wfAs(reader).AwaitWorkflow(c, connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: wf}))
		if err != nil || got.Msg.Workflow.GetStatus() != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("%s: the read token awaiting the run: %v %v", name, got, err)
		}
		if _, err := defsAs(reader).ListDefinitions(c, connect.NewRequest(&weftv1.ListDefinitionsRequest{})); err != nil {
			t.Fatalf("%s: the read token listing definitions: %v", name, err)
		}
		_, err = wfAs(reader).CancelWorkflow(c, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf}))
		wantDenied(name+": a read token canceling a run", err, "run")
	}
}
