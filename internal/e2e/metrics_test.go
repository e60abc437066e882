package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/metrics"
)

// scrape reads the metrics served at url in the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return fams
}

// sample returns the value of a counter or gauge series of fams, or the
// sample count of a histogram series, with the labels given as
// "name=value" pairs; -1 when there is no such series.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	want := strings.Join(labels, ",")
	for _, m := range f.GetMetric() {
		var have []string
		for _, l := range m.GetLabel() {
			have = append(have, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(have)
		if strings.Join(have, ",") != want {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

// After known runs (completed, failed at once, completed after a retried
// attempt, canceled, started by a webhook and by a subject, failed for
// passing its history limit, waiting for an executor that is not there),
// /metrics on the API address counts each
// once, with the part that did it.
func TestMetricsAfterKnownRuns(t *testing.T) {
	var flaky atomic.Int32
	e := newEnv(t, envOpts{metrics: metrics.NewRegistry(), maxHistory: 40, handlers: map[string]executor.Handler{
		"m-tick": func(context.Context, *executor.Task) (any, error) { return nil, nil },
		"m-bad": func(context.Context, *executor.Task) (any, error) {
			return nil, executor.NonRetryable(errors.New("the input is wrong"))
		},
		"m-flaky": func(context.Context, *executor.Task) (any, error) {
			if flaky.Add(1) == 1 {
				return nil, executor.NewError("unavailable", "first try fails")
			}
			return "ok", nil
		},
	}})
	e.putDef("name: m-ok\nsteps: [ { id: s, task: echo, input: 1 } ]\n")
	e.putDef("name: m-fail\nsteps: [ { id: s, task: m-bad } ]\n")
	e.putDef("name: m-retry\nsteps: [ { id: s, task: m-flaky, retry: { max_attempts: 3, initial_interval: 100ms } } ]\n")
	e.putDef("name: m-cancel\nsteps: [ { id: gate, wait: { signal: never } } ]\n")
	e.putDef("name: m-hook\ntriggers: [ { webhook: m-hook } ]\nsteps: [ { id: s, task: echo, input: 2 } ]\n")
	e.putDef("name: m-subj\ntriggers: [ { subject: metrics.test } ]\nsteps: [ { id: s, task: echo, input: 3 } ]\n")
	e.putDef("name: m-orphan\nsteps: [ { id: s, task: m-nobody } ]\n")
	// A run whose history would pass MaxHistoryEvents cannot go on: the
	// orchestrator fails it without folding it.
	e.putDef(`
name: m-limit
steps:
  - id: many
    repeat:
      do: [ { id: tick, task: m-tick } ]
      until: "${ false }"
      max_iterations: 1000
`)

	want := map[string]weftv1.WorkflowStatus{
		"m-ok":   weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED,
		"m-fail": weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED, "m-retry": weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED,
		"m-limit": weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED,
	}
	for def, status := range want {
		if w := e.waitClosed(e.start(def, def+"-1", ``), 20*time.Second); w.Status != status {
			t.Fatalf("%s: %v, want %v", def, w.Status, status)
		}
	}
	id := e.start("m-cancel", "m-cancel-1", ``)
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("m-cancel: %v", w.Status)
	}
	// A webhook delivery starts a run; the same delivery again starts none.
	hook := e.node.APIURL + "/hooks/m-hook"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, hook, []byte(`{}`), map[string]string{"Idempotency-Key": "k1"})
		return code != http.StatusNotFound
	})
	if code != http.StatusAccepted {
		t.Fatalf("webhook: %d %v", code, out)
	}
	e.waitClosed(out["workflow_id"].(string), 20*time.Second)
	if code, out = postHook(t, hook, []byte(`{}`), map[string]string{"Idempotency-Key": "k1"}); code != http.StatusAccepted || out["started"] != false {
		t.Fatalf("webhook again: %d %v", code, out)
	}
	// A command of a type no executor runs waits in its backlog.
	e.start("m-orphan", "m-orphan-1", ``)
	// A message on a trigger subject starts a run.
	js, _ := jetstream.New(e.ns.Connect(t))
	waitCaptured(t, js, "metrics.test")
	if _, err := js.Publish(ctx(t), "metrics.test", []byte(`{}`), jetstream.WithMsgID("m1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the subject's run to complete", func() bool {
		return countStatus(e.listAll("m-subj"), weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED) == 1
	})

	type series struct {
		name   string
		labels []string
		value  float64
	}
	var expect []series
	add := func(name string, value float64, labels ...string) {
		expect = append(expect, series{name, labels, value})
	}
	closed := map[string]string{"m-ok": "completed", "m-fail": "failed", "m-retry": "completed", "m-cancel": "canceled",
		"m-hook": "completed", "m-subj": "completed", "m-limit": "failed"}
	for def, status := range closed {
		add(metrics.NameWorkflowsStarted, 1, "definition="+def)
		add(metrics.NameWorkflowsClosed, 1, "definition="+def, "status="+status)
		add(metrics.NameWorkflowDuration, 1, "definition="+def, "status="+status)
	}
	add(metrics.NameStepAttempts, 3, "outcome=completed", "task=echo")
	add(metrics.NameStepAttempts, 1, "outcome=failed", "task=m-bad")
	add(metrics.NameStepAttempts, 1, "outcome=retrying", "task=m-flaky")
	add(metrics.NameStepAttempts, 1, "outcome=completed", "task=m-flaky")
	add(metrics.NameStepDuration, 3, "task=echo")
	add(metrics.NameStepDuration, 1, "task=m-bad")
	add(metrics.NameStepDuration, 2, "task=m-flaky")
	// A retried attempt's wait is its backoff: only first deliveries count.
	add(metrics.NameScheduleToStart, 3, "task=echo")
	add(metrics.NameScheduleToStart, 1, "task=m-bad")
	add(metrics.NameScheduleToStart, 1, "task=m-flaky")
	add(metrics.NameTaskBacklog, 0, "task=echo")
	add(metrics.NameTaskBacklog, 0, "task=m-flaky")
	add(metrics.NameTaskBacklog, 1, "task=m-nobody")
	add(metrics.NameWorkflowsStarted, 1, "definition=m-orphan")
	add(metrics.NameTriggerEvents, 1, "definition=m-hook", "kind=webhook", "outcome=started")
	add(metrics.NameTriggerEvents, 1, "definition=m-hook", "kind=webhook", "outcome=existing")
	add(metrics.NameTriggerEvents, 1, "definition=m-subj", "kind=subject", "outcome=started")
	// The other values of a counted set are there at zero, so that their
	// first count is an increase Prometheus sees.
	add(metrics.NameWorkflowsClosed, 0, "definition=m-ok", "status=failed")
	add(metrics.NameWorkflowsClosed, 0, "definition=m-fail", "status=completed")
	add(metrics.NameStepAttempts, 0, "outcome=retrying", "task=echo")
	add(metrics.NameTriggerEvents, 0, "definition=m-hook", "kind=webhook", "outcome=refused")
	add(metrics.NameTriggerEvents, 0, "definition=m-subj", "kind=subject", "outcome=error")

	url := e.node.APIURL + "/metrics"
	var fams map[string]*dto.MetricFamily
	var wrong []string
	// The parts count just after what they recorded shows: look a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams, wrong = scrape(t, url), nil
		for _, s := range expect {
			if got := sample(fams, s.name, s.labels...); got != s.value {
				wrong = append(wrong, fmt.Sprintf("%s{%s} = %v, want %v", s.name, strings.Join(s.labels, ","), got, s.value))
			}
		}
		if len(wrong) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(wrong) > 0 {
		t.Fatalf("after the known runs:\n%s", strings.Join(wrong, "\n"))
	}
	// Every started run counts once, however many parts saw it.
	if n := len(fams[metrics.NameWorkflowsStarted].GetMetric()); n != len(closed)+1 {
		t.Fatalf("%d started series, want %d", n, len(closed)+1)
	}
	if n := sample(fams, metrics.NameDecision); n < 10 {
		t.Fatalf("%s counts %v inputs", metrics.NameDecision, n)
	}
	// A cancel or a signal appended while a decision is made is a conflict:
	// some may happen even with one orchestrator.
	if n := sample(fams, metrics.NameConflicts); n < 0 {
		t.Fatalf("%s is missing", metrics.NameConflicts)
	}
	for _, name := range []string{"go_goroutines", "process_open_fds"} {
		if fams[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
}

// weft_api_calls_waiting counts the awaits and watches open in the API,
// and drops back when they end.
func TestMetricsCountOpenCalls(t *testing.T) {
	e := newEnv(t, envOpts{metrics: metrics.NewRegistry()})
	e.putDef(parkedDef)
	id := e.start("parked", "calls-open", `{}`)
	url := e.node.APIURL + "/metrics"
	open := func(await, watch float64) func() bool {
		return func() bool {
			fams := scrape(t, url)
			return sample(fams, metrics.NameCallsWaiting, "call=await") == await && sample(fams, metrics.NameCallsWaiting, "call=watch") == watch
		}
	}
	eventually(t, 10*time.Second, "none open", open(0, 0))

	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	awaited := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := await(c, e.wf, id, time.Minute)
			awaited <- err
		}()
	}
	stream, err := e.wf.WatchWorkflow(c, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: id}))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "two awaits and a watch open", open(2, 1))
	if err := e.signal(id, "go", `{"ok": 1}`); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-awaited; err != nil {
			t.Fatalf("await: %v", err)
		}
	}
	for stream.Receive() {
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("watch: %v", err)
	}
	eventually(t, 20*time.Second, "none open after the close", open(0, 0))
}
