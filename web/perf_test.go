package console_test

import (
	"context"
	"os"
	"sort"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// longTasks records the longest main-thread task of each page load in
// window.__weftLongest (ms), through the Long Tasks API.
const longTasks = `window.__weftLongest = 0;
new PerformanceObserver(l => { for (const e of l.getEntries()) window.__weftLongest = Math.max(window.__weftLongest, e.duration) }).observe({type: "longtask", buffered: true});`

const defBig = `
name: big
steps:
  - id: items
    foreach: "lists.range(input.n)"
    concurrency: 50
    do:
      - { id: call, task: echo, input: "${ item }" }
`

// The console at scale (make console-perf; numbers in docs/console.md):
// the list's first page with 50,000 runs in the index, and the page of a
// run with 3,000 steps.
func TestConsolePerf(t *testing.T) {
	if os.Getenv("WEFT_CONSOLE_PERF") != "1" {
		t.Skip("set WEFT_CONSOLE_PERF=1 (make console-perf) to measure the console")
	}
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	p.run("observe long tasks", chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: longTasks})
		return err
	}))

	// 50,000 runs, written straight into the listing index, which is all
	// that ListWorkflows reads.
	const runs = 50_000
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := seedIndex(ctx, w.node.Store, "bulk", runs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the newest seeded run first in the list", func() bool {
		r, err := w.wf.ListWorkflows(w.ctx(), connect.NewRequest(&weftv1.ListWorkflowsRequest{PageSize: 1}))
		return err == nil && len(r.Msg.Workflows) == 1 && r.Msg.Workflows[0].Id == "seed-049999"
	})
	t.Logf("seeded %d runs in %s", runs, time.Since(start).Round(time.Millisecond))
	var shown, longest []float64
	for range 5 {
		p.open("/")
		p.until("the first page", `document.querySelectorAll("table.runs tbody tr[data-id]").length === 50 && window.__weftListShown`)
		shown = append(shown, p.evalFloat(`window.__weftListShown`))
		longest = append(longest, p.evalFloat(`window.__weftLongest`))
	}
	t.Logf("list of %d runs, first page (50 rows) shown after page load start: median %.0f ms, max %.0f ms; longest task median %.0f ms", runs, median(shown), maxOf(shown), median(longest))
	if m := median(shown); m > 1000 {
		t.Errorf("the list's first page took %.0f ms, want under 1 s", m)
	}
	p.choose(`select[name=status]`, "failed")
	p.until("failed runs", `[...document.querySelectorAll("table.runs tbody tr[data-id]")].length === 50`)

	// A run with 3,000 steps.
	const steps = 3000
	w.mustPut(defBig)
	in, _ := structpb.NewValue(map[string]any{"n": steps})
	start = time.Now()
	if _, err := w.wf.StartWorkflow(w.ctx(), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "big", WorkflowId: "big-1", Input: in})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for w.get("big-1").Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		if time.Now().After(deadline) {
			t.Fatal("big-1 still running")
		}
		time.Sleep(200 * time.Millisecond)
	}
	wf := w.get("big-1")
	t.Logf("ran big-1: %d steps, %d events in %s", len(wf.Steps), wf.HistoryLength, time.Since(start).Round(time.Millisecond))
	var render, longestRun, build, scroll []float64
	for range 3 {
		p.open("/workflows/big-1")
		p.until("the timeline", `document.querySelector('.timeline[data-rows="3001"] .bar') && window.__weftTimelineShown`)
		render = append(render, p.evalFloat(`window.__weftTimelineShown`))
		build = append(build, p.evalFloat(`window.__weftTimelineBuildMs`))
		// Scrolling to the middle and the end of the timeline draws the
		// rows in view in the next frame.
		scroll = append(scroll, p.evalFloat(`new Promise(r => { const el = document.querySelector(".tl-scroll"); const t0 = performance.now(); el.scrollTop = el.scrollHeight / 2; requestAnimationFrame(() => { el.scrollTop = el.scrollHeight; requestAnimationFrame(() => r(performance.now() - t0)) }) })`))
		p.until("the last rows drawn", `document.querySelector('.tl-row[data-path="items[2999].call"]')`)
		longestRun = append(longestRun, p.evalFloat(`window.__weftLongest`))
	}
	t.Logf("run of %d steps (%d events): timeline shown after page load start: median %.0f ms; timeline model built in median %.0f ms; longest task median %.0f ms, max %.0f ms; two scroll frames %.0f ms",
		len(wf.Steps), wf.HistoryLength, median(render), median(build), median(longestRun), maxOf(longestRun), median(scroll))
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func maxOf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
