package e2e

import (
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// searchedDef sets search attributes from its input when it starts and
// from steps' outputs as they complete, parking on a wait between them so
// the listing is seen to change while the run's status does not.
const searchedDef = `
name: searched
search:
  customer: "${ input.customer }"
  stage: started
  since: "${ workflow.now }"
steps:
  - { id: first, wait: { signal: go } }
  - id: price
    task: echo
    input: { amount: "${ input.amount }" }
    search:
      amount: "${ steps.price.output.amount }"
      stage: priced
  - { id: second, wait: { signal: go } }
  - id: done
    task: echo
    input: "${ steps.second.output }"
    search: { stage: "${ 'done:' + steps.done.output }" }
`

// searchStruct builds the Struct of search attributes m.
func searchStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// summaryOf returns the listing's entry for id, or nil.
func (e *env) summaryOf(def, id string) *weftv1.WorkflowSummary {
	e.t.Helper()
	for _, s := range e.listAll(def) {
		if s.Id == id {
			return s
		}
	}
	return nil
}

// waitListed polls ListWorkflows until id's entry has status st and search
// attributes want, and returns it.
func (e *env) waitListed(def, id string, st weftv1.WorkflowStatus, want *structpb.Struct) *weftv1.WorkflowSummary {
	e.t.Helper()
	var got *weftv1.WorkflowSummary
	deadline := time.Now().Add(20 * time.Second)
	for {
		got = e.summaryOf(def, id)
		if got != nil && got.Status == st && proto.Equal(got.SearchAttributes, want) {
			return got
		}
		if time.Now().After(deadline) {
			b, _ := protojson.Marshal(got)
			e.t.Fatalf("the listing of %s does not show %v with %v within 20s: %s", id, st, want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A run's search attributes, from its input at the start and from its
// steps' outputs as they complete, show in GetWorkflow and in the listing
// (which follows each change, the status staying RUNNING), with who
// started it: anonymous, without tokens.
func TestSearchAttributesShow(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(searchedDef)
	id := e.start("searched", "search-1", `{"customer": "ann", "amount": 12.5}`)
	running := weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING

	e.waitStep(id, "first", weftv1.StepStatus_STEP_STATUS_WAITING)
	w := e.get(id)
	since := w.CreatedTime.AsTime().UTC().Format(time.RFC3339Nano)
	want := searchStruct(t, map[string]any{"customer": "ann", "stage": "started", "since": since})
	if !proto.Equal(w.SearchAttributes, want) {
		t.Fatalf("GetWorkflow after the start: search %v, want %v", w.SearchAttributes, want)
	}
	if sum := e.waitListed("searched", id, running, want); sum.Identity != "anonymous" {
		t.Fatalf("listed as started by %q, want anonymous", sum.Identity)
	}

	if err := e.signal(id, "go", `"x"`); err != nil {
		t.Fatal(err)
	}
	e.waitStep(id, "second", weftv1.StepStatus_STEP_STATUS_WAITING)
	want = searchStruct(t, map[string]any{"customer": "ann", "stage": "priced", "since": since, "amount": 12.5})
	if w := e.get(id); !proto.Equal(w.SearchAttributes, want) {
		t.Fatalf("GetWorkflow after price: search %v, want %v", w.SearchAttributes, want)
	}
	e.waitListed("searched", id, running, want)

	if err := e.signal(id, "go", `"y"`); err != nil {
		t.Fatal(err)
	}
	w = e.waitClosed(id, 20*time.Second)
	want = searchStruct(t, map[string]any{"customer": "ann", "stage": "done:y", "since": since, "amount": 12.5})
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || !proto.Equal(w.SearchAttributes, want) {
		t.Fatalf("closed %v (%v) with search %v, want completed with %v", w.Status, w.Error, w.SearchAttributes, want)
	}
	if sum := e.waitListed("searched", id, weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED, want); sum.Identity != "anonymous" {
		t.Fatalf("listed as started by %q, want anonymous", sum.Identity)
	}

	// A query sees them with their types: a number, a string, and a
	// timestamp (workflow.now at the start, the run's creation).
	for q, want := range map[string]bool{
		`search.amount > 12.0 && search.stage == "done:y" && search.since == created && identity == "anonymous"`: true,
		`search.since > created`: false,
	} {
		resp, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: "searched", Query: q}))
		if err != nil {
			t.Fatalf("query %s: %v", q, err)
		}
		if got := len(resp.Msg.Workflows) == 1; got != want {
			t.Fatalf("query %s lists %d runs; want the run listed: %v", q, len(resp.Msg.Workflows), want)
		}
	}

	// The history records each set, the definition's at no step.
	var sets []string
	for _, ev := range e.history(id) {
		if ev.Type == "SearchAttributesSet" {
			sets = append(sets, fmt.Sprintf("%q:%d", ev.StepPath, len(ev.Data.GetStructValue().GetFields()["attributes"].GetStructValue().GetFields())))
		}
	}
	if got := fmt.Sprint(sets); got != `["":3 "price":2 "done":1]` {
		t.Fatalf("SearchAttributesSet events %s", got)
	}
}

// A search attribute's value that cannot be recorded fails the run with
// its own error type, which the listing shows as failed.
func TestSearchAttributesInvalidValueFailsRun(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: badsearch
steps:
  - id: a
    task: echo
    input: "${ input.tags }"
    search: { tags: "${ steps.a.output }" }
`)
	id := e.start("badsearch", "badsearch-1", `{"tags": ["x", "y"]}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.GetType() != workflow.ErrTypeInvalidSearch {
		t.Fatalf("closed %v with %v, want failed with %s", w.Status, w.Error, workflow.ErrTypeInvalidSearch)
	}
	if stepStatus(w, "a") != weftv1.StepStatus_STEP_STATUS_COMPLETED {
		t.Fatalf("step a is %v, want completed (the run failed, not the step)", stepStatus(w, "a"))
	}
	e.waitListed("badsearch", id, weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED, nil)
}
