// Package metrics defines Weft's Prometheus metrics. Each part of Weft
// (orchestrator, executor, API, trigger engine) records what it does itself
// on the registry its Config names, so the same series from several
// processes add up. Label values come from definition names, task types and
// fixed sets of words, never from run ids or payloads.
//
// Every recorder is safe to use when nil: a part without a registry records
// nothing.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names.
const (
	NameWorkflowsStarted = "weft_workflows_started_total"
	NameWorkflowsClosed  = "weft_workflows_closed_total"
	NameWorkflowDuration = "weft_workflow_duration_seconds"
	NameStepsSuspended   = "weft_steps_suspended_total"
	NameStepAttempts     = "weft_step_attempts_total"
	NameStepDuration     = "weft_step_duration_seconds"
	NameScheduleToStart  = "weft_task_schedule_to_start_seconds"
	NameTaskBacklog      = "weft_task_backlog"
	NameTaskHeld         = "weft_task_held_total"
	NameConflicts        = "weft_orchestrator_conflicts_total"
	NameDecision         = "weft_orchestrator_decision_seconds"
	NameCachedStates     = "weft_orchestrator_cached_states"
	NameCachedBytes      = "weft_orchestrator_cached_state_bytes"
	NameTriggerEvents    = "weft_trigger_events_total"
	NameReadWait         = "weft_api_read_wait_seconds"
	NameReadsBehind      = "weft_api_reads_behind_total"
	NameCallsWaiting     = "weft_api_calls_waiting"
)

const (
	labelDefinition = "definition"
	labelStatus     = "status"
	labelTask       = "task"
	labelOutcome    = "outcome"
	labelKind       = "kind"
	labelReason     = "reason"
	// backlogTimeout bounds reading the backlog at a scrape.
	backlogTimeout = 5 * time.Second
)

// Values of the status label of closed workflows.
const (
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusCanceled  = "canceled"
)

// Values of the outcome label of step attempts.
const (
	AttemptCompleted = "completed"
	AttemptFailed    = "failed"
	AttemptRetrying  = "retrying"
)

// The fixed sets of label values. The first time a definition's closes, a
// task type's attempts or a trigger's events are counted, the series of
// every value of the set are made at zero, so that the first failure (say)
// after a series of completions is an increase from zero that rate and
// increase see, not a series that appears at 1.
var (
	Statuses        = []string{StatusCompleted, StatusFailed, StatusCanceled}
	AttemptOutcomes = []string{AttemptCompleted, AttemptFailed, AttemptRetrying}
	TriggerOutcomes = []string{TriggerStarted, TriggerExisting, TriggerSkipped, TriggerRefused, TriggerError}
)

// Values of the reason label of held task deliveries.
const (
	// HeldPaused: the command's definition is paused.
	HeldPaused = "paused"
	// HeldConcurrency: the step's concurrency slots for its key are taken.
	HeldConcurrency = "concurrency"
	// HeldRateLimit: the step's rate limit for its key is used up for the
	// period.
	HeldRateLimit = "rate_limit"
)

// Values of the outcome label of trigger events.
const (
	// TriggerStarted: the event started a run.
	TriggerStarted = "started"
	// TriggerExisting: the event's run already existed (a redelivery, a
	// repeated Idempotency-Key, an id template mapping it onto a run).
	TriggerExisting = "existing"
	// TriggerSkipped: the trigger's filter passed the event by.
	TriggerSkipped = "skipped"
	// TriggerRefused: the event can start no run (a bad payload or
	// signature, a failing expression); trying again cannot help.
	TriggerRefused = "refused"
	// TriggerError: the store failed; the event is tried again (a
	// webhook's sender is answered 503).
	TriggerError = "error"
)

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors, for one process's metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg's metrics in the Prometheus text (or negotiated)
// format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// register registers c on reg, or returns the collector of the same
// description already there (each part registers the metrics it records,
// and parts sharing a process share them).
func register[C prometheus.Collector](reg *prometheus.Registry, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}

