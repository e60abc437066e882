package api

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/internal/natstest"
)

// With the one turn of run reads taken, a read of a run waits for it (and
// says why when its deadline passes first), while the listing's reads,
// awaits and writes go on at once; the read answers once the turn is
// given back, and its wait is recorded.
func TestReadsTakeTurns(t *testing.T) {
	ns := natstest.Start(t)
	store, err := eventstore.Open(t.Context(), ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.NewRegistry()
	srv, err := New(store, Config{MaxConcurrentReads: 1, Metrics: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer("", srv.Handler())
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	c := weftv1connect.NewWorkflowServiceClient(http.DefaultClient, "http://"+ln.Addr().String())

	srv.runReads.turns <- struct{}{} // the one turn of run reads, held by the test
	// A Connect JSON client whose call may take 300 ms hears why it failed.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+ln.Addr().String()+weftv1connect.WorkflowServiceGetWorkflowProcedure,
		strings.NewReader(`{"workflowId":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connect-Timeout-Ms", "300")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"deadline_exceeded"`) || !strings.Contains(string(body), "answers 1 such reads at once") {
		t.Fatalf("a read past its deadline while the turn is held: %s %s, want deadline_exceeded saying why", resp.Status, body)
	}
	// The listing's reads, awaits and writes take no turn of run reads:
	// they answer at once.
	if _, err := c.ListWorkflows(t.Context(), connect.NewRequest(&weftv1.ListWorkflowsRequest{})); err != nil {
		t.Fatalf("list while a run read's turn is held: %v", err)
	}
	_, err = c.AwaitWorkflow(t.Context(), connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: "none"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("await of an unknown run while the turn is held: %v, want NotFound", err)
	}
	_, err = c.SignalWorkflow(t.Context(), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "none", Name: "go"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("signal of an unknown run while the turn is held: %v, want NotFound", err)
	}

	// A history read waits for the turn and answers once it is given back.
	done := make(chan error, 1)
	go func() {
		_, err := c.GetHistory(t.Context(), connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: "none"}))
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); srv.runReads.waiting.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the history read never waited for its turn")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the history read answered while the turn was held: %v", err)
	default:
	}
	<-srv.runReads.turns
	if err := <-done; connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the history read of an unknown run, once the turn is given back: %v, want NotFound", err)
	}
	// The list answered at once and the history read waited: both are
	// recorded; the read that gave up is not.
	if n := testutil.CollectAndCount(reg, metrics.NameReadWait); n != 1 {
		t.Fatalf("%d %s series, want 1", n, metrics.NameReadWait)
	}
	if got := histogramCount(t, reg); got != 2 {
		t.Fatalf("%d reads recorded, want 2 (the list and the history read)", got)
	}
	for _, r := range []*reads{srv.runReads, srv.listReads} {
		if len(r.turns) != 0 || r.waiting.Load() != 0 {
			t.Fatalf("after the calls: %d turns held, %d waiting", len(r.turns), r.waiting.Load())
		}
	}
}

// histogramCount is the number of waits weft_api_read_wait_seconds holds.
func histogramCount(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == metrics.NameReadWait {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatal(errors.New("no " + metrics.NameReadWait))
	return 0
}
