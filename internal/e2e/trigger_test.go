package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// listAll returns every workflow of a definition.
func (e *env) listAll(def string) []*weftv1.WorkflowSummary {
	e.t.Helper()
	var out []*weftv1.WorkflowSummary
	tok := ""
	for {
		resp, err := e.wf.ListWorkflows(ctx(e.t), connect.NewRequest(&weftv1.ListWorkflowsRequest{Definition: def, PageSize: 1000, PageToken: tok}))
		if err != nil {
			e.t.Fatalf("ListWorkflows: %v", err)
		}
		out = append(out, resp.Msg.Workflows...)
		if tok = resp.Msg.NextPageToken; tok == "" {
			return out
		}
	}
}

func countStatus(ws []*weftv1.WorkflowSummary, s weftv1.WorkflowStatus) int {
	n := 0
	for _, w := range ws {
		if w.Status == s {
			n++
		}
	}
	return n
}

func (e *env) failures() []*weftv1.TriggerFailure {
	e.t.Helper()
	c := weftv1connect.NewTriggerServiceClient(http.DefaultClient, e.node.APIURL)
	resp, err := c.ListTriggerFailures(ctx(e.t), connect.NewRequest(&weftv1.ListTriggerFailuresRequest{PageSize: 1000}))
	if err != nil {
		e.t.Fatalf("ListTriggerFailures: %v", err)
	}
	return resp.Msg.Failures
}

const ordersDef = `
name: orders
triggers:
  - subject: orders.created
    filter: "${ event.total > 100 }"
    input: "${ {'order': event.id} }"
steps:
  - { id: ack, task: echo, input: "${ input.order }" }
`

