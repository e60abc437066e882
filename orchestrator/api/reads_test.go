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

// With its one turn taken, a read waits for it (and says why when its
// deadline passes first), while awaits and writes go on at once; the
// read answers once the turn is given back, and its wait is recorded.
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

	srv.reads.turns <- struct{}{} // the one turn, held by the test
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
	if !strings.Contains(string(body), `"deadline_exceeded"`) || !strings.Contains(string(body), "answers 1 reads at once") {
		t.Fatalf("a read past its deadline while the turn is held: %s %s, want deadline_exceeded saying why", resp.Status, body)
	}
	// An await and a write do not take turns: they answer at once.
	_, err = c.AwaitWorkflow(t.Context(), connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: "none"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("await of an unknown run while the turn is held: %v, want NotFound", err)
	}
	_, err = c.SignalWorkflow(t.Context(), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "none", Name: "go"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("signal of an unknown run while the turn is held: %v, want NotFound", err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.ListWorkflows(t.Context(), connect.NewRequest(&weftv1.ListWorkflowsRequest{}))
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); srv.reads.waiting.Load() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the list never waited for its turn")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the list answered while the turn was held: %v", err)
	default:
	}
	<-srv.reads.turns
	if err := <-done; err != nil {
		t.Fatalf("the list, once the turn is given back: %v", err)
	}
	// The list's wait is recorded; the read that gave up is not, and the
	// await and the signal take no turn.
	if n := testutil.CollectAndCount(reg, metrics.NameReadWait); n != 1 {
		t.Fatalf("%d %s series, want 1", n, metrics.NameReadWait)
	}
	if got := histogramCount(t, reg); got != 1 {
		t.Fatalf("%d reads recorded, want 1 (the list)", got)
	}
	if len(srv.reads.turns) != 0 || srv.reads.waiting.Load() != 0 {
		t.Fatalf("after the calls: %d turns held, %d waiting", len(srv.reads.turns), srv.reads.waiting.Load())
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
