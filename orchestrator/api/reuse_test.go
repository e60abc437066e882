package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
)

// startRun appends the start of a run of wf (definition def, created at
// unix second at) and n signals after it; it returns the last sequence.
func startRun(t *testing.T, store *eventstore.Store, wf, def string, at int64, n int) uint64 {
	t.Helper()
	ctx := context.Background()
	var last uint64
	last, err := store.AppendExternal(ctx, wf, &last, fmt.Sprintf("start/%s/%d", wf, at), events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(at, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: def, Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if last, err = store.AppendExternal(ctx, wf, &last, fmt.Sprintf("signal/%s/%d/%d", wf, at, i), events.Event{Type: events.TypeSignalReceived,
			Time: time.Unix(at+1, 0).UTC(), SignalReceived: &events.SignalReceived{Name: "go"}}); err != nil {
			t.Fatal(err)
		}
	}
	return last
}

// serveAPI serves an API over a store of NATS server ns on a real
// listener, closed when the test ends, and returns the store, the API and
// a client of it.
func serveAPI(t *testing.T, ns *natstest.Server) (*eventstore.Store, *Server, weftv1connect.WorkflowServiceClient) {
	t.Helper()
	store, err := eventstore.Open(t.Context(), ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, url := serveStore(t, store)
	return store, s, weftv1connect.NewWorkflowServiceClient(http.DefaultClient, url)
}

// serveStore serves an API over store on a real listener until the test
// ends, and returns it and its URL.
func serveStore(t *testing.T, store *eventstore.Store) (*Server, string) {
	t.Helper()
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// awaitUnanswered awaits wf in the background and sends how the call
// ended: an answer is an error naming the run it answered with.
func awaitUnanswered(ctx context.Context, client weftv1connect.WorkflowServiceClient, wf string) <-chan error {
	ended := make(chan error, 1)
	go func() {
		r, err := client.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: wf}))
		if err == nil {
			err = fmt.Errorf("answered with a %s run of definition %q", r.Msg.Workflow.Status, r.Msg.Workflow.Definition)
		}
		ended <- err
	}()
	return ended
}

// A GetHistory page token of a run deleted since is refused with
// NotFound: it never pages through a run started under the id since, and
// a read of records deleted while they are read ends.
func TestAPageTokenOfADeletedRunIsRefused(t *testing.T) {
	ctx := context.Background()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	page := func(wf, token string) (*weftv1.GetHistoryResponse, error) {
		r, err := s.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: wf, PageSize: 2, PageToken: token}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	}
	for _, again := range []bool{true, false} {
		wf := fmt.Sprintf("reused-%v", again)
		startRun(t, store, wf, "old", 100, 3)
		p1, err := page(wf, "")
		if err != nil || p1.NextPageToken == "" {
			t.Fatalf("page 1: %v %v", p1, err)
		}
		if err := store.DeleteRun(ctx, wf, 0); err != nil {
			t.Fatal(err)
		}
		if again {
			startRun(t, store, wf, "new", 200, 3)
		}
		p2, err := page(wf, p1.NextPageToken)
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("started again %v: the deleted run's token %q read %v, err %v; want NotFound", again, p1.NextPageToken, p2, err)
		}
		if again {
			if p, err := page(wf, ""); err != nil || p.Events[0].Type != "WorkflowStarted" || p.Events[0].Sequence != 1 {
				t.Fatalf("the first page of the new run: %v %v", p, err)
			}
		}
	}
}

// An await and a watch of a run deleted while they wait are not answered
// with a run started under its id since: both end with NotFound.
func TestAnAwaitAndAWatchOfADeletedRunEndWithIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const wf = "reused-watched"
	store, s, client := serveAPI(t, natstest.Start(t))
	startRun(t, store, wf, "old", 100, 0)
	stream, err := client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatal(stream.Err())
	}
	awaited := awaitUnanswered(ctx, client, wf)
	// The await has registered and made its first look once the run is
	// cached and the call waits.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, cached := s.states.get(wf)
		if a, _ := s.Waiting(); a == 1 && cached {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the await never waited")
		}
	}
	if err := store.DeleteRun(ctx, wf, 0); err != nil {
		t.Fatal(err)
	}
	first := startRun(t, store, wf, "new", 200, 0)
	if _, err := store.Append(ctx, wf, first, events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(201, 0).UTC(),
		WorkflowCompleted: &events.WorkflowCompleted{Output: "new"}}); err != nil {
		t.Fatal(err)
	}
	var more []string
	for stream.Receive() {
		e := stream.Msg().Event
		more = append(more, fmt.Sprintf("%d:%s", e.Sequence, e.Type))
	}
	if len(more) > 0 || connect.CodeOf(stream.Err()) != connect.CodeNotFound {
		t.Errorf("the watch of the deleted run went on with %v and ended with %v; want no event and NotFound", more, stream.Err())
	}
	if err := <-awaited; connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("the await of the deleted run: %v; want NotFound", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}