var (
	workflowBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600}
	stepBuckets     = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	decisionBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
)

// zeroed makes, once for each set of leading labels, the series of a
// counter with those labels and each of a fixed set of values of its last
// label exist, at zero when new.
type zeroed struct {
	vec    *prometheus.CounterVec
	values []string
	done   sync.Map // the leading labels, joined by zeroSep, already made
}

// zeroSep joins leading labels in zeroed's keys: a byte no label value
// of Weft's names holds.
const zeroSep = "\x00"

// of makes the series of first (the leading labels) with every value.
func (z *zeroed) of(first ...string) {
	key := strings.Join(first, zeroSep)
	if _, ok := z.done.Load(key); ok {
		return
	}
	lvs := append(first[:len(first):len(first)], "")
	for _, v := range z.values {
		lvs[len(lvs)-1] = v
		z.vec.WithLabelValues(lvs...)
	}
	z.done.Store(key, struct{}{})
}

// Workflows records runs started and closed.
type Workflows struct {
	started  *prometheus.CounterVec
	closed   *prometheus.CounterVec
	statuses *zeroed // of closed
	duration *prometheus.HistogramVec
	suspend  *prometheus.CounterVec
}

// NewWorkflows registers the workflow metrics on reg (nil: returns nil,
// which records nothing).
func NewWorkflows(reg *prometheus.Registry) *Workflows {
	if reg == nil {
		return nil
	}
	w := &Workflows{
		started: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameWorkflowsStarted,
			Help: "Workflow runs started, by the part that recorded or asked for the start."}, []string{labelDefinition})),
		closed: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameWorkflowsClosed,
			Help: "Workflow runs closed (completed, failed or canceled), counted by the orchestrator that recorded the close."},
			[]string{labelDefinition, labelStatus})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameWorkflowDuration,
			Help: "Time from a run's start to its close.", Buckets: workflowBuckets}, []string{labelDefinition, labelStatus})),
		suspend: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameStepsSuspended,
			Help: "Task steps suspended when they ran out of attempts (retry exhausted: suspend), suspending their runs."},
			[]string{labelDefinition})),
	}
	w.statuses = &zeroed{vec: w.closed, values: Statuses}
	return w
}

// Suspended counts a step of a run of definition def suspended.
func (w *Workflows) Suspended(def string) {
	if w != nil {
		w.suspend.WithLabelValues(def).Inc()
	}
}

// Started counts a run of definition def started.
func (w *Workflows) Started(def string) {
	if w != nil {
		w.started.WithLabelValues(def).Inc()
	}
}

// Closed counts a run of definition def closed with status (StatusCompleted,
// StatusFailed or StatusCanceled) after running for d.
func (w *Workflows) Closed(def, status string, d time.Duration) {
	if w != nil {
		w.statuses.of(def)
		w.closed.WithLabelValues(def, status).Inc()
		w.duration.WithLabelValues(def, status).Observe(max(d, 0).Seconds())
	}
}

// Orchestrator records how the orchestrator decides.
type Orchestrator struct {
	conflicts    prometheus.Counter
	decision     prometheus.Histogram
	cachedStates prometheus.Gauge
	cachedBytes  prometheus.Gauge
}

// NewOrchestrator registers the orchestrator's metrics on reg (nil:
// returns nil, which records nothing).
func NewOrchestrator(reg *prometheus.Registry) *Orchestrator {
	if reg == nil {
		return nil
	}
	return &Orchestrator{
		conflicts: register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: NameConflicts,
			Help: "Appends that found the history changed by another writer; the input was processed again on the history read afresh."})),
		decision: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameDecision,
			Help: "Time to process one input: load the state, decide, append, follow up.", Buckets: decisionBuckets})),
		cachedStates: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: NameCachedStates,
			Help: "Folded states of running runs the orchestrators keep in memory."})),
		cachedBytes: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: NameCachedBytes,
			Help: "Size of the records the kept states were folded from (what --cache-mib bounds)."})),
	}
}

