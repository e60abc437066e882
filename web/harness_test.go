package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
)

// chromiumPath is Debian's chromium, which the browser tests drive.
const chromiumPath = "/usr/bin/chromium"

// weft is a Weft node running in this process against an embedded NATS,
// with its API (and so the console) on 127.0.0.1.
type weft struct {
	t    *testing.T
	node *node.Node
	url  string
	wf   weftv1connect.WorkflowServiceClient
	defs weftv1connect.DefinitionServiceClient
	trig weftv1connect.TriggerServiceClient
	// broken makes the "flaky" task fail while it is true.
	broken atomic.Bool
	// gate lets the "gate" task succeed once it is true.
	gate atomic.Bool
}

func startWeft(t *testing.T, tokens api.Tokens, token string) *weft {
	t.Helper()
	ns := natstest.Start(t)
	w := &weft{t: t}
	w.broken.Store(true)
	handlers := map[string]executor.Handler{
		"flaky": func(ctx context.Context, task *executor.Task) (any, error) {
			if w.broken.Load() {
				return nil, executor.NewError("upstream_down", "the upstream answered 503 (attempt %d)", task.Attempt)
			}
			return map[string]any{"ok": true}, nil
		},
		"gate": func(ctx context.Context, task *executor.Task) (any, error) {
			if !w.gate.Load() {
				return nil, executor.NewError("card_declined", "the card was declined (attempt %d)", task.Attempt)
			}
			return "charged", nil
		},
		// wobbly fails its first two attempts.
		"wobbly": func(ctx context.Context, task *executor.Task) (any, error) {
			if task.Attempt < 3 {
				return nil, executor.NewError("busy", "try again later (attempt %d)", task.Attempt)
			}
			return "reserved", nil
		},
		// slow takes a moment, so that its bars have a length.
		"slow": func(ctx context.Context, task *executor.Task) (any, error) {
			select {
			case <-time.After(120 * time.Millisecond):
				return task.Input, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}
	n, err := node.Start(context.Background(), node.Config{
		NATSURL:      ns.URL(),
		Logger:       slog.New(slog.DiscardHandler),
		Orchestrator: &orchestrator.Config{},
		Executor:     &executor.Config{},
		Builtins:     true,
		Handlers:     handlers,
		API:          &api.Config{Tokens: tokens},
		APIAddr:      "127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	w.node, w.url = n, n.APIURL
	hc := &http.Client{Transport: bearer{token}}
	w.wf = weftv1connect.NewWorkflowServiceClient(hc, w.url)
	w.defs = weftv1connect.NewDefinitionServiceClient(hc, w.url)
	w.trig = weftv1connect.NewTriggerServiceClient(hc, w.url)
	return w
}

// bearer sends a token on every request, when it has one.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (w *weft) ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	w.t.Cleanup(cancel)
	return c
}

func (w *weft) putDef(src string) error {
	_, err := w.defs.PutDefinition(w.ctx(), connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
	return err
}

func (w *weft) mustPut(src string) {
	w.t.Helper()
	if err := w.putDef(src); err != nil {
		w.t.Fatalf("PutDefinition: %v\n%s", err, src)
	}
}

func (w *weft) start(def, id string) {
	w.t.Helper()
	if _, err := w.wf.StartWorkflow(w.ctx(), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: def, WorkflowId: id})); err != nil {
		w.t.Fatalf("StartWorkflow %s: %v", def, err)
	}
}

func (w *weft) get(id string) *weftv1.Workflow {
	w.t.Helper()
	r, err := w.wf.GetWorkflow(w.ctx(), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
	if err != nil {
		w.t.Fatalf("GetWorkflow %s: %v", id, err)
	}
	return r.Msg.Workflow
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStatus waits until run id has status s.
func (w *weft) waitStatus(id string, s weftv1.WorkflowStatus) {
	w.t.Helper()
	waitFor(w.t, id+" to be "+s.String(), func() bool { return w.get(id).Status == s })
}

// waitIndexed waits until the listing shows n runs of def.
func (w *weft) waitIndexed(def string, n int) {
	w.t.Helper()
	waitFor(w.t, fmt.Sprintf("%d runs of %s in the listing", n, def), func() bool {
		r, err := w.wf.ListWorkflows(w.ctx(), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: def}))
		return err == nil && len(r.Msg.Workflows) >= n
	})
}

// newBrowser starts a headless chromium for t, or skips t when there is
// none (and fails it instead with WEFT_REQUIRE_BROWSER=1).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("WEFT_REQUIRE_BROWSER") == "1" {
			t.Fatalf("the browser tests need %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("browser test skipped: no %s (apt-get install chromium; WEFT_REQUIRE_BROWSER=1 makes this a failure)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelB()
		cancelA()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	// An exception the console leaves uncaught (a rejected promise too)
	// fails the test.
	var mu sync.Mutex
	var uncaught []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok {
			msg := e.ExceptionDetails.Text
			if x := e.ExceptionDetails.Exception; x != nil && x.Description != "" {
				msg += " " + x.Description
			}
			mu.Lock()
			uncaught = append(uncaught, msg)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, msg := range uncaught {
			t.Errorf("uncaught in the page: %s", msg)
		}
	})
	return bctx
}

// page drives one browser tab for a test.
type page struct {
	t   *testing.T
	ctx context.Context
	url string
}

func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v\npage text:\n%s", what, err, p.text())
	}
}