// 1,000 messages, some published twice with the same Nats-Msg-Id, start
// exactly 1,000 workflows, and all complete.
func TestSubjectTriggerExactlyOncePerMessage(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(ordersDef)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "orders.created")
	const n = 1000
	for i := range n {
		data := fmt.Sprintf(`{"id": %d, "total": 500}`, i)
		if _, err := js.Publish(ctx(t), "orders.created", []byte(data), jetstream.WithMsgID(fmt.Sprintf("order-%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 { // a producer retry: same message id again
			if _, err := js.Publish(ctx(t), "orders.created", []byte(data), jetstream.WithMsgID(fmt.Sprintf("order-%d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 120*time.Second, "1000 completed workflows", func() bool {
		return countStatus(e.listAll("orders"), weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED) >= n
	})
	if got := len(e.listAll("orders")); got != n {
		t.Fatalf("%d workflows for %d messages", got, n)
	}
}

// waitCaptured waits until the trigger stream captures subject.
func waitCaptured(t *testing.T, js jetstream.JetStream, subject string) {
	t.Helper()
	eventually(t, 20*time.Second, "trigger subject "+subject+" to be captured", func() bool {
		s, err := js.Stream(ctx(t), "WEFT_TRIGGERS")
		if err != nil {
			return false
		}
		for _, subj := range s.CachedInfo().Config.Subjects {
			if subj == subject {
				return true
			}
		}
		return false
	})
}

// Messages published while no orchestrator runs start their workflows
// once one is back; bad messages are recorded and do not hold up the
// good ones behind them.
func TestSubjectTriggerWhileDownAndFailures(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(ordersDef)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "orders.created")
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	// Plain core NATS publishes, as any producer would.
	msgs := []string{`{"id": 1, "total": 500}`, `{not json`, `{"id": 2, "total": 5}`, `{"id": 3}`, `{"id": 4, "total": 900}`}
	for _, m := range msgs {
		if err := nc.Publish("orders.created", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.node = e.startNode(envOpts{}, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	eventually(t, 30*time.Second, "the two good orders to complete", func() bool {
		return countStatus(e.listAll("orders"), weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED) == 2
	})
	var outs []string
	for _, w := range e.listAll("orders") {
		outs = append(outs, toJSON(e.get(w.Id).Output))
	}
	sort.Strings(outs)
	if strings.Join(outs, ",") != "1,4" {
		t.Fatalf("outputs %v", outs)
	}
	// Order 2 was filtered out (not a failure); the bad JSON and the
	// failing filter (no total) are recorded with reasons.
	var reasons []string
	eventually(t, 10*time.Second, "two failures", func() bool {
		reasons = nil
		for _, f := range e.failures() {
			reasons = append(reasons, f.Reason+" | "+string(f.Payload))
		}
		return len(reasons) == 2
	})
	sort.Strings(reasons)
	if !strings.Contains(reasons[0], "filter") || !strings.Contains(reasons[0], `"id": 3`) ||
		!strings.Contains(reasons[1], "payload") || !strings.Contains(reasons[1], "{not json") {
		t.Fatalf("failures %q", reasons)
	}
}

// A per-second cron trigger with two orchestrators fires once per tick,
// and a restart of one does not fire a tick twice.
func TestCronTriggerOncePerTick(t *testing.T) {
	e := newEnv(t, envOpts{})
	second := e.startNode(envOpts{}, true, false)
	e.putDef(`
name: ticker
triggers:
  - cron: "* * * * * *"
    input: { at: "${ tick }" }
steps:
  - { id: note, task: echo, input: "${ input.at }" }
`)
	eventually(t, 20*time.Second, "3 ticks", func() bool { return len(e.listAll("ticker")) >= 3 })
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := second.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	e.startNode(envOpts{}, true, false)
	before := len(e.listAll("ticker"))
	eventually(t, 20*time.Second, "3 more ticks", func() bool { return len(e.listAll("ticker")) >= before+3 })
	ws := e.listAll("ticker")
	ticks := map[string]int{}
	for _, w := range ws {
		at := toJSON(e.get(w.Id).Input)
		ticks[at]++
	}
	for at, n := range ticks {
		if n != 1 {
			t.Fatalf("tick %s started %d workflows", at, n)
		}
	}
	if len(ticks) != len(ws) {
		t.Fatalf("%d workflows for %d ticks", len(ws), len(ticks))
	}
	c := weftv1connect.NewTriggerServiceClient(http.DefaultClient, e.node.APIURL)
	resp, err := c.ListSchedules(ctx(t), connect.NewRequest(&weftv1.ListSchedulesRequest{}))
	if err != nil || len(resp.Msg.Schedules) != 1 || resp.Msg.Schedules[0].NextFireTime == nil {
		t.Fatalf("schedules: %v %v", resp, err)
	}
}

func postHook(t *testing.T, url string, body []byte, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestWebhookTrigger(t *testing.T) {
	t.Setenv("WEFT_TEST_SIGNUP_SECRET", "s3cret")
	e := newEnv(t, envOpts{})
	e.putDef(`
name: signup
triggers:
  - webhook: new-signup
    secret_env: WEFT_TEST_SIGNUP_SECRET
    input: "${ {'email': event.email, 'domain': event.email.split('@')[1]} }"
steps:
  - { id: welcome, task: echo, input: "${ input.email }" }
`)
	url := e.node.APIURL + "/hooks/new-signup"
	body := []byte(`{"email": "ann@example.com"}`)
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, body, map[string]string{"X-Weft-Signature": sign("s3cret", body), "Idempotency-Key": "d1"})
		return code != http.StatusNotFound
	})
	if code != http.StatusAccepted || out["workflow_id"] == nil {
		t.Fatalf("signed delivery: %d %v", code, out)
	}
	id := out["workflow_id"].(string)
	if w := e.waitClosed(id, 20*time.Second); toJSON(w.Output) != `"ann@example.com"` {
		t.Fatalf("output %s", toJSON(w.Output))
	}
	// The same delivery again starts nothing new.
	code, out = postHook(t, url, body, map[string]string{"X-Weft-Signature": sign("s3cret", body), "Idempotency-Key": "d1"})
	if code != http.StatusAccepted || out["workflow_id"] != id || out["started"] != false {
		t.Fatalf("duplicate delivery: %d %v", code, out)
	}
	if n := len(e.listAll("signup")); n != 1 {
		t.Fatalf("%d workflows after a duplicate delivery", n)
	}
	if code, out = postHook(t, url, body, map[string]string{"X-Weft-Signature": sign("wrong", body)}); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d %v", code, out)
	}
	if code, out = postHook(t, url, body, nil); code != http.StatusUnauthorized {
		t.Fatalf("no signature: %d %v", code, out)
	}
	big := []byte(`{"email": "` + strings.Repeat("x", 2<<20) + `"}`)
	if code, out = postHook(t, url, big, map[string]string{"X-Weft-Signature": sign("s3cret", big)}); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize: %d %v", code, out)
	}
	bad := []byte(`{"email": `)
	if code, out = postHook(t, url, bad, map[string]string{"X-Weft-Signature": sign("s3cret", bad)}); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "JSON") {
		t.Fatalf("bad JSON: %d %v", code, out)
	}
	noAt := []byte(`{"email": "ann"}`)
	if code, out = postHook(t, url, noAt, map[string]string{"X-Weft-Signature": sign("s3cret", noAt)}); code != http.StatusUnprocessableEntity {
		t.Fatalf("input expression failing: %d %v", code, out)
	}
	if code, _ = postHook(t, e.node.APIURL+"/hooks/nope", body, nil); code != http.StatusNotFound {
		t.Fatalf("unknown hook: %d", code)
	}
	// A signed delivery no retry can mend is recorded with its body, as a
	// subject trigger's event is: the bad JSON and the failing input. One
	// whose sender is not known (a bad or missing signature) is not, nor
	// is one too big to keep.
	got := map[string]string{}
	for _, f := range e.failures() {
		if f.Subject != "/hooks/new-signup" || f.Definition != "signup" {
			t.Errorf("failure %v: want subject /hooks/new-signup of signup", f)
		}
		got[string(f.Payload)] = f.Reason
	}
	if len(got) != 2 || !strings.Contains(got[string(bad)], "JSON") || !strings.Contains(got[string(noAt)], "input") {
		t.Fatalf("trigger failures recorded for the webhook: %v; want the bad JSON and the failing input", got)
	}
}

var _ = nats.MsgIdHdr

// Putting a new revision changes a definition's triggers without a restart.
func TestTriggerChangesTakeEffect(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: moving
triggers: [ { subject: first.subject } ]
steps: [ { id: s, task: echo, input: "${ input.n }" } ]
`)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "first.subject")
	if err := nc.Publish("first.subject", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a workflow from the first subject", func() bool { return len(e.listAll("moving")) == 1 })
	e.putDef(`
name: moving
triggers: [ { subject: second.subject } ]
steps: [ { id: s, task: echo, input: "${ input.n }" } ]
`)
	waitCaptured(t, js, "second.subject")
	_ = nc.Publish("first.subject", []byte(`{"n": 2}`)) // no longer captured
	if err := nc.Publish("second.subject", []byte(`{"n": 3}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a workflow from the second subject", func() bool { return len(e.listAll("moving")) == 2 })
	var outs []string
	for _, w := range e.listAll("moving") {
		outs = append(outs, toJSON(e.waitClosed(w.Id, 10*time.Second).Output))
	}
	sort.Strings(outs)
	if strings.Join(outs, ",") != "1,3" {
		t.Fatalf("outputs %v", outs)
	}
}

// With catchup, ticks missed while no orchestrator ran start when one is back.
func TestCronCatchup(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: catchup
triggers: [ { cron: "* * * * * *", catchup: true, input: { at: "${ tick }" } } ]
steps: [ { id: s, task: echo, input: "${ input.at }" } ]
`)
	eventually(t, 20*time.Second, "a first tick", func() bool { return len(e.listAll("catchup")) >= 1 })
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(3 * time.Second) // Weft is down for three ticks
	e.node = e.startNode(envOpts{}, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	// Every second from the first tick on has its workflow: none missed.
	eventually(t, 20*time.Second, "the missed ticks", func() bool {
		var ticks []time.Time
		for _, w := range e.listAll("catchup") {
			var in map[string]string
			if err := json.Unmarshal([]byte(toJSON(e.get(w.Id).Input)), &in); err != nil {
				return false
			}
			at, _ := time.Parse(time.RFC3339Nano, in["at"])
			ticks = append(ticks, at)
		}
		sort.Slice(ticks, func(i, j int) bool { return ticks[i].Before(ticks[j]) })
		if len(ticks) < 2 || !ticks[len(ticks)-1].After(down.Add(time.Second)) || !ticks[0].Before(down) {
			return false
		}
		for i := 1; i < len(ticks); i++ {
			if ticks[i].Sub(ticks[i-1]) != time.Second {
				return false
			}
		}
		return true
	})
}

// publishThenClosed publishes msgs on subject, once a trigger captures
// it, and waits for the run id that one of them starts to close.
func (e *env) publishThenClosed(subject, id string, msgs ...string) *weftv1.Workflow {
	e.t.Helper()
	nc := e.ns.Connect(e.t)
	js, _ := jetstream.New(nc)
	waitCaptured(e.t, js, subject)
	for _, m := range msgs {
		if err := nc.Publish(subject, []byte(m)); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 20*time.Second, "run "+id+" to start", func() bool {
		_, err := e.wf.GetWorkflow(ctx(e.t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		return err == nil
	})
	return e.waitClosed(id, 20*time.Second)
}

// A trigger input that the start refuses (nested too deep once the input
// template wrapped the event) is recorded as a trigger failure and
// skipped: the events behind it start their runs.
func TestTriggerInputRefusedByStartIsRecordedAndSkipped(t *testing.T) {
	e := newEnv(t, envOpts{})
	wrapped := "event"
	for range 70 {
		wrapped = "[" + wrapped + "]"
	}
	e.putDef(`
name: wrapper
triggers:
  - subject: wrap.in
    id: "${ 'wrap-' + string(event.n) }"
    input: "${ event.n == 1 ? dyn(` + wrapped + `) : dyn(event) }"
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
	deep := `{"n": 1, "v": ` + strings.Repeat("[", 60) + strings.Repeat("]", 60) + `}`
	if w := e.publishThenClosed("wrap.in", "wrap-2", deep, `{"n": 2}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the event behind: %v", w.Status)
	}
	eventually(t, 20*time.Second, "the refused input to be recorded", func() bool {
		for _, f := range e.failures() {
			if strings.Contains(f.Reason, "deeper") {
				return true
			}
		}
		return false
	})
}

// A message on a subject that is not valid UTF-8 (NATS takes any bytes
// but whitespace) is recorded as a trigger failure, its subject made
// readable, and skipped: the message behind it starts its run, and the
// listing and the failures read back.
func TestTriggerSubjectNotUTF8IsRecordedAndSkipped(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: wild
triggers:
  - subject: "wild.>"
    id: "${ 'wild-' + string(event.n) }"
    input: "${ {'subject': subject} }"
steps:
  - { id: handle, task: echo, input: "${ input.subject }" }
`)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "wild.>")
	if err := nc.Publish("wild.caf\xe9", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("wild.ok", []byte(`{"n": 2}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "run wild-2 to start", func() bool {
		_, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "wild-2"}))
		return err == nil
	})
	if w := e.waitClosed("wild-2", 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"wild.ok"` {
		t.Fatalf("the message behind: %v, output %s", w.Status, toJSON(w.Output))
	}
	var found *weftv1.TriggerFailure
	eventually(t, 20*time.Second, "the message on a subject not UTF-8 to be recorded", func() bool {
		for _, f := range e.failures() {
			if strings.Contains(f.Reason, "subject is not valid UTF-8") {
				found = f
				return true
			}
		}
		return false
	})
	if found.Subject != "wild.caf\uFFFD" || found.Definition != "wild" {
		t.Fatalf("failure recorded as %q of %q", found.Subject, found.Definition)
	}
	if ws := e.listAll("wild"); len(ws) != 1 || ws[0].Id != "wild-2" {
		t.Fatalf("listed %v", ws)
	}
}

// Events near the size limit are recorded as trigger failures and
// skipped, never retried: one whose run's start would be over the NATS
// message limit, and a malformed one whose failure would be over it with
// its payload (recorded without it). The message behind them starts its
// run; the same body at a webhook is answered 422, not "try again".
func TestTriggerEventsNearTheLimitAreRecordedAndSkipped(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: big
triggers:
  - subject: big.in
    id: "${ type(event) == string ? 'big-str' : 'big-' + string(event.n) }"
  - webhook: bighook
steps:
  - { id: handle, task: echo, input: 1 }
`)
	max := int(e.node.NC.MaxPayload())
	near := []byte(`"` + strings.Repeat("x", max-300) + `"`) // valid JSON: its start is too large
	broken := []byte("{" + strings.Repeat("x", max-30))      // not JSON: its failure with it is too large
	if w := e.publishThenClosed("big.in", "big-2", string(near), string(broken), `{"n": 2}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the message behind: %v", w.Status)
	}
	var tooLarge, notKept bool
	eventually(t, 20*time.Second, "both events to be recorded as failures", func() bool {
		for _, f := range e.failures() {
			tooLarge = tooLarge || strings.Contains(f.Reason, "larger than the NATS server accepts")
			notKept = notKept || strings.Contains(f.Reason, "payload of "+strconv.Itoa(len(broken))+" bytes is not kept") && len(f.Payload) == 0
		}
		return tooLarge && notKept
	})
	if _, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "big-str"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("the event too large started a run: %v", err)
	}
	var code int
	var resp map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, resp = postHook(t, e.node.APIURL+"/hooks/bighook", near, nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(resp["error"]), "larger than the NATS server accepts") {
		t.Fatalf("webhook: %d %v", code, resp)
	}
}

// A trigger subject another stream captures is refused when it is put;
// one stored before that stream took it (or by an older version) is left
// out of the trigger stream, named in the engine's warning, and the
// definitions' other subjects are captured all the same.
func TestTriggerSubjectOfAnotherStream(t *testing.T) {
	e := newEnv(t, envOpts{})
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx(t), jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	const taken = "name: taken\ntriggers:\n  - subject: orders.created\nsteps:\n  - { id: handle, task: echo, input: 1 }\n"
	wantCodeAll(t, e.putDefErr(taken), connect.CodeFailedPrecondition, `trigger subject "orders.created"`, `stream "ORDERS" captures it`)

	// Stored behind the API's back, as an older version could have.
	if _, _, err := e.node.Store.PutDefinition(ctx(t), "taken", taken, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.putDef("name: bee\ntriggers:\n  - subject: bee.x\n    id: \"${ 'bee-' + string(event.n) }\"\nsteps:\n  - { id: handle, task: echo, input: 1 }\n")
	if w := e.publishThenClosed("bee.x", "bee-1", `{"n": 1}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("bee-1: %v", w.Status)
	}
	if s, err := js.Stream(ctx(t), "WEFT_TRIGGERS"); err != nil || slices.Contains(s.CachedInfo().Config.Subjects, "orders.created") {
		t.Fatalf("the trigger stream: %v, %v", s.CachedInfo().Config.Subjects, err)
	}
}

// A subject a taken wildcard covers is captured on its own when no other
// stream takes it.
func TestTriggerSubjectCoveredByATakenWildcard(t *testing.T) {
	e := newEnv(t, envOpts{})
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx(t), jetstream.StreamConfig{Name: "EU", Subjects: []string{"orders.eu.>"}}); err != nil {
		t.Fatal(err)
	}
	// Stored behind the API's back, as an older version could have.
	if _, _, err := e.node.Store.PutDefinition(ctx(t), "all", "name: all\ntriggers:\n  - subject: orders.>\nsteps:\n  - { id: handle, task: echo, input: 1 }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.putDef("name: us\ntriggers:\n  - subject: orders.us.new\n    id: \"${ 'us-' + string(event.n) }\"\nsteps:\n  - { id: handle, task: echo, input: 1 }\n")
	if w := e.publishThenClosed("orders.us.new", "us-1", `{"n": 1}`); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("us-1: %v", w.Status)
	}
}

// What an earlier version recorded with a trigger subject that is not
// valid UTF-8 (a failure, a run's caller) reads back, the bytes made
// U+FFFD.
func TestEarlierInvalidUTF8ReadsBack(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.node.Store.RecordTriggerFailure(ctx(t), eventstore.TriggerFailure{Subject: "wild.caf\xe9", Time: time.Now(), Reason: "caf\xe9"}); err != nil {
		t.Fatal(err)
	}
	if errs := e.node.Store.PutSummaries(ctx(t), []eventstore.Summary{{ID: "old-1", Definition: "old", Status: "COMPLETED",
		Created: time.Now(), Seq: 1, Identity: "subject:wild.caf\xe9"}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if fs := e.failures(); len(fs) != 1 || fs[0].Subject != "wild.caf\uFFFD" || fs[0].Reason != "caf\uFFFD" {
		t.Fatalf("failures: %v", fs)
	}
	if ws := e.listAll("old"); len(ws) != 1 || ws[0].Identity != "subject:wild.caf\uFFFD" {
		t.Fatalf("listed: %v", ws)
	}
}

// A trigger subject is captured when PutDefinition answers: a message
// published at once is stored and starts its run, whether or not the
// trigger engines have seen the new revision yet.
func TestATriggerSubjectIsCapturedWhenThePutAnswers(t *testing.T) {
	e := newEnv(t, envOpts{})
	nc := e.ns.Connect(t)
	for i := range 8 {
		name := fmt.Sprintf("live%d", i)
		e.putDef(fmt.Sprintf("name: %s\ntriggers:\n  - subject: live.%d\n    id: \"${ '%s-' + string(event.n) }\"\nsteps:\n  - { id: a, task: echo }\n", name, i, name))
		// A request, as a JetStream publish is, asked once: no responders
		// when no stream captures the subject.
		if _, err := nc.Request(fmt.Sprintf("live.%d", i), []byte(`{"n": 1}`), 5*time.Second); err != nil {
			t.Fatalf("a message published once the put of %s answered: %v", name, err)
		}
	}
	for i := range 8 {
		id := fmt.Sprintf("live%d-1", i)
		// Started by the engine once it takes the message: not at once.
		eventually(t, 20*time.Second, "run "+id+" to start", func() bool {
			_, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
			return err == nil
		})
		if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("live%d-1: %v", i, w.Status)
		}
	}
	if fs := e.failures(); len(fs) > 0 {
		t.Fatalf("trigger failures: %v", fs)
	}
}
