package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A GetHistory page token of a run in a history stream that was made
// again since (an operator recreated it) names a sequence of the old
// stream. Asked of a run started under the id in the new stream, it must
// not page into the middle of that run as if it went on from the old one
// (as it did when a token named a sequence alone): it is refused with
// NotFound, as a token of a deleted run is.
func TestAPageTokenOfAHistoryStreamMadeAgainIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	store, s, client := serveAPI(t, ns)
	const wf = "paged"
	startRun(t, store, "filler", "old", 50, 20) // the old stream's sequences run ahead
	startRun(t, store, wf, "old", 100, 3)       // four records, four events
	p1, err := client.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: wf, PageSize: 2}))
	if err != nil || p1.Msg.NextPageToken == "" {
		t.Fatalf("page 1 of the old run: %v %v", p1, err)
	}
	remakeHistory(t, ctx, ns)
	// A run under the same id in the new stream, long enough to reach
	// the old stream's sequences.
	startRun(t, store, wf, "new", 200, 40)
	// Whether or not the API noticed the stream was made again (a
	// GetWorkflow makes its follower begin, which notices at once).
	if _, err := client.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: wf})); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); s.interest.replacements.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the API never noticed the stream was made again")
		}
	}
	p2, err := client.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: wf, PageSize: 2, PageToken: p1.Msg.NextPageToken}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		var got []string
		if err == nil {
			for _, e := range p2.Msg.Events {
				got = append(got, e.Type)
			}
		}
		t.Fatalf("the old stream's token %q paged the new run: events %v (numbered from %v), err %v; want NotFound",
			p1.Msg.NextPageToken, got, firstSeq(p2), err)
	}
}

func firstSeq(r *connect.Response[weftv1.GetHistoryResponse]) any {
	if r == nil || len(r.Msg.Events) == 0 {
		return nil
	}
	return r.Msg.Events[0].Sequence
}

// A page token of another workflow's history is refused, saying so (it
// used to be taken for a run deleted since).
func TestAPageTokenOfAnotherWorkflowIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, _, client := serveAPI(t, natstest.Start(t))
	startRun(t, store, "one", "old", 100, 3)
	startRun(t, store, "two", "old", 100, 3)
	p1, err := client.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: "one", PageSize: 2}))
	if err != nil || p1.Msg.NextPageToken == "" {
		t.Fatalf("page 1: %v %v", p1, err)
	}
	_, err = client.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: "two", PageSize: 2, PageToken: p1.Msg.NextPageToken}))
	if connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), `is not of the run workflow "two" names now (a token of another workflow`) {
		t.Fatalf("one's token asked of two: %v; want NotFound saying it is not two's", err)
	}
}
