package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A webhook whose id template maps a delivery onto a run of another
// definition answers 422 without naming that definition: its caller
// needs no token (a webhook without secret_env is open to anyone who
// reaches the API), and the run belongs to a definition it may know
// nothing of. The recorded trigger failure, read with a token, still
// names it.
func TestAWebhookRefusedForAnotherDefinitionsRunNamesNoDefinition(t *testing.T) {
	ctx := t.Context()
	_, s, client := serveAPI(t, natstest.Start(t))
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for _, src := range []string{
		"name: payroll-secret\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
		"name: open\ntriggers:\n  - webhook: open\n    id: \"${ event.id }\"\nsteps:\n  - { id: a, task: echo }\n",
	} {
		if _, err := s.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "payroll-secret", WorkflowId: "run-7"})); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.URL+"/hooks/open", "application/json", strings.NewReader(`{"id": "run-7"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("answered %d %s, want 422", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "payroll-secret") {
		t.Errorf("the webhook's caller is told the other run's definition: %s", body)
	}
	if !strings.Contains(string(body), "another definition") || !strings.Contains(string(body), "id template") {
		t.Errorf("the answer does not say what is wrong and what to change: %s", body)
	}
	fs, err := s.ListTriggerFailures(ctx, connect.NewRequest(&weftv1.ListTriggerFailuresRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.Msg.Failures) != 1 || !strings.Contains(fs.Msg.Failures[0].Reason, `"payroll-secret"`) {
		t.Errorf("recorded failures %v: want one naming the run's definition", fs.Msg.Failures)
	}
}

// An API that requires tokens warns, when a definition is put, of each
// webhook without secret_env: that webhook starts runs for anyone who
// reaches the API, without a token, while every other way to start one
// needs a token of role run. An API without tokens, open to its callers
// anyway, does not warn; nor does a webhook with a secret.
func TestAnOpenWebhookIsWarnedOfWhenTheAPIRequiresTokens(t *testing.T) {
	ctx := t.Context()
	store, _, _ := serveAPI(t, natstest.Start(t))
	const src = "name: signup\ntriggers:\n  - webhook: open-signup\n  - webhook: signed-signup\n    secret_env: PATH\nsteps:\n  - { id: a, task: echo }\n"
	for _, tokens := range []Tokens{nil, {"ci": {Hash: HashToken("ci-secret"), Role: RoleAdmin}}} {
		s, err := New(store, Config{Tokens: tokens})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
		if err != nil {
			t.Fatal(err)
		}
		var open []string
		for _, w := range resp.Msg.Warnings {
			if strings.Contains(w, "secret_env") {
				open = append(open, w)
			}
		}
		switch {
		case tokens == nil && len(open) > 0:
			t.Errorf("an API without tokens warns of open webhooks: %q", open)
		case tokens != nil && (len(open) != 1 || !strings.Contains(open[0], `"open-signup"`) || !strings.Contains(open[0], "without a token")):
			t.Errorf("an API with tokens warns %q: want one warning naming webhook open-signup, saying anyone may start runs without a token", resp.Msg.Warnings)
		}
	}
}
