package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/api"
)

// A query that exceeds the cost limit (10,000) for a run is refused with
// InvalidArgument. (Each run's evaluation failed and counted as "does not
// match": the call listed nothing and said nothing, and over a big index
// gave empty pages with a next_page_token, 50,000 runs looked at each.)
func TestAQueryOverItsCostIsInvalidArgument(t *testing.T) {
	c := indexedAPI(t, orders(10))
	var xs []string
	for i := range 100 {
		xs = append(xs, fmt.Sprint(i))
	}
	l := "[" + strings.Join(xs, ",") + "]"
	for _, q := range []string{
		l + `.all(x, ` + l + `.all(y, y >= 0))`, // 10,000 iterations: true for every run, were it not cut off
		`[1,2,3].map(x, [1,2,3].map(y, [1,2,3].map(z, [1,2,3].map(w, [1,2,3].map(v, [1,2,3].map(u, x+y+z+w+v+u)))))).size() > 0`,
	} {
		resp, err := c.ListWorkflows(context.Background(), connect.NewRequest(&weftv1.ListWorkflowsRequest{Query: q}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			n := -1
			if resp != nil {
				n = len(resp.Msg.Workflows)
			}
			t.Errorf("query %s: %d runs, err %v; want InvalidArgument", q, n, err)
		}
	}
}

// indexedAPIStore is indexedAPI that also returns the store.
func indexedAPIStore(tb testing.TB, sums []eventstore.Summary) (weftv1connect.WorkflowServiceClient, *eventstore.Store) {
	tb.Helper()
	ns := natstest.Start(tb)
	store, err := eventstore.Open(context.Background(), ns.Connect(tb), eventstore.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	for i, err := range store.PutSummaries(context.Background(), sums) {
		if err != nil {
			tb.Fatalf("index %s: %v", sums[i].ID, err)
		}
	}
	srv, err := api.New(store, api.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := api.NewHTTPServer("", srv.Handler())
	go func() { _ = hs.Serve(ln) }()
	tb.Cleanup(func() { _ = hs.Close() })
	return weftv1connect.NewWorkflowServiceClient(http.DefaultClient, "http://"+ln.Addr().String()), store
}

// The cost limit (10,000) does not bound a query's time: a regex the cost
// model prices by its source length compiles to a program whose match
// takes milliseconds on a 256-byte search string (ten of them, ~50 ms a
// run). A page ends within its caller's deadline (and scanTime) with a
// token to go on, and is looked at without the listing's lock: the
// listing's updates and other reads (here CountWorkflows) go on. (It once
// held the lock for up to 50,000 runs, and went on after its caller left.)
func TestASlowQueryEndsItsPageAndBlocksNoOtherRead(t *testing.T) {
	const n = 100
	sums := orders(n)
	for i := range sums {
		sums[i].Search["note"] = strings.Repeat("ab", 128) // 256 bytes, the limit
	}
	c, store := indexedAPIStore(t, sums)
	ctx := context.Background()
	if _, err := c.CountWorkflows(ctx, connect.NewRequest(&weftv1.CountWorkflowsRequest{})); err != nil {
		t.Fatal(err) // the API's copy of the index is made
	}
	var parts []string
	for i := range 10 {
		parts = append(parts, fmt.Sprintf(`search.note.matches("(.?){%d}x")`, 1000-i))
	}
	q := strings.Join(parts, " || ")
	t.Logf("query of %d bytes", len(q))
	done := make(chan error, 1)
	start := time.Now()
	// A page ends by scanTime (2 s), and one run's evaluation after it
	// (slow under -race), well within its caller's 10 s.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go func() {
		_, err := c.ListWorkflows(lctx, connect.NewRequest(&weftv1.ListWorkflowsRequest{Query: q, PageSize: 10}))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	// An entry written meanwhile: the listing's watcher waits for the lock.
	extra := eventstore.Summary{ID: "extra", Definition: "order", Status: "RUNNING", Created: time.Now(), Seq: 1e6}
	if errs := store.PutSummaries(ctx, []eventstore.Summary{extra}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	time.Sleep(100 * time.Millisecond)
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	_, cerr := c.CountWorkflows(cctx, connect.NewRequest(&weftv1.CountWorkflowsRequest{}))
	ccancel()
	err := <-done
	t.Logf("ListWorkflows over %d runs: %v after %v", n, err, time.Since(start))
	if cerr != nil {
		t.Errorf("CountWorkflows while one query runs: %v", cerr)
	}
	if err != nil {
		t.Errorf("one page of a query over %d runs did not end with a page within its caller's deadline: %v", n, err)
	}
}
