package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A watch open when its API process stops ends as an await does: with
// Unavailable, which tells its client to watch again (on another API
// process, or this one started again), not with Canceled, which is what
// a caller that hung up gets and which clients take as their own doing.
func TestAWatchOpenAtAStopEndsUnavailable(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	parked := e.start("parked", "watched-at-stop", `{}`)
	n2 := e.startNode(envOpts{noExecutor: true}, false, true)
	wf, _ := newClients(n2.APIURL)

	stream, err := wf.WatchWorkflow(ctx(t), connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: parked}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("the watch sent nothing: %v", stream.Err())
	}
	eventually(t, 20*time.Second, "the watch to follow the run", func() bool {
		_, watches := n2.API.Waiting()
		return watches == 1
	})
	ended := make(chan error, 1)
	go func() {
		for stream.Receive() {
		}
		ended <- stream.Err()
	}()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = n2.Stop(sctx)
	}()
	defer func() { <-stopped }()
	select {
	case err := <-ended:
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("a watch open at the stop of its API process ended with %v (code %v); want Unavailable, as an await", err, connect.CodeOf(err))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a watch open at the stop did not end")
	}
}
