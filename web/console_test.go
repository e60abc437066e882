package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/api"
)

const (
	defGreet = `
name: greet
search: { customer: c-7 }
steps:
  - { id: hello, task: echo, input: hello }
`
	defApproval = `
name: approval
steps:
  - { id: prepare, task: echo, input: ready }
  - id: approve
    wait: { signal: approve }
output: "${ steps.approve.output }"
`
	defFlaky = `
name: flaky
steps:
  - id: fetch
    task: flaky
    retry: { max_attempts: 2, initial_interval: 50ms }
  - { id: after, task: echo, input: done }
`
	defOrders = `
name: orders
triggers:
  - cron: "0 9 * * MON-FRI"
  - subject: orders.created
steps:
  - id: check
    switch:
      - if: "input.total > 100"
        then:
          - id: review
            wait: { signal: approve }
    default:
      - { id: auto, task: echo, input: auto }
  - id: lookups
    parallel:
      branches:
        stock:
          - { id: reserve, task: echo, input: stock }
        payment:
          - { id: charge, task: echo, input: pay }
  - id: ship
    foreach: "[1, 2]"
    do:
      - { id: label, task: echo, input: label }
  - { id: notify, task: echo, input: sent }
`
	defParent = `
name: parent
steps:
  - { id: bill, workflow: greet }
`
	defGreet2 = `
name: greet
search: { customer: c-7 }
steps:
  - { id: hello, task: echo, input: hello again }
`
	defDemo = `
name: fulfil
steps:
  - { id: prepare, task: echo, input: ready }
  - id: gather
    parallel:
      branches:
        stock:
          - id: reserve
            task: wobbly
            retry: { max_attempts: 3, initial_interval: 150ms, backoff_coefficient: 2 }
        pause:
          - { id: nap, sleep: 500ms }
  - id: pack
    foreach: "lists.range(4)"
    concurrency: 2
    do:
      - { id: label, task: slow, input: "${ item }" }
  - { id: notify, task: echo, input: sent }
`
	defGated = `
name: gated
steps:
  - id: charge
    task: gate
    retry: { max_attempts: 2, initial_interval: 20ms, exhausted: suspend }
`
	defSignup = `
name: signup
input_schema:
  type: object
  required: [email]
  properties:
    email: { type: string, description: where the welcome goes }
    seats: { type: integer, minimum: 1 }
    trial: { type: boolean }
steps:
  - { id: welcome, task: echo, input: "${ input }" }
output: "${ steps.welcome.output }"
`
)

// listed is the ids of the runs the list shows, in a JavaScript expression.
const listed = `[...document.querySelectorAll("table.runs tbody tr[data-id]")].map(r => r.dataset.id)`

// greetRuns holds when the list shows just the five runs of greet (one a
// child of parent-1).
const greetRuns = `(() => { const ids = ` + listed + `; return ids.length === 5 && ids.every(i => i.startsWith("greet-") || i.startsWith("parent-1-bill-")) })()`

