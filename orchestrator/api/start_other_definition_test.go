package api

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A start of definition b under the workflow id and request id of a run of
// definition a is not "the same request": b's run was never started.
// Answered OK with started=false (and a's revision), as it was when a
// repeated request was matched by its request id alone, the caller took a
// run of b for started, and GetWorkflow read back a run of a.
func TestAStartOfAnotherDefinitionUnderATakenIDAndRequestIDIsRefused(t *testing.T) {
	ctx := t.Context()
	_, s, client := serveAPI(t, natstest.Start(t))
	for _, src := range []string{"name: a\nsteps:\n  - { id: gate, wait: { signal: go } }\n", "name: b\nsteps:\n  - { id: gate, wait: { signal: go } }\n"} {
		if _, err := s.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "a", WorkflowId: "order-7", RequestId: "order-7"})); err != nil {
		t.Fatal(err)
	}
	resp, err := client.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "b", WorkflowId: "order-7", RequestId: "order-7"}))
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		if !strings.Contains(err.Error(), `definition "a"`) {
			t.Errorf("the refusal does not name the run's definition: %v", err)
		}
		return
	}
	got, gerr := client.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "order-7"}))
	if gerr != nil {
		t.Fatal(gerr)
	}
	t.Fatalf("a start of definition b under a's run's id and request id answered %v, %v; order-7 reads back as a run of %q: want AlreadyExists",
		resp.Msg, err, got.Msg.Workflow.Definition)
}

// A start that repeats a request (its workflow id and request id) with
// another input is refused, naming the request: answered "already
// started", its caller would take a run of another input for its own. The
// same input, written otherwise (1.0 for 1), is the same request.
func TestAStartRepeatingARequestWithAnotherInputIsRefused(t *testing.T) {
	ctx := t.Context()
	_, s, client := serveAPI(t, natstest.Start(t))
	if _, err := s.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: "name: a\nsteps:\n  - { id: gate, wait: { signal: go } }\n"})); err != nil {
		t.Fatal(err)
	}
	start := func(input map[string]any) (*connect.Response[weftv1.StartWorkflowResponse], error) {
		v, err := structpb.NewValue(input)
		if err != nil {
			t.Fatal(err)
		}
		return client.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "a", WorkflowId: "pay-7", RequestId: "pay-7", Input: v}))
	}
	if r, err := start(map[string]any{"amount": 1}); err != nil || !r.Msg.Started {
		t.Fatalf("first start: %v %v", r, err)
	}
	if r, err := start(map[string]any{"amount": 1.0}); err != nil || r.Msg.Started {
		t.Fatalf("the same request again: %v %v; want the run, not started again", r, err)
	}
	_, err := start(map[string]any{"amount": 2})
	if connect.CodeOf(err) != connect.CodeAlreadyExists || !strings.Contains(err.Error(), `request_id "pay-7" started workflow "pay-7" with another input`) {
		t.Fatalf("the request with another input: %v; want AlreadyExists naming the request", err)
	}
}
