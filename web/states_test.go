package console_test

import (
	"strings"
	"testing"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

const defLongFail = `
name: longfail
steps:
  - id: schedule_the_follow_up_call
    fail:
      type: refused
      message: "` + "the calendar service refused the follow-up call because the slot it was asked for lies outside the customer's opening hours, and no other slot was offered in its answer" + `"
`

const defKeys = `
name: keys
steps:
  - id: e
    task: echo
    input: "${ {'h': 1, 'c': 2, 'a': 3, 'f': 4, 'b': {'z': 1, 'y': 2, 'x': 3}, 'g': 6, 'e': 7, 'd': 8} }"
`

// What a run's page says of a run in each state, read as a user would:
// a canceled run's bars end with the cancel, who canceled it and why; what
// a waiting step waits for; a failed run's error without its step twice;
// why a run is suspended; an earlier attempt's error of a completed step
// apart from a failure; step paths on one line. And the list with a
// refused query shows no runs.
func TestConsoleRunStates(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	for _, d := range []string{defApproval, defFlaky, defGated, defDemo, defLongFail, defKeys} {
		w.mustPut(d)
	}
	for _, id := range []string{"wait-1", "cancel-1"} {
		w.start("approval", id)
	}
	w.start("flaky", "flaky-1")
	w.start("gated", "gated-1")
	w.start("fulfil", "fulfil-1")
	w.start("longfail", "longfail-1")
	w.start("keys", "keys-1")
	waitFor(t, "the waits to start", func() bool { return len(w.get("cancel-1").Steps) == 2 && len(w.get("wait-1").Steps) == 2 })
	if _, err := w.wf.CancelWorkflow(w.ctx(), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: "cancel-1", Reason: "duplicate signup"})); err != nil {
		t.Fatal(err)
	}
	w.waitStatus("cancel-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED)
	w.waitStatus("flaky-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED)
	w.waitStatus("gated-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED)
	w.waitStatus("fulfil-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	w.waitStatus("longfail-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED)
	w.waitStatus("keys-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	w.waitIndexed("", 7)

	// A value's keys read in order, the same on every load: a map's come
	// from the API in any order.
	t.Run("keys in order", func(t *testing.T) {
		p.t = t
		p.open("/workflows/keys-1")
		p.until("the output's keys in order", `(() => {
			const d = [...document.querySelectorAll("details.json")].find((x) => x.querySelector("summary").textContent.startsWith("Output"));
			const keys = d ? [...d.querySelector("pre").textContent.matchAll(/"(\w)":/g)].map((m) => m[1]).join("") : "";
			return keys === "abxyzcdefgh";
		})()`)
	})

	t.Run("canceled", func(t *testing.T) {
		p.t = t
		p.open("/workflows/cancel-1")
		p.shows("h1 .badge", "canceled")
		// The wait the cancel cut short ends with the run, grey: it is not
		// drawn as still waiting.
		p.until("the canceled wait's bar", `document.querySelector('.tl-row[data-path="approve"] .bar.b-canceled') && !document.querySelector('.tl-row[data-path="approve"] .bar.b-waiting')`)
		p.until("the bar's title says how it ended", `!document.querySelector('.tl-row[data-path="approve"] .bar title').textContent.includes("open")`)
		p.shows(".run-note", "Canceled by anonymous")
		p.shows(".run-note", "duplicate signup")
	})

	t.Run("waiting", func(t *testing.T) {
		p.t = t
		p.open("/workflows/wait-1")
		p.shows("h1 .badge", "running")
		p.shows(`table.steps tr[data-path="approve"]`, "for signal approve")
		p.click("button", "Signal…")
		p.shows("form[aria-label=signal] label", "the run waits for approve")
		p.until("the awaited signal's name filled in", `document.querySelector("form[aria-label=signal] input[name=name]").value === "approve"`)
		p.click("button", "Send signal")
		p.shows("h1 .badge", "completed")
	})

	t.Run("failed", func(t *testing.T) {
		p.t = t
		p.open("/workflows/flaky-1")
		p.shows(".run-error", "upstream_down at fetch: the upstream answered 503")
		if s := p.text(); strings.Contains(s, "step fetch:") {
			t.Errorf("the error names its step twice:\n%s", s)
		}
	})

	t.Run("suspended", func(t *testing.T) {
		p.t = t
		p.open("/workflows/gated-1")
		p.shows("h1 .badge", "suspended")
		p.shows(".run-note", "Suspended at charge after 2 failed attempts: card_declined: the card was declined (attempt 2)")
		p.shows(".run-note", "Resume…")
	})

	t.Run("retried step", func(t *testing.T) {
		p.t = t
		p.open("/workflows/fulfil-1")
		p.shows(`table.steps tr[data-path="reserve"] td.err-cell`, "busy")
		p.until("a completed step's earlier error not drawn as a failure", `(() => {
			const c = document.querySelector('table.steps tr[data-path="reserve"] td.err-cell');
			const f = document.createElement("td");
			f.className = "err-cell";
			c.parentNode.appendChild(f);
			const red = getComputedStyle(f).color;
			f.remove();
			return getComputedStyle(c).color !== red;
		})()`)
	})

	t.Run("step paths", func(t *testing.T) {
		p.t = t
		p.open("/workflows/longfail-1")
		p.shows("h1 .badge", "failed")
		p.shows("table.steps", "schedule_the_follow_up_call")
		p.until("the step's path on one line beside its long error", `document.querySelector('table.steps tr[data-path="schedule_the_follow_up_call"] code').getClientRects().length === 1`)
	})

	t.Run("refused query", func(t *testing.T) {
		p.t = t
		p.open("/")
		p.shows("table.runs", "wait-1")
		p.typeInto(`input[name=q]`, `status ==`)
		p.click("button", "Find")
		p.shows(".error", "InvalidArgument")
		p.until("no rows of the list before", listed+`.length === 0`)
		p.until("no 'No runs' beside the error", `!document.querySelector(".empty")`)

		// Opened from a link: the error, and no rows that look as if they
		// were still loading.
		p.open("/?q=status%20%3D%3D")
		p.shows(".error", "InvalidArgument")
		p.until("no placeholder rows", `!document.querySelector("table.runs tr.placeholder") && document.querySelector("table.runs").getAttribute("aria-busy") === "false"`)

		// A query the counts do not follow says so beside them.
		p.open(`/?q=status%20%3D%3D%20%22failed%22`)
		p.shows("table.runs", "flaky-1")
		p.shows(".counts-note", "not the query")
	})
}