// The console in a real browser against a real Weft: the runs list and its
// filters, a run's timeline and history, signal, cancel and retry, the
// definitions with their diagram and start form, and the triggers.
func TestConsole(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	for _, d := range []string{defGreet, defApproval, defFlaky, defOrders, defParent, defDemo, defGated} {
		w.mustPut(d)
	}
	w.mustPut(defSignup)
	for _, id := range []string{"greet-1", "greet-2", "greet-3"} {
		w.start("greet", id)
	}
	for _, id := range []string{"approve-1", "approve-2", "hold-1", "hold-2"} {
		w.start("approval", id)
	}
	w.start("flaky", "flaky-1")
	w.start("parent", "parent-1")
	w.start("fulfil", "fulfil-1")
	w.start("gated", "gated-1")
	w.waitStatus("parent-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	w.waitStatus("greet-3", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	w.waitStatus("flaky-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED)
	waitFor(t, "the waits to start", func() bool { return len(w.get("hold-2").Steps) == 2 })
	w.waitStatus("fulfil-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	w.waitStatus("gated-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED)
	w.waitIndexed("", 12)
	w.waitIndexed("flaky", 1)

	t.Run("list", func(t *testing.T) {
		p.t = t
		p.open("/")
		p.shows("table.runs", "greet-1")
		p.shows("table.runs", "flaky-1")
		p.until("newest first", listed+`[0] === "gated-1"`)
		p.shows(".counts", "failed 1")
		p.shows(".counts", "running 4")
		p.shows(".counts", "suspended 1")
		p.shows(".counts", "all 12")
		p.screenshot("runs")
		// The list refreshes by itself.
		w.start("greet", "greet-4")
		p.shows("table.runs", "greet-4")

		p.choose(`select[name=status]`, "failed")
		p.until("only the failed run", `location.search === "?status=failed" && `+listed+`.join() === "flaky-1"`)
		p.choose(`select[name=status]`, "")
		p.choose(`select[name=definition]`, "greet")
		p.until("only greet runs", greetRuns)

		p.open("/")
		p.typeInto(`input[name=id]`, "hold")
		p.click("button", "Find")
		p.until("runs whose id starts with hold", listed+`.sort().join() === "hold-1,hold-2"`)
		p.shows(".counts", "all 2")

		p.open("/")
		p.typeInto(`input[name=q]`, `search.customer == "c-7"`)
		p.click("button", "Find")
		p.until("runs the query picks", greetRuns)
		p.typeInto(`input[name=q]`, `search.customer ==`)
		p.click("button", "Find")
		p.shows(".error", "InvalidArgument")
	})

	t.Run("run", func(t *testing.T) {
		p.t = t
		p.open("/?definition=greet")
		// By keyboard: the run's link takes focus and Enter opens it.
		p.until("greet-2 listed", `document.querySelector('table.runs tr[data-id="greet-2"] a')`)
		p.run("open greet-2 with the keyboard", chromedp.Focus(chromedp.CSS(`table.runs tr[data-id="greet-2"] a`)), chromedp.KeyEvent(kb.Enter))
		p.until("the run page", `location.pathname === "/workflows/greet-2"`)
		p.shows("h1", "greet-2")
		p.shows("h1 .badge", "completed")
		p.shows(".facts", "greet revision 1")
		p.until("a completed bar on the timeline", `document.querySelector('.timeline .tl-row[data-path="hello"] .bar.b-completed')`)
		p.shows("table.history", "WorkflowStarted")
		p.shows("table.history", "StepCompleted")
		p.shows("table.history", "anonymous")
		p.shows("table.steps", "hello")
		p.shows("section", "customer")
		p.click(`table.history tr[data-type=StepCompleted] button`, "show")
		p.shows(`table.history tr[data-type=StepCompleted] pre`, `"output": "hello"`)
		// A deep link works on reload.
		p.open("/workflows/greet-2")
		p.shows("h1", "greet-2")
	})

	t.Run("signal", func(t *testing.T) {
		p.t = t
		p.open("/workflows/approve-1")
		p.shows("h1 .badge", "running")
		p.until("a waiting bar", `document.querySelector('.timeline .tl-row[data-path="approve"] .bar.b-waiting')`)
		p.click("button", "Signal…")
		p.typeInto(`form[aria-label=signal] input[name=name]`, "approve")
		p.typeInto(`form[aria-label=signal] textarea[name=payload]`, `{"by": "ann"}`)
		p.shows("form[aria-label=signal] .confirm", "Send this signal to approve-1?")
		p.click("button", "Send signal")
		p.shows("h1 .badge", "completed")
		p.shows("details.json", `"by": "ann"`)
		p.shows("table.history", "SignalReceived")
		w.waitStatus("approve-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)

		// A running run's page follows it live.
		p.open("/workflows/approve-2")
		p.shows("h1 .badge", "running")
		p.shows("table.history", "WaitStarted")
		if _, err := w.wf.SignalWorkflow(w.ctx(), connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: "approve-2", Name: "approve"})); err != nil {
			t.Fatal(err)
		}
		p.shows("h1 .badge", "completed")
		p.shows("table.history", "WorkflowCompleted")
	})

	t.Run("children", func(t *testing.T) {
		p.t = t
		p.open("/workflows/parent-1")
		p.shows("section[aria-label='Child runs']", "greet from step bill")
		p.click("section[aria-label='Child runs'] a", "parent-1-bill-")
		p.until("the child's page", `location.pathname.startsWith("/workflows/parent-1-bill-")`)
		p.shows(".facts", "Parent")
		p.click(".facts a", "parent-1")
		p.until("back on the parent", `location.pathname === "/workflows/parent-1"`)
		p.shows("h1", "parent-1")
	})

	t.Run("cancel", func(t *testing.T) {
		p.t = t
		p.open("/workflows/hold-1")
		p.shows("h1 .badge", "running")
		// Escape closes an action's form without acting.
		p.click("button", "Cancel…")
		p.until("the cancel form focused", `document.activeElement === document.querySelector("form[aria-label=cancel] input[name=reason]")`)
		p.run("Escape", chromedp.KeyEvent(kb.Escape))
		p.until("the form closed", `!document.querySelector("form[aria-label=cancel]")`)
		p.click("button", "Cancel…")
		p.typeInto(`form[aria-label=cancel] input[name=reason]`, "no longer needed")
		p.click("button", "Cancel run")
		p.shows("h1 .badge", "canceled")
		p.click(`table.history tr[data-type=CancelRequested] button`, "show")
		p.shows(`table.history tr[data-type=CancelRequested] pre`, "no longer needed")

		// A refused action shows the API's message: hold-2 closes behind
		// the page's back before the signal is sent.
		p.open("/workflows/hold-2")
		p.shows("h1 .badge", "running")
		p.click("button", "Signal…")
		if _, err := w.wf.CancelWorkflow(w.ctx(), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: "hold-2"})); err != nil {
			t.Fatal(err)
		}
		w.waitStatus("hold-2", weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED)
		p.typeInto(`form[aria-label=signal] input[name=name]`, "approve")
		p.click("button", "Send signal")
		p.shows(".actions .error", "FailedPrecondition")
	})

	t.Run("retry", func(t *testing.T) {
		p.t = t
		p.open("/workflows/flaky-1")
		p.shows("h1 .badge", "failed")
		p.shows(".run-error", "upstream_down")
		p.until("two failed attempts as two bars", `document.querySelectorAll('.timeline .tl-row[data-path="fetch"] .bar.b-failed').length === 2`)
		p.shows("table.steps", "upstream_down")
		w.broken.Store(false)
		p.click("button", "Retry…")
		p.typeInto(`form[aria-label=retry] input[name=reason]`, "upstream fixed")
		p.click("button", "Retry run")
		p.shows("h1 .badge", "completed")
		p.until("the retry's bar completed", `document.querySelector('.timeline .tl-row[data-path="fetch"] .bar.b-completed') && document.querySelector('.timeline .tl-row[data-path="after"] .bar.b-completed')`)
		p.shows("table.history", "WorkflowRetried")
	})

	t.Run("resume", func(t *testing.T) {
		p.t = t
		p.open("/workflows/gated-1")
		p.shows("h1 .badge", "suspended")
		p.shows("table.steps", "suspended")
		p.until("the suspension as a waiting bar after two failed ones", `document.querySelectorAll('.tl-row[data-path="charge"] .bar.b-failed').length === 2 && document.querySelector('.tl-row[data-path="charge"] .bar.b-waiting')`)
		w.gate.Store(true)
		p.click("button", "Resume…")
		p.typeInto(`form[aria-label=resume] input[name=reason]`, "card fixed")
		p.click("button", "Resume run")
		p.shows("h1 .badge", "completed")
		p.shows("table.history", "WorkflowResumed")
		p.until("the attempt after the resume completed", `document.querySelector('.tl-row[data-path="charge"] .bar.b-completed')`)
	})

	t.Run("timeline", func(t *testing.T) {
		p.t = t
		p.open("/workflows/fulfil-1")
		p.shows("h1 .badge", "completed")
		bars := func(path, state string) string {
			return fmt.Sprintf(`document.querySelectorAll('.timeline .tl-row[data-path=%q] .bar.b-%s').length`, path, state)
		}
		p.until("two failed attempts and a third that completed, as three bars", bars("reserve", "failed")+` === 2 && `+bars("reserve", "completed")+` === 1`)
		p.until("the backoff before each retry", `document.querySelectorAll('.timeline .tl-row[data-path="reserve"] rect.b-queued').length === 2`)
		p.until("the sleep as a waiting bar", bars("nap", "waiting")+` === 1`)
		p.until("a bar per iteration", `[0, 1, 2, 3].every(i => document.querySelector('.timeline .tl-row[data-path="pack[' + i + '].label"] .bar.b-completed'))`)
		p.shows("table.steps", "pack[3].label")
		p.screenshot("run")
	})

	t.Run("definitions", func(t *testing.T) {
		p.t = t
		w.mustPut(defGreet2)
		p.open("/definitions/greet")
		p.shows("h1", "revision 2")
		p.shows("pre.source", "hello again")
		p.choose("#revision", "1")
		p.until("revision 1's source", `location.search === "?revision=1" && !document.querySelector("pre.source").innerText.includes("hello again")`)
		p.shows("h1", "revision 1")

		p.open("/definitions")
		p.shows("table.defs", "orders")
		p.click("table.defs a", "orders")
		p.until("the definition page", `location.pathname === "/definitions/orders"`)
		p.shows("pre.source", "lookups")
		p.until("every step in the diagram", `["check", "review", "auto", "lookups", "reserve", "charge", "ship", "label", "notify"].every(id => document.querySelector('svg.diagram .d-step[data-id="' + id + '"]'))`)
		p.shows("svg.diagram", "payment")
		p.shows("svg.diagram", "when input.total > 100")
		p.run("scroll to the diagram", chromedpScroll("#diagram"))
		p.screenshot("definition")
	})

	t.Run("pause", func(t *testing.T) {
		p.t = t
		p.open("/definitions/orders")
		p.shows("pre.source", "lookups")
		p.click("button", "Pause…")
		p.typeInto(`form[aria-label=pause] input[name=reason]`, "downstream maintenance")
		p.click("button", "Pause definition")
		p.shows("p.paused", "downstream maintenance")
		p.open("/definitions")
		p.shows("table.defs tr[data-name=orders]", "paused")
		// The list's badge says since when, by whom and why, as the
		// definition's page does.
		p.until("the badge's note", `document.querySelector("table.defs tr[data-name=orders] .badge").title.includes("downstream maintenance")`)
		p.click("table.defs a", "orders")
		p.click("button", "Resume…")
		p.click("button", "Resume definition")
		p.until("the pause gone", `!document.querySelector("p.paused") && document.querySelector(".actions .ok")`)
	})

	t.Run("start", func(t *testing.T) {
		p.t = t
		p.open("/definitions/signup")
		p.shows(".start-form", "where the welcome goes")
		p.typeInto(`#f-email`, "ann@example.com")
		p.typeInto(`#f-seats`, "3")
		p.click(`.start-form label[for=f-trial]`, "trial")
		p.run("scroll to the form", chromedpScroll("#start"))
		p.screenshot("start")
		p.click(`.start-form button`, "Start run")
		p.until("the new run's page", `location.pathname.startsWith("/workflows/")`)
		p.shows("h1 .badge", "completed")
		p.shows("details.json", `"email": "ann@example.com"`)
		p.shows("details.json", `"seats": 3`)

		// What the schema refuses comes back with the failing path.
		p.open("/definitions/signup")
		p.click(".tabs button", "JSON")
		p.typeInto(`textarea[name=input]`, `{"email": "bob@example.com", "seats": "many"}`)
		p.click(`.start-form button`, "Start run")
		p.shows(".start-form .error", "InvalidArgument")
		p.shows(".start-form .error", "seats")
	})

	t.Run("triggers", func(t *testing.T) {
		p.t = t
		if err := w.node.NC.Publish("orders.created", []byte("{not json")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the webhook's failure to be recorded", func() bool {
			r, err := w.trig.ListTriggerFailures(w.ctx(), connect.NewRequest(&weftv1.ListTriggerFailuresRequest{}))
			return err == nil && len(r.Msg.Failures) > 0
		})
		p.open("/triggers")
		p.shows("#schedules tr[data-definition=orders]", "0 9 * * MON-FRI")
		p.until("a next fire time", `/\d{4}-\d\d-\d\d \d\d:\d\d/.test(document.querySelector("#schedules tr[data-definition=orders]").innerText)`)
		p.shows("#failures", "orders.created")
		p.click("#failures summary", "bytes")
		p.shows("#failures pre", "{not json")
	})

	// Last: it changes the tab's screen and color scheme.
	t.Run("phone, dark", func(t *testing.T) {
		p.t = t
		p.run("a phone's screen in the dark", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(3), chromedp.EmulateMobile),
			chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}})
				return err
			}))
		for _, path := range []string{"/", "/workflows/flaky-1", "/definitions/fulfil", "/triggers"} {
			p.open(path)
			p.until(path+" drawn", `document.querySelector(".page") && document.querySelector(".page").innerText.length > 40`)
			p.until(path+" without scrolling sideways", `document.documentElement.scrollWidth <= window.innerWidth + 1`)
		}
		p.until("dark colors", `(() => {
			const [r, g, b] = getComputedStyle(document.body).backgroundColor.match(/\d+/g).map(Number);
			return matchMedia("(prefers-color-scheme: dark)").matches && 0.2126*r + 0.7152*g + 0.0722*b < 80;
		})()`)
		p.screenshot("phone-dark")
	})
}

