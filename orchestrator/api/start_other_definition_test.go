package api

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

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
