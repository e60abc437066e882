package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Parts sharing a registry share its metrics; nil recorders record nothing.
func TestSharedRegistryAndNil(t *testing.T) {
	reg := NewRegistry()
	a, b := NewWorkflows(reg), NewWorkflows(reg)
	a.Started("greet")
	b.Started("greet")
	b.Closed("greet", StatusFailed, 3*time.Second)
	if n := testutil.ToFloat64(a.started.WithLabelValues("greet")); n != 2 {
		t.Fatalf("started = %v, want 2", n)
	}
	if n := testutil.CollectAndCount(reg, NameWorkflowDuration); n != 1 {
		t.Fatalf("duration series = %d, want 1", n)
	}
	o := NewOrchestrator(reg)
	o.Conflict()
	o.Decided(time.Now())
	NewSteps(reg).Attempt("echo", AttemptRetrying)
	NewTriggers(reg).Event("greet", "cron", TriggerStarted)
	want := `
# HELP weft_orchestrator_conflicts_total Appends that found the history changed by another writer; the input was processed again on the history read afresh.
# TYPE weft_orchestrator_conflicts_total counter
weft_orchestrator_conflicts_total 1
# HELP weft_step_attempts_total Task attempts run and reported by the executor, by outcome: completed, failed (the step fails), retrying (another attempt follows).
# TYPE weft_step_attempts_total counter
weft_step_attempts_total{outcome="completed",task="echo"} 0
weft_step_attempts_total{outcome="failed",task="echo"} 0
weft_step_attempts_total{outcome="retrying",task="echo"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameConflicts, NameStepAttempts); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var goFound bool
	for _, f := range families {
		goFound = goFound || f.GetName() == "go_goroutines"
	}
	if !goFound {
		t.Fatal("the Go runtime's collector is missing")
	}

	var w *Workflows
	var or *Orchestrator
	var s *Steps
	var tr *Triggers
	w.Started("x")
	w.Closed("x", StatusCompleted, time.Second)
	or.Conflict()
	or.Decided(time.Now())
	s.Attempt("x", AttemptCompleted)
	s.Ran("x", time.Second)
	s.Waited("x", time.Second)
	tr.Event("x", "cron", TriggerError)
	if NewWorkflows(nil) != nil || NewOrchestrator(nil) != nil || NewSteps(nil) != nil || NewTriggers(nil) != nil {
		t.Fatal("a nil registry should give nil recorders")
	}
}

// The backlog is read when scraped; a scrape that cannot read it reports
// none.
func TestBacklog(t *testing.T) {
	reg := NewRegistry()
	var fail bool
	reg.MustRegister(NewBacklog(func(context.Context) (map[string]uint64, error) {
		if fail {
			return nil, errors.New("unreachable")
		}
		return map[string]uint64{"a": 3, "b": 0}, nil
	}))
	want := `
# HELP weft_task_backlog Step commands of a task type waiting for an executor of that type (its task consumer's pending count).
# TYPE weft_task_backlog gauge
weft_task_backlog{task="a"} 3
weft_task_backlog{task="b"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameTaskBacklog); err != nil {
		t.Fatal(err)
	}
	fail = true
	if n := testutil.CollectAndCount(reg, NameTaskBacklog); n != 0 {
		t.Fatalf("%d backlog series from a failed read", n)
	}
}

// API processes sharing a registry report their open calls summed; a nil
// registry records nothing.
func TestWaitingSumsItsSources(t *testing.T) {
	reg := NewRegistry()
	NewWaiting(reg, func() (int, int) { return 2, 1 })
	NewWaiting(reg, func() (int, int) { return 3, 0 })
	NewWaiting(nil, func() (int, int) { panic("a nil registry counts nothing") })
	want := `
# HELP weft_api_calls_waiting AwaitWorkflow (call="await") and WatchWorkflow (call="watch") calls open in the API, waiting for a close or following a history.
# TYPE weft_api_calls_waiting gauge
weft_api_calls_waiting{call="await"} 5
weft_api_calls_waiting{call="watch"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameCallsWaiting); err != nil {
		t.Fatal(err)
	}
}

// The first close of a definition, attempt of a task type or event of a
// trigger makes the series of the other values of its set at zero, so the
// first failure after them is an increase Prometheus sees (a series that
// appears at 1 is no increase to rate or increase, and an alert on the
// first refused trigger event would never fire).
func TestFixedLabelValuesStartAtZero(t *testing.T) {
	reg := NewRegistry()
	NewWorkflows(reg).Closed("greet", StatusCompleted, time.Second)
	NewSteps(reg).Attempt("echo", AttemptCompleted)
	NewTriggers(reg).Event("greet", "webhook", TriggerStarted)
	want := `
# HELP weft_workflows_closed_total Workflow runs closed (completed, failed or canceled), counted by the orchestrator that recorded the close.
# TYPE weft_workflows_closed_total counter
weft_workflows_closed_total{definition="greet",status="canceled"} 0
weft_workflows_closed_total{definition="greet",status="completed"} 1
weft_workflows_closed_total{definition="greet",status="failed"} 0
# HELP weft_step_attempts_total Task attempts run and reported by the executor, by outcome: completed, failed (the step fails), retrying (another attempt follows).
# TYPE weft_step_attempts_total counter
weft_step_attempts_total{outcome="completed",task="echo"} 1
weft_step_attempts_total{outcome="failed",task="echo"} 0
weft_step_attempts_total{outcome="retrying",task="echo"} 0
# HELP weft_trigger_events_total Trigger events handled, by kind (subject, cron, webhook) and outcome (started, existing, skipped, refused, error).
# TYPE weft_trigger_events_total counter
weft_trigger_events_total{definition="greet",kind="webhook",outcome="error"} 0
weft_trigger_events_total{definition="greet",kind="webhook",outcome="existing"} 0
weft_trigger_events_total{definition="greet",kind="webhook",outcome="refused"} 0
weft_trigger_events_total{definition="greet",kind="webhook",outcome="skipped"} 0
weft_trigger_events_total{definition="greet",kind="webhook",outcome="started"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), NameWorkflowsClosed, NameStepAttempts, NameTriggerEvents); err != nil {
		t.Fatal(err)
	}
}