// With --auth-tokens the console asks for a token once, keeps it for the
// tab and sends it on every call.
func TestConsoleToken(t *testing.T) {
	b := newBrowser(t)
	const token = "weft_console-test-token"
	w := startWeft(t, api.Tokens{"ops": {Hash: api.HashToken(token), Role: api.RoleAdmin}}, token)
	w.mustPut(defGreet)
	w.start("greet", "greet-1")
	w.waitIndexed("greet", 1)
	p := &page{t: t, ctx: b, url: w.url}
	p.open("/")
	p.shows(".token-form", "needs a token")
	p.typeInto(`.token-form input[name=token]`, "wrong")
	p.click(".token-form button", "Use token")
	p.shows(".token-form", "not accepted")
	p.typeInto(`.token-form input[name=token]`, token)
	p.click(".token-form button", "Use token")
	p.shows("table.runs", "greet-1")
	p.until("no prompt", `!document.querySelector(".token-form")`)
	// The token is kept for the tab: another page needs no prompt.
	p.open("/workflows/greet-1")
	p.shows("table.history", "ops")
	p.until("no prompt", `!document.querySelector(".token-form")`)
}

// A read-only token shows the runs, and an action it may not take shows
// the API's refusal, naming the role it needs; the run is left as it was.
func TestConsoleReadToken(t *testing.T) {
	b := newBrowser(t)
	const admin, reader = "weft_console-admin-token", "weft_console-read-token"
	w := startWeft(t, api.Tokens{"ops": {Hash: api.HashToken(admin), Role: api.RoleAdmin}, "wall": {Hash: api.HashToken(reader), Role: api.RoleRead}}, admin)
	w.mustPut(defApproval)
	w.start("approval", "approval-1")
	w.waitIndexed("approval", 1)
	p := &page{t: t, ctx: b, url: w.url}
	p.open("/")
	p.shows(".token-form", "needs a token")
	p.typeInto(`.token-form input[name=token]`, reader)
	p.click(".token-form button", "Use token")
	p.shows("table.runs", "approval-1")
	p.open("/workflows/approval-1")
	p.shows("h1 .badge", "running")
	p.click("button", "Cancel…")
	p.typeInto(`form[aria-label=cancel] input[name=reason]`, "from the wall")
	p.click("button", "Cancel run")
	p.shows(".actions .error", "PermissionDenied")
	p.shows(".actions .error", "needs role run")
	if got := w.get("approval-1"); got.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("a read token's cancel left the run %v", got.Status)
	}
}

