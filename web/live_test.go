package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// gap is a reverse proxy on 127.0.0.1 in front of a Weft API that can go
// away as a restarting server does: down breaks the calls under way (a
// live watch among them) and answers every request with 503 until up.
type gap struct {
	srv  *httptest.Server
	down atomic.Bool
	// gone makes GetWorkflow answer NotFound while down, as for a run
	// deleted meanwhile.
	gone atomic.Bool
	// refused counts the GetWorkflow calls refused while down.
	refused atomic.Int64

	mu      sync.Mutex
	cancels map[*http.Request]context.CancelFunc
}

func newGap(t *testing.T, target string) *gap {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &gap{cancels: map[*http.Request]context.CancelFunc{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = nil
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			if strings.HasSuffix(r.URL.Path, "/GetWorkflow") {
				g.refused.Add(1)
				if g.gone.Load() {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusNotFound)
					_, _ = io.WriteString(w, `{"code":"not_found","message":"workflow \"live-2\" not found"}`)
					return
				}
			}
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		r = r.WithContext(ctx)
		g.mu.Lock()
		g.cancels[r] = cancel
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			delete(g.cancels, r)
			g.mu.Unlock()
		}()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

// stop makes the API go away: calls under way break off, new ones get 503.
func (g *gap) stop() {
	g.down.Store(true)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, cancel := range g.cancels {
		cancel()
	}
}

// A run's page left open while the API is away (longer than one pause
// before trying again) says that it is out of date, keeps trying, and
// follows the run again once the API is back: it once tried only once
// and then froze, showing the run as it was.
func TestConsoleLiveViewRecovers(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	g := newGap(t, w.url)
	p := &page{t: t, ctx: b, url: g.srv.URL}
	w.mustPut("name: waiter\nsteps:\n  - id: wait\n    wait: { signal: go }\n")
	w.start("waiter", "live-1")
	waitFor(t, "live-1 to wait", func() bool {
		for _, s := range w.get("live-1").Steps {
			if s.Path == "wait" && s.Status == weftv1.StepStatus_STEP_STATUS_WAITING {
				return true
			}
		}
		return false
	})
	p.open("/workflows/live-1")
	p.shows("table.steps tr[data-path='wait']", "waiting")

	g.stop()
	p.until("the break shown", `document.querySelector("p.error")`)
	// Away for two tries at least: the first is 3 s after the break.
	waitFor(t, "the page to try twice while the API is away", func() bool { return g.refused.Load() >= 2 })
	p.shows("p.error", "Live updates stopped: what this page shows may be out of date")
	g.down.Store(false)

	if _, err := w.wf.SignalWorkflow(w.ctx(), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "live-1", Name: "go"})); err != nil {
		t.Fatalf("SignalWorkflow: %v", err)
	}
	p.shows("h1.run-id .badge", "completed")
	p.until("the stale note gone", `!document.querySelector("p.error")`)

	// A run gone meanwhile (its read answers NotFound) ends the following:
	// the page says so and does not try again.
	w.start("waiter", "live-2")
	p.open("/workflows/live-2")
	p.shows("table.steps tr[data-path='wait']", "waiting")
	g.gone.Store(true)
	g.stop()
	p.shows("p.error", `NotFound: workflow "live-2" not found`)
	p.until("no promise to try again", `!document.querySelector("p.error").innerText.includes("trying again")`)
}