// A cancel of a run started under the id of a deleted one that was
// canceled too, within the stream's duplicate window, is recorded: it is
// not taken for the first run's.
func TestACancelOfARunStartedAgainIsRecorded(t *testing.T) {
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	const wf = "order-7"
	cancels := func() int {
		msgs, err := store.Read(ctx, wf, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range msgs {
			for _, ev := range m.Record.Events {
				if ev.Type == events.TypeCancelRequested {
					n++
				}
			}
		}
		return n
	}
	for i, req := range []string{"r1", "r2"} {
		if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: wf, RequestId: req})); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the same cancel twice is recorded once
			if _, err := s.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf})); err != nil {
				t.Fatal(err)
			}
		}
		if n := cancels(); n != 1 {
			t.Fatalf("run %d: its history holds %d cancel requests, want 1", i+1, n)
		}
		if err := store.DeleteRun(ctx, wf, 0); err != nil { // retention
			t.Fatal(err)
		}
	}
}

// A history stream made again under a running API (an operator recreated
// it) is read as a new one, whether the API followed the histories then or
// not: a cached state of the old stream is not answered for a run started
// under its id in the new one, and an await or a watch open on the old run
// ends with NotFound rather than wait for ever.
func TestAHistoryStreamMadeAgainIsReadAfresh(t *testing.T) {
	for _, idle := range []bool{false, true} {
		t.Run(fmt.Sprintf("idle=%v", idle), func(t *testing.T) { historyMadeAgain(t, idle) })
	}
}

func historyMadeAgain(t *testing.T, idle bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	store, s, client := serveAPI(t, ns)
	const wf = "kept"
	startRun(t, store, "filler", "old", 50, 20) // the old stream's sequences run ahead
	startRun(t, store, wf, "old", 100, 2)
	get := func() (*weftv1.Workflow, error) {
		r, err := client.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: wf}))
		if err != nil {
			return nil, err
		}
		return r.Msg.Workflow, nil
	}
	if w, err := get(); err != nil || w.Definition != "old" {
		t.Fatalf("the run before: %v %v", w, err)
	}
	var awaited <-chan error
	watched := make(chan error, 1)
	if idle {
		// No call waits, and the follower has stopped (as it does 30 s
		// after the last): the cached state stays.
		in := s.interest
		in.mu.Lock()
		in.stop()
		in.stop = nil
		in.mu.Unlock()
		for deadline := time.Now().Add(10 * time.Second); in.running.Load() != 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the follower never stopped")
			}
		}
	} else {
		awaited = awaitUnanswered(ctx, client, wf)
		go func() {
			stream, err := client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
			if err != nil {
				watched <- err
				return
			}
			defer stream.Close()
			n := 0
			for stream.Receive() {
				n++
			}
			if err := stream.Err(); n > 3 || err == nil {
				watched <- fmt.Errorf("%d events, then %v", n, err)
				return
			}
			watched <- stream.Err()
		}()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if a, w := s.Waiting(); a == 1 && w == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the await and the watch never waited")
			}
		}
	}
	remakeHistory(t, ctx, ns)
	first := startRun(t, store, wf, "new", 200, 0)
	var fresh *connect.ServerStreamForClient[weftv1.WatchWorkflowResponse]
	var err error
	if idle {
		// A watch of the new run, begun before the API noticed the
		// stream was made again, goes on when it does.
		if fresh, err = client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf})); err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		if !fresh.Receive() {
			t.Fatalf("the watch of the new run: %v", fresh.Err())
		}
		for deadline := time.Now().Add(10 * time.Second); s.interest.replacements.Load() == 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the API never noticed the stream was made again")
			}
		}
	}
	if _, err := store.Append(ctx, wf, first, events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(201, 0).UTC(),
		WorkflowCompleted: &events.WorkflowCompleted{Output: "new"}}); err != nil {
		t.Fatal(err)
	}
	if idle {
		var got []string
		for fresh.Receive() {
			got = append(got, fresh.Msg().Event.Type)
		}
		if fresh.Err() != nil || len(got) != 1 || got[0] != "WorkflowCompleted" {
			t.Fatalf("the watch of the new run went on with %v and ended with %v; want its close", got, fresh.Err())
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		w, err := get()
		if err == nil && w.Definition == "new" && w.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GetWorkflow after the stream was made again: %v %v; want the new run, completed", w, err)
		}
	}
	if idle {
		return
	}
	for name, ch := range map[string]<-chan error{"await": awaited, "watch": watched} {
		select {
		case err := <-ch:
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Fatalf("the %s of the old run: %v; want NotFound", name, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("the %s of the old run is still open", name)
		}
	}
}

// remakeHistory deletes the history stream and makes it again, as an
// operator might: its sequences start over.
func remakeHistory(t *testing.T, ctx context.Context, ns *natstest.Server) {
	t.Helper()
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, eventstore.HistoryStream); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{}); err != nil {
		t.Fatal(err)
	}
}