// Cached counts states kept (states) and their size (bytes) changing by
// the amounts given.
func (o *Orchestrator) Cached(states int, bytes int64) {
	if o != nil {
		o.cachedStates.Add(float64(states))
		o.cachedBytes.Add(float64(bytes))
	}
}

// Conflict counts an append that lost to another writer.
func (o *Orchestrator) Conflict() {
	if o != nil {
		o.conflicts.Inc()
	}
}

// Decided observes the processing of one input that began at start.
func (o *Orchestrator) Decided(start time.Time) {
	if o != nil {
		o.decision.Observe(time.Since(start).Seconds())
	}
}

// Steps records the executor's attempts.
type Steps struct {
	attempts        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	scheduleToStart *prometheus.HistogramVec
	held            *prometheus.CounterVec
	outcomes        *zeroed // of attempts
}

// NewSteps registers the executor's metrics on reg (nil: returns nil, which
// records nothing).
func NewSteps(reg *prometheus.Registry) *Steps {
	if reg == nil {
		return nil
	}
	s := &Steps{
		attempts: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameStepAttempts,
			Help: "Task attempts run and reported by the executor, by outcome: completed, failed (the step fails), retrying (another attempt follows)."},
			[]string{labelTask, labelOutcome})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameStepDuration,
			Help: "Time one attempt's handler ran in the executor.", Buckets: stepBuckets}, []string{labelTask})),
		scheduleToStart: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: NameScheduleToStart,
			Help: "Time from a step command being stored to its handler starting, on the command's first delivery.", Buckets: stepBuckets},
			[]string{labelTask})),
		held: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameTaskHeld,
			Help: "Deliveries of step commands the executor gave back unstarted, by reason (paused: the command's definition is paused; concurrency: the step's concurrency slots for its key are taken; rate_limit: the step's rate limit for its key is used up for the period)."},
			[]string{labelTask, labelReason})),
	}
	s.outcomes = &zeroed{vec: s.attempts, values: AttemptOutcomes}
	return s
}

// Attempt counts an attempt of task type task reported with outcome
// (AttemptCompleted, AttemptFailed or AttemptRetrying).
func (s *Steps) Attempt(task, outcome string) {
	if s != nil {
		s.outcomes.of(task)
		s.attempts.WithLabelValues(task, outcome).Inc()
	}
}

// Ran observes an attempt's handler of task type task that ran for d.
func (s *Steps) Ran(task string, d time.Duration) {
	if s != nil {
		s.duration.WithLabelValues(task).Observe(max(d, 0).Seconds())
	}
}

// Waited observes a command of task type task whose handler started d
// after the command was stored.
func (s *Steps) Waited(task string, d time.Duration) {
	if s != nil {
		s.scheduleToStart.WithLabelValues(task).Observe(max(d, 0).Seconds())
	}
}

// Held counts a delivery of a command of task type task given back
// unstarted for reason (HeldPaused, HeldConcurrency or HeldRateLimit).
func (s *Steps) Held(task, reason string) {
	if s != nil {
		s.held.WithLabelValues(task, reason).Inc()
	}
}

// Triggers records trigger events.
type Triggers struct {
	events   *prometheus.CounterVec
	outcomes *zeroed // of events
}

// NewTriggers registers the trigger metrics on reg (nil: returns nil, which
// records nothing).
func NewTriggers(reg *prometheus.Registry) *Triggers {
	if reg == nil {
		return nil
	}
	t := &Triggers{events: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameTriggerEvents,
		Help: "Trigger events handled, by kind (subject, cron, webhook) and outcome (started, existing, skipped, refused, error)."},
		[]string{labelDefinition, labelKind, labelOutcome}))}
	t.outcomes = &zeroed{vec: t.events, values: TriggerOutcomes}
	return t
}

