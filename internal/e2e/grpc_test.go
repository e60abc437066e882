package e2e

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/reflect/protoreflect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// h2c is an HTTP/2 client over plain TCP, as gRPC tools use.
func h2c() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

// gRPC (over h2c), health checks, reflection and WatchWorkflow share the
// API port.
func TestGRPCHealthReflectionAndWatch(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(threeSteps)
	c := ctx(t)

	health := grpchealth.NewClient(h2c(), e.node.APIURL, connect.WithGRPC())
	resp, err := health.Check(c, &grpchealth.CheckRequest{Service: weftv1connect.WorkflowServiceName})
	if err != nil || resp.Status != grpchealth.StatusServing {
		t.Fatalf("health: %v %v", resp, err)
	}

	refl := grpcreflect.NewClient(h2c(), e.node.APIURL, connect.WithGRPC())
	stream := refl.NewStream(c)
	names, err := stream.ListServices()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	_, _ = stream.Close()
	for _, want := range []string{weftv1connect.WorkflowServiceName, weftv1connect.DefinitionServiceName} {
		if !slices.Contains(names, protoreflect.FullName(want)) {
			t.Fatalf("reflection lists %v, missing %s", names, want)
		}
	}

	// A gRPC client starts a workflow and watches it to the end.
	wf := weftv1connect.NewWorkflowServiceClient(h2c(), e.node.APIURL, connect.WithGRPC())
	start, err := wf.StartWorkflow(c, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "three", Input: jsonValue(t, `{"n": 2}`)}))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(c, 20*time.Second)
	defer cancel()
	watch, err := wf.WatchWorkflow(wctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: start.Msg.WorkflowId}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var seq uint64
	for watch.Receive() {
		ev := watch.Msg().Event
		seq++
		if ev.Sequence != seq {
			t.Fatalf("watch sequence %d, want %d", ev.Sequence, seq)
		}
		got = append(got, ev.Type)
	}
	if err := watch.Err(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	if len(got) != 8 || got[len(got)-1] != "WorkflowCompleted" {
		t.Fatalf("watched %v", got)
	}
	_, err = wf.GetWorkflow(c, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "nope"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("gRPC NotFound: %v", err)
	}
}