// The console's routes sit beside the API's: pages and assets open without
// a token, everything else as before.
func TestConsoleRoutes(t *testing.T) {
	const token = "weft_routes-test-token"
	w := startWeft(t, api.Tokens{"ops": {Hash: api.HashToken(token), Role: api.RoleAdmin}}, token)
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(w.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	var asset string
	for _, path := range []string{"/", "/workflows/abc", "/definitions", "/definitions/orders", "/triggers"} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<div id="app">`) || resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
			t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, resp.Header, body)
		}
		_, rest, _ := strings.Cut(body, `src="`)
		asset, _, _ = strings.Cut(rest, `"`)
	}
	resp, body := get(asset)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(body) < 1000 {
		t.Fatalf("GET %s: %d %v", asset, resp.StatusCode, resp.Header)
	}
	// Clients that take gzip get it.
	req0, _ := http.NewRequest("GET", w.url+asset, nil)
	req0.Header.Set("Accept-Encoding", "gzip")
	zresp, err := http.DefaultTransport.RoundTrip(req0)
	if err != nil {
		t.Fatal(err)
	}
	zbody, _ := io.ReadAll(zresp.Body)
	zresp.Body.Close()
	if zresp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(zresp.Header.Get("Content-Type"), "javascript") || len(zbody) >= len(body)/2 {
		t.Fatalf("GET %s with gzip: %v, %d bytes of %d", asset, zresp.Header, len(zbody), len(body))
	}
	// index.html is revalidated by its ETag.
	index, _ := get("/")
	req, _ := http.NewRequest("GET", w.url+"/definitions", nil)
	req.Header.Set("If-None-Match", index.Header.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/nope", "/workflows/a/b", "/console/assets/nope.js", "/weft.v1.WorkflowService/Nope"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 404 (or 401 for API paths)", path, resp.StatusCode)
		}
	}
	// The API still needs its token, and answers with it.
	call := func(auth string) int {
		req, _ := http.NewRequest("POST", w.url+"/weft.v1.DefinitionService/ListDefinitions", bytes.NewReader([]byte("{}")))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := call(""); c != http.StatusUnauthorized {
		t.Errorf("ListDefinitions without a token: %d", c)
	}
	if c := call(token); c != http.StatusOK {
		t.Errorf("ListDefinitions with the token: %d", c)
	}
	// Health checks and webhooks stay open; unknown API paths are no pages.
	resp2, err := http.Post(w.url+"/grpc.health.v1.Health/Check", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusOK {
		t.Errorf("health check: %d", resp2.StatusCode)
	}
	if resp, _ := get("/hooks/none"); resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
		t.Errorf("GET /hooks/none: %d", resp.StatusCode)
	}
}
