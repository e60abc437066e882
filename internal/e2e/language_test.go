package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// endpoint is an outside HTTP service that records calls per Idempotency-Key
// and can fail the first few.
type endpoint struct {
	mu        sync.Mutex
	calls     map[string]int
	times     []time.Time
	failFirst int
	srv       *httptest.Server
}

func newEndpoint(t *testing.T, failFirst int) *endpoint {
	ep := &endpoint{calls: map[string]int{}, failFirst: failFirst}
	ep.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep.mu.Lock()
		ep.calls[r.Header.Get("Idempotency-Key")]++
		ep.times = append(ep.times, time.Now())
		n := len(ep.times)
		ep.mu.Unlock()
		if n <= ep.failFirst {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"call": %d}`, n)
	}))
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *endpoint) snapshot() (map[string]int, int) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	m := map[string]int{}
	for k, v := range ep.calls {
		m[k] = v
	}
	return m, len(ep.times)
}

// Onboarding: welcome email, CRM entry (503 three times), schedule call, gift.
func TestOnboardingPattern(t *testing.T) {
	mail, crm, call, gift := newEndpoint(t, 0), newEndpoint(t, 3), newEndpoint(t, 0), newEndpoint(t, 0)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: onboarding
retry: { max_attempts: 5, initial_interval: 200ms, backoff_coefficient: 2, max_interval: 2s }
steps:
  - { id: welcome, task: http, input: { method: POST, url: "${ input.mail }", body: { to: "${ input.email }" } } }
  - { id: crm, task: http, input: { method: POST, url: "${ input.crm }", body: { email: "${ input.email }" } } }
  - { id: schedule_call, task: http, input: { method: POST, url: "${ input.call }" } }
  - { id: gift, task: http, input: { method: POST, url: "${ input.gift }" } }
output: "${ steps.gift.output.status }"
`)
	id := e.start("onboarding", "new-user", fmt.Sprintf(`{"email": "a@example.com", "mail": %q, "crm": %q, "call": %q, "gift": %q}`,
		mail.srv.URL, crm.srv.URL, call.srv.URL, gift.srv.URL))
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "200" {
		t.Fatalf("status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	if calls, n := mail.snapshot(); n != 1 || calls[id+"/welcome"] != 1 {
		t.Fatalf("welcome endpoint saw %d requests: %v", n, calls)
	}
	calls, n := crm.snapshot()
	if n != 4 || len(calls) != 1 || calls[id+"/crm"] != 4 {
		t.Fatalf("CRM saw %d requests by key %v, want 4 with one key", n, calls)
	}
	// History shows the backoff: 200ms, 400ms, 800ms between CRM attempts.
	var crmTimes []time.Time
	for _, ev := range e.history(id) {
		if ev.StepPath == "crm" && (ev.Type == "StepAttemptFailed" || ev.Type == "StepCompleted") {
			crmTimes = append(crmTimes, ev.Time.AsTime())
		}
	}
	if len(crmTimes) != 4 {
		t.Fatalf("CRM attempts in history: %d", len(crmTimes))
	}
	for i, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond} {
		if gap := crmTimes[i+1].Sub(crmTimes[i]); gap < want {
			t.Fatalf("gap %d is %s, want >= %s", i+1, gap, want)
		}
	}
}

const expenseDef = `
name: expense
steps:
  - id: route
    switch:
      - if: "${ input.amount > 1000 }"
        then: [ { id: cfo, task: notify, input: { to: cfo } } ]
    default: [ { id: manager, task: notify, input: { to: manager } } ]
  - id: approve
    wait: { signal: decision, timeout: 3s }
    timeout_steps: [ { id: escalate, task: notify, input: { to: director } } ]
  - id: outcome
    switch:
      - if: "${ has(steps.approve.output.decision) && steps.approve.output.decision == 'approve' }"
        then: [ { id: pay, task: notify, input: { to: payroll } } ]
      - if: "${ has(steps.approve.output.decision) && steps.approve.output.decision == 'reject' }"
        then: [ { id: rejected, task: notify, input: { to: employee } } ]
    default: [ { id: escalated, task: echo, input: escalated } ]
`

// notifier records who was notified.
type notifier struct {
	mu  sync.Mutex
	got map[string][]string
}

func (n *notifier) handler(ctx context.Context, t *executor.Task) (any, error) {
	to := t.Input.(map[string]any)["to"].(string)
	n.mu.Lock()
	n.got[t.WorkflowID] = append(n.got[t.WorkflowID], to)
	n.mu.Unlock()
	return map[string]any{"notified": to}, nil
}

func (n *notifier) of(id string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.got[id], ",")
}

// restart stops Weft and NATS and starts both again on the same store.
func (e *env) restart(o envOpts) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.ns.Restart()
	e.node = e.startNode(o, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
}

