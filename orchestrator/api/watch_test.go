package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/internal/natstest"
)

// A watch whose read returns less than the follower has passed on of its
// run reads again, without waiting for a wake (the record's wake came
// before the read): here no follower runs, so only that read again sends
// the record, stored 100ms after the follower was said to pass it on. The
// read behind is counted once (weft_api_reads_behind_total).
func TestAWatchBehindTheFollowerReadsAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const wf = "watched-behind"
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(store, Config{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.interest.follow = func(context.Context) (*eventstore.Follower, error) {
		return nil, errors.New("no follower in this test")
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var zero uint64
	first, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	s.interest.followed.note(wf, first+1)
	time.AfterFunc(100*time.Millisecond, func() {
		if _, err := appendSignal(ctx, store, wf, first); err != nil {
			t.Error(err)
		}
	})
	client := weftv1connect.NewWorkflowServiceClient(http.DefaultClient, srv.URL)
	stream, err := client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var got []string
	for len(got) < 2 && stream.Receive() {
		got = append(got, stream.Msg().Event.Type)
	}
	if len(got) < 2 {
		t.Fatalf("the watch sent %v and then ended (%v); the signal stored after the start never came", got, stream.Err())
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP weft_api_reads_behind_total Reads of a run's history that returned less than the API's follower had passed on before they began (the stream answered from behind what it had delivered), and were read again.
# TYPE weft_api_reads_behind_total counter
weft_api_reads_behind_total 1
`), metrics.NameReadsBehind); err != nil {
		t.Fatalf("the read behind, counted once: %v", err)
	}
}