// Event counts an event of trigger kind ("subject", "cron" or "webhook")
// for definition def with outcome (TriggerStarted and the others).
func (t *Triggers) Event(def, kind, outcome string) {
	if t != nil {
		t.outcomes.of(def, kind)
		t.events.WithLabelValues(def, kind, outcome).Inc()
	}
}

// Reads records how long the API's read calls waited for their turn, and
// the reads of runs found behind the API's follower of histories.
type Reads struct {
	wait   prometheus.Histogram
	behind prometheus.Counter
}

// NewReads registers the API's read metrics on reg (nil: returns nil,
// which records nothing).
func NewReads(reg *prometheus.Registry) *Reads {
	if reg == nil {
		return nil
	}
	return &Reads{
		wait: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{Name: NameReadWait,
			Help:    "Time read calls (GetWorkflow, GetHistory, ListWorkflows, CountWorkflows) waited for their turn among the reads of their kind (of runs; of the listing) an API process answers at once.",
			Buckets: readWaitBuckets})),
		behind: register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: NameReadsBehind,
			Help: "Reads of a run's history that returned less than the API's follower had passed on before they began (the stream answered from behind what it had delivered), and were read again."})),
	}
}

// Behind counts a read of a run found behind the API's follower.
func (r *Reads) Behind() {
	if r != nil {
		r.behind.Inc()
	}
}

// readWaitBuckets run from no wait to seconds.
var readWaitBuckets = []float64{0, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Waited records a read that waited d for its turn.
func (r *Reads) Waited(d time.Duration) {
	if r != nil {
		r.wait.Observe(d.Seconds())
	}
}

// Waiting reports weft_api_calls_waiting at scrape time: the
// AwaitWorkflow and WatchWorkflow calls open in the API processes that
// registered on it, summed.
type Waiting struct {
	desc    *prometheus.Desc
	mu      sync.Mutex
	sources []func() (awaits, watches int)
}

// NewWaiting registers the open calls of an API process on reg, counted by
// count when scraped (nil reg: records nothing). Processes that share reg
// share its series.
func NewWaiting(reg *prometheus.Registry, count func() (awaits, watches int)) {
	if reg == nil {
		return
	}
	w := register(reg, &Waiting{desc: prometheus.NewDesc(NameCallsWaiting,
		"AwaitWorkflow (call=\"await\") and WatchWorkflow (call=\"watch\") calls open in the API, waiting for a close or following a history.",
		[]string{"call"}, nil)})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sources = append(w.sources, count)
}

// Describe implements prometheus.Collector.
func (w *Waiting) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

// Collect implements prometheus.Collector.
func (w *Waiting) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	sources := w.sources
	w.mu.Unlock()
	var awaits, watches int
	for _, count := range sources {
		a, b := count()
		awaits, watches = awaits+a, watches+b
	}
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(awaits), "await")
	ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(watches), "watch")
}

// Backlog reports weft_task_backlog at scrape time: for each task type,
// the step commands waiting for an executor of that type.
type Backlog struct {
	desc *prometheus.Desc
	read func(ctx context.Context) (map[string]uint64, error)
}

// NewBacklog returns a collector of the task types' backlog, read with
// read (the task consumers' NumPending) when scraped. A scrape that cannot
// read it within a few seconds reports none.
func NewBacklog(read func(ctx context.Context) (map[string]uint64, error)) *Backlog {
	return &Backlog{
		desc: prometheus.NewDesc(NameTaskBacklog, "Step commands of a task type waiting for an executor of that type (its task consumer's pending count).",
			[]string{labelTask}, nil),
		read: read,
	}
}

// Describe implements prometheus.Collector.
func (b *Backlog) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector.
func (b *Backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	backlogs, err := b.read(ctx)
	if err != nil {
		return
	}
	for typ, n := range backlogs {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(n), typ)
	}
}