// Expense approval: routing by amount; approve, reject and timeout paths,
// each with a server restart during the wait.
func TestExpenseApprovalPattern(t *testing.T) {
	n := &notifier{got: map[string][]string{}}
	o := envOpts{handlers: map[string]executor.Handler{"notify": n.handler}}
	e := newEnv(t, o)
	e.putDef(expenseDef)
	cases := []struct {
		id, input, signal, notified, output string
	}{
		{"exp-approve", `{"amount": 50}`, `{"decision": "approve"}`, "manager,payroll", `{"notified":"payroll"}`},
		{"exp-reject", `{"amount": 5000}`, `{"decision": "reject"}`, "cfo,employee", `{"notified":"employee"}`},
		{"exp-timeout", `{"amount": 70}`, ``, "manager,director", `"escalated"`},
	}
	for _, c := range cases {
		e.start("expense", c.id, c.input)
	}
	for _, c := range cases {
		eventually(t, 20*time.Second, c.id+" to wait", func() bool {
			return stepStatus(e.get(c.id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
		})
	}
	e.restart(o)
	for _, c := range cases {
		if c.signal != "" {
			if err := e.signal(c.id, "decision", c.signal); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range cases {
		w := e.waitClosed(c.id, 30*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != c.output {
			t.Fatalf("%s: status %v output %s error %v", c.id, w.Status, toJSON(w.Output), w.Error)
		}
		if got := n.of(c.id); got != c.notified {
			t.Fatalf("%s notified %s, want %s", c.id, got, c.notified)
		}
	}
}

// Fan-out over 100 items, 10 at a time; three items fail twice.
func TestFanOutPattern(t *testing.T) {
	var running, peak atomic.Int64
	calls := newAttempts()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"charge": func(ctx context.Context, task *executor.Task) (any, error) {
			now := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			n := calls.record(task)
			time.Sleep(10 * time.Millisecond)
			item := task.Input.(map[string]any)["item"].(int64)
			if (item == 7 || item == 42 || item == 99) && n <= 2 {
				return nil, executor.NewError("unavailable", "item %d try %d", item, n)
			}
			return item * 2, nil
		},
	}})
	e.putDef(`
name: fanout
steps:
  - id: lines
    foreach: "${ input.items }"
    concurrency: 10
    do:
      - id: charge
        task: charge
        input: { item: "${ item }", index: "${ index }" }
        retry: { max_attempts: 3, initial_interval: 100ms }
`)
	items := make([]string, 100)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	id := e.start("fanout", "", `{"items": [`+strings.Join(items, ",")+`]}`)
	w := e.waitClosed(id, 60*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprint(i*2))
	}
	if got := toJSON(w.Output); got != "["+strings.Join(want, ",")+"]" {
		t.Fatalf("output %s", got)
	}
	calls.mu.Lock()
	defer calls.mu.Unlock()
	for i := range 100 {
		key := fmt.Sprintf("%s/lines[%d].charge", id, i)
		want := 1
		if i == 7 || i == 42 || i == 99 {
			want = 3
		}
		if got := len(calls.calls[key]); got != want {
			t.Errorf("item %d ran %d times, want %d", i, got, want)
		}
	}
	if p := peak.Load(); p > 10 {
		t.Fatalf("%d item tasks ran at once, want at most 10", p)
	}
	e.healthy()
}

// sleep survives a restart and fires once; repeat stops at until and fails
// at max_iterations.
func TestSleepAndRepeat(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: nap
steps:
  - { id: before, task: echo, input: 1 }
  - { id: rest, sleep: 2s }
  - { id: after, task: echo, input: 2 }
`)
	id := e.start("nap", "", ``)
	eventually(t, 20*time.Second, "sleep to start", func() bool {
		return stepStatus(e.get(id), "rest") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	e.restart(envOpts{})
	w := e.waitClosed(id, 30*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("status %v error %v", w.Status, w.Error)
	}
	var fired int
	var scheduled, done time.Time
	for _, ev := range e.history(id) {
		switch {
		case ev.Type == "TimerScheduled":
			scheduled = ev.Time.AsTime()
		case ev.Type == "TimerFired":
			fired++
		case ev.Type == "StepCompleted" && ev.StepPath == "rest":
			done = ev.Time.AsTime()
		}
	}
	if fired != 1 || done.Sub(scheduled) < 2*time.Second {
		t.Fatalf("timer fired %d times, slept %s", fired, done.Sub(scheduled))
	}

	e.putDef(`
name: loop
steps:
  - id: count
    repeat:
      do:
        - { id: tick, task: echo, input: "${ iteration + 1 }" }
      until: "${ steps.tick.output >= input.stop }"
      max_iterations: 5
`)
	id = e.start("loop", "", `{"stop": 3}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "3" {
		t.Fatalf("repeat: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	id = e.start("loop", "", `{"stop": 10}`)
	w = e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "max_iterations" {
		t.Fatalf("repeat past max: status %v error %v", w.Status, w.Error)
	}
	ticks := 0
	for _, ev := range e.history(id) {
		if ev.Type == "StepCompleted" && strings.HasSuffix(ev.StepPath, ".tick") {
			ticks++
		}
	}
	if ticks != 5 {
		t.Fatalf("repeat ran %d iterations, want 5", ticks)
	}
	e.healthy()
}

// A child workflow's output flows to the parent; cancelling the parent
// cancels the child.
func TestChildWorkflows(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: child
steps:
  - { id: double, task: echo, input: "${ input.n * 2 }" }
  - { id: gate, wait: { signal: go }, if: "${ input.wait }" }
output: "${ steps.double.output }"
`)
	e.putDef(`
name: parent
steps:
  - { id: kid, workflow: child, input: { n: "${ input.n }", wait: "${ input.wait }" } }
  - { id: after, task: echo, input: "${ steps.kid.output + 1 }" }
`)
	id := e.start("parent", "", `{"n": 20, "wait": false}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "41" {
		t.Fatalf("parent: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	id = e.start("parent", "", `{"n": 1, "wait": true}`)
	var childID string
	eventually(t, 20*time.Second, "child to start", func() bool {
		for _, ev := range e.history(id) {
			if ev.Type == "ChildStarted" {
				childID = ev.Data.GetStructValue().Fields["workflow_id"].GetStringValue()
			}
		}
		return childID != ""
	})
	eventually(t, 20*time.Second, "child to wait", func() bool {
		resp, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: childID}))
		return err == nil && stepStatus(resp.Msg.Workflow, "gate") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("parent: %v", w.Status)
	}
	if w := e.waitClosed(childID, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("child: %v", w.Status)
	}
	e.healthy()
}

// A revision put while a workflow runs does not change that workflow.
func TestRunningWorkflowKeepsItsRevision(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: pinned
steps:
  - { id: gate, wait: { signal: go } }
  - { id: result, task: echo, input: "v1" }
`)
	id := e.start("pinned", "", ``)
	if got := e.putDef(`
name: pinned
steps:
  - { id: gate, wait: { signal: go } }
  - { id: result, task: echo, input: "v2" }
`); got.Revision != 2 {
		t.Fatalf("second put: %v", got)
	}
	if err := e.signal(id, "go", ``); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); toJSON(w.Output) != `"v1"` || w.Revision != 1 {
		t.Fatalf("running workflow moved: revision %d output %s", w.Revision, toJSON(w.Output))
	}
	if w := e.get(e.start("pinned", "", ``)); w.Revision != 2 {
		t.Fatalf("new workflow revision %d", w.Revision)
	}
}

// RetryWorkflow redrives a failed fan-out: only the items that failed or
// were canceled by the failure run again.
func TestRetryWorkflowRedrivesFailedItems(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	calls := newAttempts()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"work": func(ctx context.Context, task *executor.Task) (any, error) {
			calls.record(task)
			item := task.Input.(int64)
			if broken.Load() && (item == 3 || item == 5) {
				return nil, executor.NonRetryable(fmt.Errorf("item %d is broken", item))
			}
			return item * 10, nil
		},
	}})
	e.putDef(`
name: redrive
steps:
  - id: items
    foreach: "${ input.items }"
    do:
      - { id: work, task: work, input: "${ item }" }
`)
	id := e.start("redrive", "", `{"items": [0,1,2,3,4,5,6,7]}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("first run: status %v error %v", w.Status, w.Error)
	}
	// Items still in flight when the fan-out failed are canceled: every
	// item is closed once the workflow is.
	first := map[string]string{}
	for _, ev := range e.history(id) {
		if strings.HasPrefix(ev.StepPath, "items[") && ev.Type != "StepScheduled" {
			first[ev.StepPath] = ev.Type
		}
	}
	for i := range 8 {
		switch p := fmt.Sprintf("items[%d].work", i); first[p] {
		case "StepCompleted", "StepFailed", "StepCanceled":
		default:
			t.Fatalf("%s is not closed after the first run: %q", p, first[p])
		}
	}
	broken.Store(false)
	e.redrive(id, "fixed")
	w = e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "[0,10,20,30,40,50,60,70]" {
		t.Fatalf("after retry: status %v output %s error %v", w.Status, toJSON(w.Output), w.Error)
	}
	calls.mu.Lock()
	for i := range 8 {
		got := len(calls.calls[fmt.Sprintf("%s/items[%d].work", id, i)])
		// A canceled item may not have run before it was canceled.
		switch first[fmt.Sprintf("items[%d].work", i)] {
		case "StepCompleted":
			if got != 1 {
				t.Errorf("item %d completed in the first run and ran %d times, want 1", i, got)
			}
		case "StepFailed":
			if got != 2 {
				t.Errorf("failed item %d ran %d times, want 2", i, got)
			}
		default:
			if got < 1 || got > 2 {
				t.Errorf("canceled item %d ran %d times, want 1 or 2", i, got)
			}
		}
	}
	calls.mu.Unlock()
	retried := 0
	for _, ev := range e.history(id) {
		if ev.Type == "WorkflowRetried" {
			retried++
		}
	}
	if retried != 1 {
		t.Fatalf("history has %d WorkflowRetried events", retried)
	}
	_, err := e.wf.RetryWorkflow(ctx(t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("retry of a completed workflow: %v", err)
	}
	e.healthy()
}
