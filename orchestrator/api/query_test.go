package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
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

// indexedAPI serves the API over a store whose index holds sums (written
// as the orchestrators write it) and returns a client.
func indexedAPI(tb testing.TB, sums []eventstore.Summary) weftv1connect.WorkflowServiceClient {
	tb.Helper()
	ns := natstest.Start(tb)
	store, err := eventstore.Open(context.Background(), ns.Connect(tb), eventstore.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	for from := 0; from < len(sums); from += 1000 {
		for i, err := range store.PutSummaries(context.Background(), sums[from:min(from+1000, len(sums))]) {
			if err != nil {
				tb.Fatalf("index %s: %v", sums[from+i].ID, err)
			}
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
	return weftv1connect.NewWorkflowServiceClient(http.DefaultClient, "http://"+ln.Addr().String())
}

var day0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// orders returns n index entries: order-0 is the oldest, a run an hour;
// every third is closed, customers cycle c-0..c-6, amounts i*10.
func orders(n int) []eventstore.Summary {
	sums := make([]eventstore.Summary, n)
	for i := range sums {
		s := eventstore.Summary{ID: fmt.Sprintf("order-%d", i), Definition: "order", Revision: 1, Status: "RUNNING",
			Created: day0.Add(time.Duration(i) * time.Hour), Seq: uint64(i + 1), Identity: "alice",
			Search: map[string]any{"customer": fmt.Sprintf("c-%d", i%7), "amount": int64(i * 10), "urgent": i%5 == 0}}
		if i%3 == 0 {
			s.Status, s.Closed = "COMPLETED", s.Created.Add(30*time.Minute)
		}
		if i%4 == 0 {
			s.Identity = "bob"
		}
		sums[i] = s
	}
	return sums
}

// list pages through a query's results (page size 3) and returns the ids.
func list(t *testing.T, c weftv1connect.WorkflowServiceClient, query string) ([]string, error) {
	t.Helper()
	var ids []string
	tok := ""
	for range 1000 {
		resp, err := c.ListWorkflows(context.Background(), connect.NewRequest(&weftv1.ListWorkflowsRequest{Query: query, PageSize: 3, PageToken: tok}))
		if err != nil {
			return nil, err
		}
		for _, w := range resp.Msg.Workflows {
			ids = append(ids, w.Id)
		}
		if tok = resp.Msg.NextPageToken; tok == "" {
			return ids, nil
		}
	}
	t.Fatal("paging never ended")
	return nil, nil
}

func TestListQueries(t *testing.T) {
	c := indexedAPI(t, orders(40))
	want := func(keep func(i int) bool) string {
		var ids []string
		for i := 39; i >= 0; i-- { // newest first
			if keep(i) {
				ids = append(ids, "order-"+strconv.Itoa(i))
			}
		}
		return strings.Join(ids, " ")
	}
	for _, tc := range []struct {
		query string
		keep  func(i int) bool
	}{
		{`search.customer == "c-3"`, func(i int) bool { return i%7 == 3 }},
		{`search.customer == "c-3" && status == "running"`, func(i int) bool { return i%7 == 3 && i%3 != 0 }},
		{`search.amount > 200 && search.urgent`, func(i int) bool { return i*10 > 200 && i%5 == 0 }},
		{`created >= timestamp("2026-12-01T10:00:00Z") && created < timestamp("2026-12-01T20:00:00Z")`, func(i int) bool { return i >= 10 && i < 20 }},
		{`closed > timestamp("2026-12-02T00:00:00Z")`, func(i int) bool { return i%3 == 0 && i >= 24 }},
		{`identity == "bob" && definition == "order" && revision == 1`, func(i int) bool { return i%4 == 0 }},
		{`has(search.missing)`, func(int) bool { return false }},
		{`search.missing == 1`, func(int) bool { return false }}, // cannot be evaluated: not listed
		{`true`, func(int) bool { return true }},
	} {
		got, err := list(t, c, tc.query)
		if err != nil {
			t.Fatalf("query %s: %v", tc.query, err)
		}
		if g, w := strings.Join(got, " "), want(tc.keep); g != w {
			t.Errorf("query %s listed\n%s\nwant\n%s", tc.query, g, w)
		}
	}
	for _, bad := range []struct{ query, says string }{
		{`search.customer ==`, "query"},
		{`nosuch == 1`, "nosuch"},
		{`revision + 1`, "true or false"},
		{strings.Repeat("x", 5000), "limit"},
	} {
		_, err := c.ListWorkflows(context.Background(), connect.NewRequest(&weftv1.ListWorkflowsRequest{Query: bad.query}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("query %.40q: %v; want InvalidArgument saying %q", bad.query, err, bad.says)
		}
	}
}

// BenchmarkListQuery times one page of a selective query (one run in
// 7,000 matches) over an index of WEFT_LIST_N runs (default 10,000):
//
//	WEFT_LIST_N=100000 go test -run '^$' -bench BenchmarkListQuery -benchtime 20x ./orchestrator/api
func BenchmarkListQuery(b *testing.B) {
	n := 10000
	if v := os.Getenv("WEFT_LIST_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	sums := orders(n)
	for i := range sums {
		sums[i].Search["customer"] = fmt.Sprintf("c-%d", i%7000)
	}
	c := indexedAPI(b, sums)
	ctx := context.Background()
	req := &weftv1.ListWorkflowsRequest{Query: `search.customer == "c-7" && status == "running"`, PageSize: 100}
	// The first call makes the API's copy of the index.
	if _, err := c.ListWorkflows(ctx, connect.NewRequest(req)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		resp, err := c.ListWorkflows(ctx, connect.NewRequest(req))
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Msg.Workflows) == 0 {
			b.Fatal("nothing matched")
		}
	}
}

// counts renders a CountWorkflows answer as "total: STATUS=n ...".
func counts(t *testing.T, c weftv1connect.WorkflowServiceClient, def, prefix string) string {
	t.Helper()
	resp, err := c.CountWorkflows(context.Background(), connect.NewRequest(&weftv1.CountWorkflowsRequest{Definition: def, IdPrefix: prefix}))
	if err != nil {
		t.Fatalf("CountWorkflows(%q, %q): %v", def, prefix, err)
	}
	out := fmt.Sprint(resp.Msg.Total, ":")
	for _, n := range resp.Msg.Counts {
		out += fmt.Sprintf(" %s=%d", strings.TrimPrefix(n.Status.String(), "WORKFLOW_STATUS_"), n.Count)
	}
	return out
}

// CountWorkflows counts runs by status in the order of WorkflowStatus,
// of a definition or all, and of an id prefix; ListWorkflows takes the
// prefix with its other filters and paging.
func TestCountWorkflowsAndIDPrefix(t *testing.T) {
	sums := orders(40) // 14 COMPLETED, 26 RUNNING
	for i := range 5 {
		sums = append(sums, eventstore.Summary{ID: fmt.Sprintf("refund-%d", i), Definition: "refund", Revision: 1,
			Status: []string{"FAILED", "CANCELED", "RUNNING"}[i%3], Created: day0.Add(time.Duration(i) * time.Minute), Seq: 1})
	}
	c := indexedAPI(t, sums)
	for _, tc := range []struct{ def, prefix, want string }{
		{"", "", "45: RUNNING=27 COMPLETED=14 FAILED=2 CANCELED=2"},
		{"order", "", "40: RUNNING=26 COMPLETED=14"},
		{"refund", "", "5: RUNNING=1 FAILED=2 CANCELED=2"},
		{"nosuch", "", "0:"},
		{"", "order-1", "11: RUNNING=8 COMPLETED=3"}, // order-1, order-10..19
		{"refund", "order-", "0:"},
		{"", "refund-", "5: RUNNING=1 FAILED=2 CANCELED=2"},
	} {
		if got := counts(t, c, tc.def, tc.prefix); got != tc.want {
			t.Errorf("counts of %q with prefix %q: %s, want %s", tc.def, tc.prefix, got, tc.want)
		}
	}
	var ids []string
	tok := ""
	for {
		resp, err := c.ListWorkflows(context.Background(), connect.NewRequest(&weftv1.ListWorkflowsRequest{
			IdPrefix: "order-1", Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, PageSize: 2, PageToken: tok}))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range resp.Msg.Workflows {
			ids = append(ids, w.Id)
		}
		if tok = resp.Msg.NextPageToken; tok == "" {
			break
		}
	}
	if got, want := strings.Join(ids, " "), "order-19 order-17 order-16 order-14 order-13 order-11 order-10 order-1"; got != want {
		t.Fatalf("running runs with prefix order-1 listed %s, want %s", got, want)
	}
}

// BenchmarkCountWorkflows times CountWorkflows over an index of
// WEFT_LIST_N runs (default 50,000): of one definition from the counts
// kept, and of an id prefix by a look at every run.
func BenchmarkCountWorkflows(b *testing.B) {
	n := 50000
	if v := os.Getenv("WEFT_LIST_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	c := indexedAPI(b, orders(n))
	ctx := context.Background()
	for _, bc := range []struct{ name, prefix string }{{"definition", ""}, {"prefix", "order-4"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := &weftv1.CountWorkflowsRequest{Definition: "order", IdPrefix: bc.prefix}
			for b.Loop() {
				resp, err := c.CountWorkflows(ctx, connect.NewRequest(req))
				if err != nil {
					b.Fatal(err)
				}
				if resp.Msg.Total == 0 {
					b.Fatal("nothing counted")
				}
			}
		})
	}
}
