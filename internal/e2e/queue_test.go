package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// concurrencyMeter is an outside HTTP service that counts the calls in
// flight per key, the most at once, and the order calls of each key came
// in.
type concurrencyMeter struct {
	srv    *httptest.Server
	mu     sync.Mutex
	now    map[string]int
	most   map[string]int
	all    int // calls in flight, all keys
	mostAt int
	order  map[string][]int
	// hold, while open, holds the call of key A's run 0.
	hold chan struct{}
	// at holds when each call came, by key.
	at map[string][]time.Time
}

func newConcurrencyMeter(t *testing.T) *concurrencyMeter {
	m := &concurrencyMeter{now: map[string]int{}, most: map[string]int{}, order: map[string][]int{}, hold: make(chan struct{}), at: map[string][]time.Time{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		m.mu.Lock()
		m.now[key]++
		m.all++
		m.most[key] = max(m.most[key], m.now[key])
		m.mostAt = max(m.mostAt, m.all)
		m.order[key] = append(m.order[key], n)
		m.at[key] = append(m.at[key], time.Now())
		m.mu.Unlock()
		if key == "A" && n == 0 {
			<-m.hold
		}
		time.Sleep(40 * time.Millisecond) // the service's work
		m.mu.Lock()
		m.now[key]--
		m.all--
		m.mu.Unlock()
		fmt.Fprint(w, `{"ok": true}`)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

const chargeOneDef = `
name: charge-one
concurrency: { key: "${ input.customer }", limit: 1 }
steps:
  - id: call
    task: http
    input: { method: POST, url: "${ input.url + '?key=' + input.customer + '&n=' + string(input.n) }" }
output: "${ input.n }"
`

// Twenty runs of one key with limit 1 never overlap at the service they
// call, and run in their start order, while runs of another key go on
// beside them; a run beyond the limit is listed QUEUED until it begins,
// and a queued run can be canceled.
func TestConcurrencyKeyRunsOneAtATime(t *testing.T) {
	m := newConcurrencyMeter(t)
	e := newEnv(t, envOpts{})
	e.putDef(chargeOneDef)
	start := func(key string, n int) string {
		return e.start("charge-one", fmt.Sprintf("charge-%s-%d", key, n),
			fmt.Sprintf(`{"customer": %q, "n": %d, "url": %q}`, key, n, m.srv.URL))
	}
	// A's run 0 holds the slot (its call is held) while the others start
	// and queue.
	ids := []string{start("A", 0)}
	eventually(t, 10*time.Second, "run 0 of A to call", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.now["A"] == 1
	})
	for n := 1; n < 20; n++ {
		ids = append(ids, start("A", n))
		if n%4 == 0 {
			ids = append(ids, start("B", n))
		}
	}
	extra := start("A", 99)
	eventually(t, 10*time.Second, "a queued run listed as queued", func() bool {
		res, err := e.wf.ListWorkflows(ctx(t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Status: weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED}))
		return err == nil && slices.ContainsFunc(res.Msg.Workflows, func(w *weftv1.WorkflowSummary) bool { return w.Id == extra })
	})
	if w := e.get(extra); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED {
		t.Fatalf("run %s is %v, want QUEUED", extra, w.Status)
	}
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: extra, Reason: "not needed"})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "A's runs 1-19 queued", func() bool {
		res, err := e.wf.CountWorkflows(ctx(t), connect.NewRequest(&weftv1.CountWorkflowsRequest{IdPrefix: "charge-A-"}))
		if err != nil {
			return false
		}
		for _, c := range res.Msg.Counts {
			if c.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED {
				return c.Count == 19
			}
		}
		return false
	})
	close(m.hold)
	for _, id := range ids {
		if w := e.waitClosed(id, 60*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("run %s: %v %v", id, w.Status, w.Error)
		}
	}
	if w := e.waitClosed(extra, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("the canceled queued run: %v", w.Status)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.most["A"] != 1 || m.most["B"] != 1 {
		t.Errorf("most calls at once: A %d, B %d; want 1 each", m.most["A"], m.most["B"])
	}
	if m.mostAt < 2 {
		t.Errorf("at most %d calls at once over both keys: B never ran beside A", m.mostAt)
	}
	want := make([]int, 20)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(m.order["A"], want) {
		t.Errorf("A's calls came in order %v; want start order", m.order["A"])
	}
	e.healthy()
}