// text is the page's visible text, for failure messages.
func (p *page) text() string {
	ctx, cancel := context.WithTimeout(p.ctx, 3*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

func (p *page) open(path string) {
	p.t.Helper()
	p.run("open "+path, chromedp.Navigate(p.url+path))
}

// until polls the JavaScript expression js until it is true, for up to 20 s.
func (p *page) until(what, js string) {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out waiting for %s (%s): %v\npage text:\n%s", what, js, err, p.text())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// shows waits until the element sel exists and its text holds want.
func (p *page) shows(sel, want string) {
	p.t.Helper()
	p.until(fmt.Sprintf("%s to show %q", sel, want), fmt.Sprintf(`[...document.querySelectorAll(%q)].some(e => (e.innerText ?? e.textContent).includes(%q))`, sel, want))
}

// evalFloat runs js and returns its number (a promise's, once settled).
func (p *page) evalFloat(js string) float64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// click clicks the first element sel whose text holds text.
func (p *page) click(sel, text string) {
	p.t.Helper()
	p.until(fmt.Sprintf("a %s with %q to click", sel, text), fmt.Sprintf(`(() => { const e = [...document.querySelectorAll(%q)].find(e => e.innerText.includes(%q) && !e.disabled); if (e) e.click(); return !!e })()`, sel, text))
}

// choose sets the select sel to value as a user would.
func (p *page) choose(sel, value string) {
	p.t.Helper()
	p.until(fmt.Sprintf("select %s to take %q", sel, value), fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e || ![...e.options].some(o => o.value === %q)) return false; e.value = %q; e.dispatchEvent(new Event("change", {bubbles: true})); return true })()`, sel, value, value))
}

// typeInto focuses sel, clears it and types text.
func (p *page) typeInto(sel, text string) {
	p.t.Helper()
	p.until(sel+" to clear", fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.focus(); e.select(); e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})); return true })()`, sel))
	p.run("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// screenshot writes the viewport into docs/console/name.png with
// WEFT_SCREENSHOTS=1.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv("WEFT_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// seedIndex writes n index entries of definition def straight into the
// listing index (the list reads only the index), newest last.
func seedIndex(ctx context.Context, store *eventstore.Store, def string, n int) error {
	base := time.Now().Add(-time.Duration(n) * time.Second)
	statuses := []string{"completed", "completed", "completed", "failed", "running", "canceled"}
	const batch = 2000
	for i := 0; i < n; i += batch {
		var sums []eventstore.Summary
		for j := i; j < min(n, i+batch); j++ {
			created := base.Add(time.Duration(j) * time.Second)
			s := eventstore.Summary{ID: fmt.Sprintf("seed-%06d", j), Definition: def, Revision: 1, Status: statuses[j%len(statuses)], Created: created, Seq: 3,
				Identity: "anonymous", Search: map[string]any{"customer": fmt.Sprintf("c-%d", j%97)}}
			if s.Status != "running" {
				s.Closed = created.Add(1500 * time.Millisecond)
			}
			sums = append(sums, s)
		}
		for _, err := range store.PutSummaries(ctx, sums) {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// chromedpScroll scrolls the element sel to the top of the view.
func chromedpScroll(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { document.querySelector(%q)?.scrollIntoView({block: "start"}); window.scrollBy(0, -56); return true })()`, sel))(ctx, t)
		return err
	})
}
