package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// fakeWatches serves WatchWorkflow: the n-th watch (from 1) sends the
// events streams(n) gives, then ends with its error.
type fakeWatches struct {
	weftv1connect.UnimplementedWorkflowServiceHandler
	streams func(n int) ([]*weftv1.HistoryEvent, error)

	mu sync.Mutex
	n  int
}

func (f *fakeWatches) WatchWorkflow(_ context.Context, _ *connect.Request[weftv1.WatchWorkflowRequest], stream *connect.ServerStream[weftv1.WatchWorkflowResponse]) error {
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	evs, err := f.streams(n)
	for _, ev := range evs {
		if err := stream.Send(&weftv1.WatchWorkflowResponse{Event: ev}); err != nil {
			return err
		}
	}
	return err
}

// history is a run's events 1 to n, the first recorded at started.
func history(started time.Time, n int) []*weftv1.HistoryEvent {
	var evs []*weftv1.HistoryEvent
	for seq := 1; seq <= n; seq++ {
		evs = append(evs, &weftv1.HistoryEvent{Sequence: uint64(seq), Type: "E", Time: timestamppb.New(started.Add(time.Duration(seq) * time.Millisecond))})
	}
	return evs
}

func serveWatches(t *testing.T, f *fakeWatches) *clientFlags {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(weftv1connect.NewWorkflowServiceHandler(f))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &clientFlags{server: srv.URL}
}

// A watch that the server ends as it stops (Unavailable), or cannot
// answer, is made again and goes on after the last event it handed on:
// each event once, in order, to the close.
func TestWatchWorkflowGoesOnAfterAStop(t *testing.T) {
	started := time.Now()
	f := &fakeWatches{streams: func(n int) ([]*weftv1.HistoryEvent, error) {
		switch n {
		case 1:
			return history(started, 2), connect.NewError(connect.CodeUnavailable, errors.New("this API process is stopping"))
		case 2:
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("connection refused"))
		}
		return history(started, 4), nil
	}}
	var got []uint64
	var notes bytes.Buffer
	err := watchWorkflow(context.Background(), serveWatches(t, f), "w", func(ev *weftv1.HistoryEvent) error {
		got = append(got, ev.GetSequence())
		return nil
	}, &notes)
	if err != nil || len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("watchWorkflow handed on %v, %v; want events 1 to 4 once each", got, err)
	}
	if !strings.Contains(notes.String(), "watching again") {
		t.Errorf("notes %q; want the outage noted", notes.String())
	}

	// A run started again under the id meanwhile is not the one watched.
	f = &fakeWatches{streams: func(n int) ([]*weftv1.HistoryEvent, error) {
		if n == 1 {
			return history(started, 2), connect.NewError(connect.CodeUnavailable, errors.New("stopping"))
		}
		return history(started.Add(time.Hour), 4), nil
	}}
	got = nil
	err = watchWorkflow(context.Background(), serveWatches(t, f), "w", func(ev *weftv1.HistoryEvent) error {
		got = append(got, ev.GetSequence())
		return nil
	}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "started again") || len(got) != 2 {
		t.Fatalf("watchWorkflow over a run started again handed on %v, %v; want 1 and 2, then an error", got, err)
	}

	// Other errors end it at once.
	f = &fakeWatches{streams: func(int) ([]*weftv1.HistoryEvent, error) {
		return nil, connect.NewError(connect.CodeNotFound, errors.New(`workflow "w" not found`))
	}}
	err = watchWorkflow(context.Background(), serveWatches(t, f), "w", func(*weftv1.HistoryEvent) error { return nil }, &bytes.Buffer{})
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	if connect.CodeOf(err) != connect.CodeNotFound || n != 1 {
		t.Fatalf("watchWorkflow = %v after %d watches; want not_found after 1", err, n)
	}
}
