package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A watch catches up with a history longer than it holds at once
// (watchReadBytes) a part at a time: the watches of a run whose history is
// large, whose callers read slowly, do not each hold the whole history in
// the API's memory (12 such watches of a 24 MiB history held 285 MiB).
// Read that way, it still sends every event once, in order, then what is
// appended, and ends at the close.
func TestAWatchCatchesUpAPartAtATime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, _, client := serveAPI(t, natstest.Start(t))
	const wf = "long-watched"
	last := startRun(t, store, wf, "d", 100, 0)
	const signals, size = 6, 512 << 10 // a history of 3 MiB, past watchReadBytes
	// Not compressible: the answers do not shrink to fit the sockets.
	raw := make([]byte, size*3/4)
	_, _ = rand.Read(raw)
	payload := base64.StdEncoding.EncodeToString(raw)
	var err error
	for i := range signals {
		if last, err = store.AppendExternal(ctx, wf, &last, fmt.Sprintf("big/%d", i), events.Event{Type: events.TypeSignalReceived,
			Time: time.Unix(101, 0).UTC(), SignalReceived: &events.SignalReceived{Name: "go", Payload: payload}}); err != nil {
			t.Fatal(err)
		}
	}
	// Read to its end, a watch sends every event once, in order, and
	// then what is appended.
	stream, err := client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	for i := uint64(1); i <= signals+2; i++ {
		if i == signals+2 {
			if _, err := store.Append(ctx, wf, last, events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(102, 0).UTC(),
				WorkflowCompleted: &events.WorkflowCompleted{}}); err != nil {
				t.Fatal(err)
			}
		}
		if !stream.Receive() {
			t.Fatalf("the watch ended before event %d: %v", i, stream.Err())
		}
		if got := stream.Msg().Event.Sequence; got != i {
			t.Fatalf("the watch sent event %d where %d was due", got, i)
		}
	}
	if stream.Receive() {
		t.Fatalf("the watch sent %d after the close", stream.Msg().Event.Sequence)
	}
}
