package workflow_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// t0 is the fixed base time of every history in these tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

const wfID = "wf-1"

// Definitions used across the tests.
const (
	// pipeline: three task steps, each reading the previous one's output.
	pipelineYAML = `
name: pipeline
steps:
  - id: fetch
    task: http.get
    input: { url: "${ input.url }", n: "${ input.n + 1 }" }
    retry: { max_attempts: 4, initial_interval: 2s, backoff_coefficient: 3, max_interval: 30s, non_retryable: [bad_request] }
    timeout: 45s
  - id: transform
    task: upper
    input: "${ steps.fetch.output.body }"
  - id: store
    task: db.put
    input: { key: "${ workflow.id }", value: "${ steps.transform.output }", at: "${ workflow.now }" }
output: { stored: "${ steps.store.output }", size: "${ size(steps.transform.output) }" }
`
	// approval: a task, a wait with a timeout, and a task reading the signal.
	approvalYAML = `
name: approval
steps:
  - id: prepare
    task: prep
  - id: approve
    wait: { signal: approve, timeout: 72h }
  - id: notify
    task: mail
    input: "${ steps.approve.output }"
`
	// twice: two waits on the same signal, without timeouts; no output field.
	twiceYAML = `
name: twice
steps:
  - id: first
    wait: { signal: go }
  - id: second
    wait: { signal: go }
`
	// pair: no output field, so the output is the last step's.
	pairYAML = `
name: pair
steps:
  - id: a
    task: t
  - id: b
    task: t
    input: "${ steps.a.output }"
`
	nullOutputYAML = `
name: nulled
steps:
  - id: a
    task: t
output: null
`
	badInputYAML = `
name: badinput
steps:
  - id: fetch
    task: http.get
    input: { to: "${ input.user.email }" }
`
	badOutputYAML = `
name: badoutput
steps:
  - id: a
    task: t
output: "${ steps.a.output.missing }"
`
)

func parse(tb testing.TB, src string) *definition.Definition {
	tb.Helper()
	d, err := definition.Parse([]byte(src))
	if err != nil {
		tb.Fatalf("parse definition: %v", err)
	}
	return d
}

var defaultRetry = events.RetryPolicy{
	MaxAttempts:        definition.DefaultMaxAttempts,
	InitialInterval:    definition.DefaultInitialInterval,
	BackoffCoefficient: definition.DefaultBackoffCoefficient,
	MaxInterval:        definition.DefaultMaxInterval,
}

var fetchRetry = events.RetryPolicy{MaxAttempts: 4, InitialInterval: 2 * time.Second, BackoffCoefficient: 3,
	MaxInterval: 30 * time.Second, NonRetryable: []string{"bad_request"}}

// pipelineInput is the input of pipeline workflows.
var pipelineInput = map[string]any{"url": "https://example.com/a", "n": int64(41)}

// Event constructors: off is the event's time as an offset from t0.

func started(off time.Duration, input any) events.Event {
	return events.Event{Type: events.TypeWorkflowStarted, Time: at(off), WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: wfID, Definition: "test", Revision: 1, Input: input, RequestID: "req-1"}}
}

func scheduled(off time.Duration, path, task string, input any, retry events.RetryPolicy, timeout time.Duration) events.Event {
	return events.Event{Type: events.TypeStepScheduled, Time: at(off), StepScheduled: &events.StepScheduled{
		Path: path, Gen: 1, Task: task, Input: input, Retry: retry, Timeout: timeout,
		IdempotencyKey: wfID + "/" + path, FirstAttempt: 1}}
}

// task schedules a step with the default retry policy and timeout.
func task(off time.Duration, path, taskType string, input any) events.Event {
	return scheduled(off, path, taskType, input, defaultRetry, definition.DefaultTimeout)
}

func completed(off time.Duration, path string, attempt int, out any) events.Event {
	return events.Event{Type: events.TypeStepCompleted, Time: at(off), StepCompleted: &events.StepCompleted{
		Path: path, Gen: 1, Attempt: attempt, Output: out}}
}

func attemptFailed(off time.Duration, path string, attempt int, typ, msg string) events.Event {
	return events.Event{Type: events.TypeStepAttemptFailed, Time: at(off), StepAttemptFailed: &events.StepAttemptFailed{
		Path: path, Gen: 1, Attempt: attempt, Error: events.Error{Message: msg, Type: typ}, RetryDelay: time.Second}}
}

func failed(off time.Duration, path string, attempt int, typ, msg string) events.Event {
	return events.Event{Type: events.TypeStepFailed, Time: at(off), StepFailed: &events.StepFailed{
		Path: path, Gen: 1, Attempt: attempt, Error: events.Error{Message: msg, Type: typ}}}
}

func waitStarted(off time.Duration, path, signal string, timeout time.Duration) events.Event {
	w := &events.WaitStarted{Path: path, Signal: signal}
	if timeout > 0 {
		w.TimeoutAt, w.TimerID = at(off+timeout), workflow.TimerID(path, 1)
	}
	return events.Event{Type: events.TypeWaitStarted, Time: at(off), WaitStarted: w}
}

func signal(off time.Duration, name string, payload any) events.Event {
	return events.Event{Type: events.TypeSignalReceived, Time: at(off), SignalReceived: &events.SignalReceived{
		Name: name, Payload: payload}}
}

// signaled is the decision that completes wait path with the signal at
// history index seq.
func signaled(off time.Duration, path string, payload any, seq int) events.Event {
	return events.Event{Type: events.TypeStepCompleted, Time: at(off), StepCompleted: &events.StepCompleted{
		Path: path, Output: payload, SignalSeq: seq}}
}

func timerFired(off time.Duration, path string, due time.Time) events.Event {
	return events.Event{Type: events.TypeTimerFired, Time: at(off), TimerFired: &events.TimerFired{
		TimerID: workflow.TimerID(path, 1), Path: path, Due: due}}
}

func timedOut(off time.Duration, path, sig string, due time.Time) events.Event {
	return events.Event{Type: events.TypeStepFailed, Time: at(off), StepFailed: &events.StepFailed{Path: path,
		Error: events.Error{Type: workflow.ErrTypeTimeout, Message: fmt.Sprintf("no %q signal before %s", sig, due.Format(time.RFC3339))}}}
}

func cancelRequested(off time.Duration, reason string) events.Event {
	return events.Event{Type: events.TypeCancelRequested, Time: at(off), CancelRequested: &events.CancelRequested{Reason: reason}}
}

func wfCompleted(off time.Duration, out any) events.Event {
	return events.Event{Type: events.TypeWorkflowCompleted, Time: at(off), WorkflowCompleted: &events.WorkflowCompleted{Output: out}}
}

func wfFailed(off time.Duration, path, typ, msg string) events.Event {
	return events.Event{Type: events.TypeWorkflowFailed, Time: at(off), WorkflowFailed: &events.WorkflowFailed{
		Error: events.Error{Message: msg, Type: typ}, Path: path}}
}

func wfCanceled(off time.Duration, reason string) events.Event {
	return events.Event{Type: events.TypeWorkflowCanceled, Time: at(off), WorkflowCanceled: &events.WorkflowCanceled{Reason: reason}}
}

func hist(evs ...events.Event) []events.Event { return evs }

// cat returns a new history: h followed by evs.
func cat(h []events.Event, evs ...events.Event) []events.Event {
	return append(slices.Clone(h), evs...)
}

func fold(tb testing.TB, h []events.Event) *workflow.State {
	tb.Helper()
	st, err := workflow.Fold(h)
	if err != nil {
		tb.Fatalf("Fold: %v", err)
	}
	return st
}

// showEvents renders events with their payloads for failure messages.
func showEvents(evs []events.Event) string {
	if len(evs) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, e := range evs {
		fmt.Fprintf(&b, "\n  [%d] %s@%s %+v", i, e.Type, e.Time.Format(time.RFC3339Nano), e.Payload())
	}
	return b.String()
}

func sameEvents(a, b []events.Event) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// wantStep is the part of a Step a Fold test checks.
type wantStep struct {
	Status   workflow.StepStatus
	Gen      int
	Attempts int
	Output   any
	LastErr  *events.Error
	TimedOut bool
	Signal   string
	TimerID  string
}

type wantState struct {
	Status          workflow.Status
	Steps           map[string]wantStep
	Order           []string
	Consumed        []bool // Signals[i].Consumed
	Output          any
	Err             *events.Error
	ErrPath         string
	CancelRequested bool
	Now             time.Time
	Events          int
}

func checkState(t *testing.T, st *workflow.State, want wantState) {
	t.Helper()
	if st.Status != want.Status {
		t.Errorf("Status = %q, want %q", st.Status, want.Status)
	}
	if len(st.Steps) != len(want.Steps) {
		t.Errorf("%d steps, want %d", len(st.Steps), len(want.Steps))
	}
	for path, ws := range want.Steps {
		s := st.Steps[path]
		if s == nil {
			t.Errorf("no step %q", path)
			continue
		}
		if s.Path != path {
			t.Errorf("step %q: Path = %q", path, s.Path)
		}
		got := wantStep{Status: s.Status, Gen: s.Gen, Attempts: s.Attempts, Output: s.Output, LastErr: s.LastError,
			TimedOut: s.TimedOut, Signal: s.Signal, TimerID: s.TimerID}
		if !reflect.DeepEqual(got, ws) {
			t.Errorf("step %q:\n got %+v\nwant %+v", path, got, ws)
		}
	}
	if want.Order != nil && !reflect.DeepEqual(st.Order, want.Order) {
		t.Errorf("Order = %v, want %v", st.Order, want.Order)
	}
	var consumed []bool
	for _, s := range st.Signals {
		consumed = append(consumed, s.Consumed)
	}
	if !reflect.DeepEqual(consumed, want.Consumed) {
		t.Errorf("signals consumed = %v, want %v", consumed, want.Consumed)
	}
	if !reflect.DeepEqual(st.Output, want.Output) {
		t.Errorf("Output = %#v, want %#v", st.Output, want.Output)
	}
	if !reflect.DeepEqual(st.Error, want.Err) {
		t.Errorf("Error = %+v, want %+v", st.Error, want.Err)
	}
	if st.ErrorPath != want.ErrPath {
		t.Errorf("ErrorPath = %q, want %q", st.ErrorPath, want.ErrPath)
	}
	if st.CancelRequested != want.CancelRequested {
		t.Errorf("CancelRequested = %v, want %v", st.CancelRequested, want.CancelRequested)
	}
	if !st.Now.Equal(want.Now) {
		t.Errorf("Now = %v, want %v", st.Now, want.Now)
	}
	if st.Events != want.Events {
		t.Errorf("Events = %d, want %d", st.Events, want.Events)
	}
}

func TestFold(t *testing.T) {
	io := &events.Error{Message: "refused", Type: "io"}
	tests := []struct {
		name string
		h    []events.Event
		want wantState
	}{
		{
			name: "started",
			h:    hist(started(0, pipelineInput)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{}, Now: at(0), Events: 1},
		},
		{
			name: "scheduled step runs",
			h:    hist(started(0, nil), task(0, "a", "t", nil)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepRunning, Gen: 1}}, Order: []string{"a"}, Now: at(0), Events: 2},
		},
		{
			name: "attempt failure keeps the step running and records attempts and the last error",
			h: hist(started(0, nil), task(0, "a", "t", nil),
				attemptFailed(time.Second, "a", 1, "timeout", "slow"),
				attemptFailed(3*time.Second, "a", 2, "io", "refused")),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepRunning, Gen: 1, Attempts: 2, LastErr: io}}, Now: at(3 * time.Second), Events: 4},
		},
		{
			name: "attempts never go back",
			h: hist(started(0, nil), task(0, "a", "t", nil),
				attemptFailed(time.Second, "a", 3, "io", "refused"),
				attemptFailed(2*time.Second, "a", 2, "io", "refused")),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepRunning, Gen: 1, Attempts: 3, LastErr: io}}, Now: at(2 * time.Second), Events: 4},
		},
		{
			name: "completed step has its output",
			h: hist(started(0, nil), task(0, "a", "t", nil),
				completed(2*time.Second, "a", 2, map[string]any{"x": int64(1)})),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepCompleted, Gen: 1, Attempts: 2, Output: map[string]any{"x": int64(1)}}},
				Now: at(2 * time.Second), Events: 3},
		},
		{
			name: "failed step has its error",
			h: hist(started(0, nil), task(0, "a", "t", nil),
				failed(time.Second, "a", 3, "io", "refused")),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepFailed, Gen: 1, Attempts: 3, LastErr: io}}, Now: at(time.Second), Events: 3},
		},
		{
			name: "workflow failed",
			h: hist(started(0, nil), task(0, "a", "t", nil), failed(time.Second, "a", 3, "io", "refused"),
				wfFailed(time.Second, "a", "io", "step a: refused")),
			want: wantState{Status: workflow.StatusFailed, Steps: map[string]wantStep{
				"a": {Status: workflow.StepFailed, Gen: 1, Attempts: 3, LastErr: io}},
				Err: &events.Error{Message: "step a: refused", Type: "io"}, ErrPath: "a", Now: at(time.Second), Events: 4},
		},
		{
			name: "workflow completed",
			h: hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, "out"),
				wfCompleted(time.Second, "out")),
			want: wantState{Status: workflow.StatusCompleted, Steps: map[string]wantStep{
				"a": {Status: workflow.StepCompleted, Gen: 1, Attempts: 1, Output: "out"}},
				Output: "out", Now: at(time.Second), Events: 4},
		},
		{
			name: "wait started",
			h:    hist(started(0, nil), waitStarted(time.Second, "w", "approve", time.Hour)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"w": {Status: workflow.StepWaiting, Gen: 1, Signal: "approve", TimerID: "t1_w"}}, Now: at(time.Second), Events: 2},
		},
		{
			name: "signals are recorded, consumed once a wait takes them",
			h: hist(started(0, nil), signal(time.Second, "other", 1), signal(2*time.Second, "approve", "yes"),
				waitStarted(3*time.Second, "w", "approve", 0), signaled(3*time.Second, "w", "yes", 3)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"w": {Status: workflow.StepCompleted, Gen: 1, Signal: "approve", Output: "yes"}},
				Consumed: []bool{false, true}, Now: at(3 * time.Second), Events: 5},
		},
		{
			name: "timer fired times the wait out",
			h: hist(started(0, nil), waitStarted(0, "w", "approve", time.Hour),
				timerFired(time.Hour, "w", at(time.Hour))),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"w": {Status: workflow.StepWaiting, Gen: 1, Signal: "approve", TimerID: "t1_w", TimedOut: true}}, Now: at(time.Hour), Events: 3},
		},
		{
			name: "timer of another id is ignored",
			h: hist(started(0, nil), waitStarted(0, "w", "approve", time.Hour),
				events.Event{Type: events.TypeTimerFired, Time: at(time.Hour), TimerFired: &events.TimerFired{TimerID: "t1_x", Path: "w"}}),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"w": {Status: workflow.StepWaiting, Gen: 1, Signal: "approve", TimerID: "t1_w"}}, Now: at(time.Hour), Events: 3},
		},
		{
			name: "timer of a completed wait is ignored",
			h: hist(started(0, nil), waitStarted(0, "w", "approve", time.Hour), signal(time.Minute, "approve", nil),
				signaled(time.Minute, "w", nil, 3), timerFired(time.Hour, "w", at(time.Hour))),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"w": {Status: workflow.StepCompleted, Gen: 1, Signal: "approve", TimerID: "t1_w"}},
				Consumed: []bool{true}, Now: at(time.Hour), Events: 5},
		},
		{
			name: "cancel requested",
			h:    hist(started(0, nil), task(0, "a", "t", nil), cancelRequested(time.Second, "stop")),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{
				"a": {Status: workflow.StepRunning, Gen: 1}}, CancelRequested: true, Now: at(time.Second), Events: 3},
		},
		{
			name: "workflow canceled cancels running and waiting steps, not finished ones",
			h: hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, "out"),
				task(time.Second, "b", "t", nil), waitStarted(time.Second, "w", "go", 0),
				cancelRequested(2*time.Second, "stop"), wfCanceled(2*time.Second, "stop")),
			want: wantState{Status: workflow.StatusCanceled, Steps: map[string]wantStep{
				"a": {Status: workflow.StepCompleted, Gen: 1, Attempts: 1, Output: "out"},
				"b": {Status: workflow.StepCanceled, Gen: 1},
				"w": {Status: workflow.StepCanceled, Gen: 1, Signal: "go"}},
				Order: []string{"a", "b", "w"}, CancelRequested: true, Now: at(2 * time.Second), Events: 7},
		},
		{
			name: "cancel after the end is ignored",
			h: hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, "out"),
				wfCompleted(time.Second, "out"), cancelRequested(time.Minute, "late"), signal(time.Hour, "late", nil)),
			want: wantState{Status: workflow.StatusCompleted, Steps: map[string]wantStep{
				"a": {Status: workflow.StepCompleted, Gen: 1, Attempts: 1, Output: "out"}},
				Output: "out", Consumed: []bool{false}, Now: at(time.Hour), Events: 6},
		},
		{
			name: "a repeated signal request is recorded once",
			h: hist(started(0, nil),
				events.Event{Type: events.TypeSignalReceived, Time: at(time.Second), SignalReceived: &events.SignalReceived{Name: "s", RequestID: "r1"}},
				events.Event{Type: events.TypeSignalReceived, Time: at(2 * time.Second), SignalReceived: &events.SignalReceived{Name: "s", RequestID: "r1"}},
				events.Event{Type: events.TypeSignalReceived, Time: at(3 * time.Second), SignalReceived: &events.SignalReceived{Name: "s", RequestID: "r2"}},
				signal(4*time.Second, "s", nil), signal(5*time.Second, "s", nil)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{}, Consumed: []bool{false, false, false, false},
				Now: at(5 * time.Second), Events: 6},
		},
		{
			name: "Now never goes back",
			h:    hist(started(time.Hour, nil), signal(time.Minute, "s", nil)),
			want: wantState{Status: workflow.StatusRunning, Steps: map[string]wantStep{}, Consumed: []bool{false}, Now: at(time.Hour), Events: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkState(t, fold(t, tc.h), tc.want)
		})
	}
}

func TestFoldStarted(t *testing.T) {
	st := fold(t, hist(started(5*time.Second, pipelineInput)))
	if st.ID != wfID || st.Definition != "test" || st.Revision != 1 || st.RequestID != "req-1" ||
		!reflect.DeepEqual(st.Input, pipelineInput) || !st.Created.Equal(at(5*time.Second)) || !st.Closed.IsZero() {
		t.Errorf("started state = %+v", st)
	}
	st = fold(t, hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, nil), wfCompleted(2*time.Second, nil)))
	if !st.Closed.Equal(at(2 * time.Second)) {
		t.Errorf("Closed = %v, want %v", st.Closed, at(2*time.Second))
	}
	if s := st.Steps["a"]; !s.Started.Equal(at(0)) || !s.Closed.Equal(at(time.Second)) || s.Task != "t" {
		t.Errorf("step a = %+v", s)
	}
}

// Histories recorded before events carried an identity decode and fold
// as they did, and an identity changes nothing in the fold but who
// started the run (State.StartedBy).
func TestFoldWithoutIdentity(t *testing.T) {
	old, err := msgpack.Marshal(map[string]any{"v": 1, "e": []any{
		map[string]any{"t": "WorkflowStarted", "at": t0, "ws": map[string]any{"id": wfID, "def": "test", "rev": 1, "in": nil, "req": "req-1"}},
		map[string]any{"t": "SignalReceived", "at": at(time.Second), "sr": map[string]any{"n": "go", "pl": "x", "req": "s-1"}},
		map[string]any{"t": "CancelRequested", "at": at(2 * time.Second), "cr": map[string]any{"r": "done"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := events.Decode(old)
	if err != nil {
		t.Fatalf("Decode of a record without identities: %v", err)
	}
	without := fold(t, rec.Events)
	if without.ID != wfID || !without.SignalSeen("s-1") || !without.CancelRequested {
		t.Fatalf("folded %+v", without)
	}
	with := slices.Clone(rec.Events)
	for i, who := range []string{"alice", "bob", "carol"} {
		with[i].Identity = who
	}
	got := fold(t, with)
	if without.StartedBy != "" || got.StartedBy != "alice" {
		t.Errorf("StartedBy = %q without identities, %q with; want \"\" and alice", without.StartedBy, got.StartedBy)
	}
	got.StartedBy = ""
	if !reflect.DeepEqual(got, without) {
		t.Errorf("identities changed the fold:\n got %+v\nwant %+v", got, without)
	}
}

func TestFoldRejects(t *testing.T) {
	tests := []struct {
		name string
		h    []events.Event
	}{
		{"starts with a step", hist(task(0, "a", "t", nil))},
		{"starts with a signal", hist(signal(0, "s", nil), started(0, nil))},
		{"starts with an unknown type", hist(events.Event{Type: "Bogus", Time: t0})},
		{"unknown event type", hist(started(0, nil), events.Event{Type: "StepExploded", Time: t0})},
		{"missing payload", hist(started(0, nil), events.Event{Type: events.TypeStepScheduled, Time: t0})},
		{"started without its payload", hist(events.Event{Type: events.TypeWorkflowStarted, Time: t0})},
		{"second WorkflowStarted", hist(started(0, nil), task(0, "a", "t", nil), started(time.Second, nil))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := workflow.Fold(tc.h)
			if !errors.Is(err, workflow.ErrInvalidHistory) {
				t.Fatalf("Fold error = %v, want ErrInvalidHistory", err)
			}
			if st != nil {
				t.Errorf("Fold returned a state with its error: %+v", st)
			}
		})
	}
}

func TestFoldEmpty(t *testing.T) {
	st, err := workflow.Fold(nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != "" || st.Status.Terminal() {
		t.Errorf("empty history: Status = %q", st.Status)
	}
	if evs := workflow.Decide(st, parse(t, pairYAML)); len(evs) != 0 {
		t.Errorf("Decide on an empty history = %s", showEvents(evs))
	}
}

func TestStatusTerminal(t *testing.T) {
	for s, want := range map[workflow.Status]bool{
		"": false, workflow.StatusRunning: false,
		workflow.StatusCompleted: true, workflow.StatusFailed: true, workflow.StatusCanceled: true,
	} {
		if got := s.Terminal(); got != want {
			t.Errorf("%q.Terminal() = %v, want %v", s, got, want)
		}
	}
}

func TestTimerID(t *testing.T) {
	tests := []struct {
		path string
		gen  int
		want string
	}{
		{"approve", 1, "t1_approve"},
		{"approve", 2, "t2_approve"},
		{"approve-2_x", 1, "t1_approve-2_x"},
		{"items[3].charge", 1, "t1_items[3]_charge"},
		{"a b*c>d.e", 3, "t3_a_b_c_d_e"},
	}
	for _, tc := range tests {
		if got := workflow.TimerID(tc.path, tc.gen); got != tc.want {
			t.Errorf("TimerID(%q, %d) = %q, want %q", tc.path, tc.gen, got, tc.want)
		}
	}
	if a, b := workflow.TimerID("a.b", 1), workflow.TimerID("a.b", 2); a == b {
		t.Errorf("two waitings of one step share timer id %q", a)
	}
}

// pipelineDone is a pipeline history in which every step completed.
func pipelineDone() []events.Event {
	return hist(started(0, pipelineInput),
		scheduled(0, "fetch", "http.get", map[string]any{"url": "https://example.com/a", "n": int64(42)}, fetchRetry, 45*time.Second),
		completed(5*time.Second, "fetch", 1, map[string]any{"status": int64(200), "body": "hello"}),
		task(5*time.Second, "transform", "upper", "hello"),
		completed(9*time.Second, "transform", 1, "HELLO"),
		task(9*time.Second, "store", "db.put", map[string]any{"key": wfID, "value": "HELLO", "at": "2025-03-01T12:00:09Z"}),
		completed(12*time.Second, "store", 1, "ok"))
}

// approvalWaiting is an approval history whose wait started at 10s.
func approvalWaiting() []events.Event {
	return hist(started(0, nil), task(0, "prepare", "prep", nil),
		completed(10*time.Second, "prepare", 1, "ready"),
		waitStarted(10*time.Second, "approve", "approve", 72*time.Hour))
}

func TestAdvance(t *testing.T) {
	due := at(72*time.Hour + 10*time.Second)
	tests := []struct {
		name string
		def  string
		h    []events.Event
		want []events.Event
		// check, when set, replaces the comparison with want.
		check func(t *testing.T, got []events.Event)
	}{
		{
			name: "start schedules the first step with its evaluated input",
			def:  pipelineYAML,
			h:    hist(started(0, pipelineInput)),
			want: hist(scheduled(0, "fetch", "http.get", map[string]any{"url": "https://example.com/a", "n": int64(42)}, fetchRetry, 45*time.Second)),
		},
		{
			name: "start later uses the time of the last event",
			def:  pairYAML,
			h:    hist(started(7*time.Second, nil)),
			want: hist(task(7*time.Second, "a", "t", nil)),
		},
		{
			name: "running step waits",
			def:  pipelineYAML,
			h:    pipelineDone()[:2],
		},
		{
			name: "failed attempt waits for the retry",
			def:  pipelineYAML,
			h:    cat(pipelineDone()[:2], attemptFailed(time.Second, "fetch", 1, "io", "refused")),
		},
		{
			name: "completed step schedules the next with input from its output",
			def:  pipelineYAML,
			h:    pipelineDone()[:3],
			want: pipelineDone()[3:4],
		},
		{
			name: "inputs read workflow.id and workflow.now",
			def:  pipelineYAML,
			h:    pipelineDone()[:5],
			want: pipelineDone()[5:6],
		},
		{
			name: "last step completes the workflow with the output template",
			def:  pipelineYAML,
			h:    pipelineDone(),
			want: hist(wfCompleted(12*time.Second, map[string]any{"stored": "ok", "size": int64(5)})),
		},
		{
			name: "without output the workflow's output is the last step's",
			def:  pairYAML,
			h: hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, []any{int64(1)}),
				task(time.Second, "b", "t", []any{int64(1)}), completed(2*time.Second, "b", 1, map[string]any{"x": int64(2)})),
			want: hist(wfCompleted(2*time.Second, map[string]any{"x": int64(2)})),
		},
		{
			name: "output: null is null",
			def:  nullOutputYAML,
			h:    hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, "out")),
			want: hist(wfCompleted(time.Second, nil)),
		},
		{
			name: "a completed first step schedules the second with its output",
			def:  pairYAML,
			h:    hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, "x")),
			want: hist(task(time.Second, "b", "t", "x")),
		},
		{
			name: "failed step fails the workflow",
			def:  pipelineYAML,
			h:    cat(pipelineDone()[:2], failed(3*time.Second, "fetch", 1, "bad_request", "400 Bad Request")),
			want: hist(wfFailed(3*time.Second, "fetch", "bad_request", "step fetch: 400 Bad Request")),
		},
		{
			name: "wait step starts its wait and timer",
			def:  approvalYAML,
			h:    approvalWaiting()[:3],
			want: hist(events.Event{Type: events.TypeWaitStarted, Time: at(10 * time.Second), WaitStarted: &events.WaitStarted{
				Path: "approve", Signal: "approve", TimeoutAt: due, TimerID: "t1_approve"}}),
		},
		{
			name: "wait without timeout has no timer",
			def:  twiceYAML,
			h:    hist(started(time.Second, nil)),
			want: hist(events.Event{Type: events.TypeWaitStarted, Time: at(time.Second), WaitStarted: &events.WaitStarted{
				Path: "first", Signal: "go"}}),
		},
		{
			name: "waiting step waits",
			def:  approvalYAML,
			h:    approvalWaiting(),
		},
		{
			name: "signal completes the wait and the next step reads it",
			def:  approvalYAML,
			h:    cat(approvalWaiting(), signal(time.Hour, "approve", map[string]any{"ok": true})),
			want: hist(signaled(time.Hour, "approve", map[string]any{"ok": true}, 5),
				task(time.Hour, "notify", "mail", map[string]any{"ok": true})),
		},
		{
			name: "signal of another name is ignored",
			def:  approvalYAML,
			h:    cat(approvalWaiting(), signal(time.Hour, "reject", true), signal(2*time.Hour, "approve.v2", true)),
		},
		{
			name: "signal received before the wait is consumed when it starts",
			def:  approvalYAML,
			h: hist(started(0, nil), task(0, "prepare", "prep", nil), signal(time.Second, "approve", "early"),
				completed(10*time.Second, "prepare", 1, "ready")),
			want: hist(waitStarted(10*time.Second, "approve", "approve", 72*time.Hour),
				signaled(10*time.Second, "approve", "early", 3),
				task(10*time.Second, "notify", "mail", "early")),
		},
		{
			name: "a signal completes one wait only",
			def:  twiceYAML,
			h:    hist(started(0, nil), signal(time.Second, "go", int64(1))),
			want: hist(waitStarted(time.Second, "first", "go", 0), signaled(time.Second, "first", int64(1), 2),
				waitStarted(time.Second, "second", "go", 0)),
		},
		{
			name: "the second wait takes the second signal",
			def:  twiceYAML,
			h: hist(started(0, nil), signal(time.Second, "go", int64(1)), waitStarted(time.Second, "first", "go", 0),
				signaled(time.Second, "first", int64(1), 2), waitStarted(time.Second, "second", "go", 0),
				signal(time.Minute, "go", int64(2))),
			want: hist(signaled(time.Minute, "second", int64(2), 6), wfCompleted(time.Minute, int64(2))),
		},
		{
			name: "signals are taken in order",
			def:  twiceYAML,
			h:    hist(started(0, nil), signal(time.Second, "go", "a"), signal(2*time.Second, "go", "b"), signal(3*time.Second, "go", "c")),
			want: hist(waitStarted(3*time.Second, "first", "go", 0), signaled(3*time.Second, "first", "a", 2),
				waitStarted(3*time.Second, "second", "go", 0), signaled(3*time.Second, "second", "b", 3),
				wfCompleted(3*time.Second, "b")),
		},
		{
			name: "timer fired fails the wait with a timeout and the workflow with it",
			def:  approvalYAML,
			h:    cat(approvalWaiting(), timerFired(72*time.Hour+11*time.Second, "approve", due)),
			want: hist(timedOut(72*time.Hour+11*time.Second, "approve", "approve", due),
				wfFailed(72*time.Hour+11*time.Second, "approve", workflow.ErrTypeTimeout,
					`step approve: no "approve" signal before 2025-03-04T12:00:10Z`)),
		},
		{
			name: "cancel requested cancels the workflow",
			def:  pipelineYAML,
			h:    cat(pipelineDone()[:2], cancelRequested(time.Second, "stop")),
			want: hist(wfCanceled(time.Second, "stop")),
		},
		{
			name: "cancel requested cancels a waiting workflow",
			def:  approvalYAML,
			h:    cat(approvalWaiting(), cancelRequested(time.Hour, "")),
			want: hist(wfCanceled(time.Hour, "")),
		},
		{
			name: "cancel wins over a pending decision",
			def:  pipelineYAML,
			h:    cat(pipelineDone()[:3], cancelRequested(6*time.Second, "stop")),
			want: hist(wfCanceled(6*time.Second, "stop")),
		},
		{
			name: "completed workflow decides nothing",
			def:  pipelineYAML,
			h:    cat(pipelineDone(), wfCompleted(12*time.Second, "x")),
		},
		{
			name: "failed workflow decides nothing",
			def:  pipelineYAML,
			h: cat(pipelineDone()[:2], failed(3*time.Second, "fetch", 1, "x", "y"),
				wfFailed(3*time.Second, "fetch", "x", "step fetch: y"), signal(time.Hour, "s", nil)),
		},
		{
			name: "canceled workflow decides nothing",
			def:  approvalYAML,
			h:    cat(approvalWaiting(), cancelRequested(time.Hour, ""), wfCanceled(time.Hour, ""), signal(2*time.Hour, "approve", nil)),
		},
		{
			name: "input failing at run time fails the step as an expression error",
			def:  badInputYAML,
			h:    hist(started(time.Second, map[string]any{"name": "ann"})),
			check: func(t *testing.T, got []events.Event) {
				if len(got) != 2 || got[0].Type != events.TypeStepFailed || got[1].Type != events.TypeWorkflowFailed {
					t.Fatalf("decided %s, want StepFailed and WorkflowFailed", showEvents(got))
				}
				sf, wf := got[0].StepFailed, got[1].WorkflowFailed
				if sf.Path != "fetch" || sf.Error.Type != workflow.ErrTypeExpression || !strings.Contains(sf.Error.Message, "no such key") ||
					!strings.Contains(sf.Error.Message, "input.to") {
					t.Errorf("StepFailed = %+v", sf)
				}
				if wf.Path != "fetch" || wf.Error.Type != workflow.ErrTypeExpression || wf.Error.Message != "step fetch: "+sf.Error.Message {
					t.Errorf("WorkflowFailed = %+v", wf)
				}
				for _, e := range got {
					if !e.Time.Equal(at(time.Second)) {
						t.Errorf("%s at %v, want %v", e.Type, e.Time, at(time.Second))
					}
				}
			},
		},
		{
			name: "output failing at run time fails the workflow as an expression error",
			def:  badOutputYAML,
			h:    hist(started(0, nil), task(0, "a", "t", nil), completed(time.Second, "a", 1, map[string]any{})),
			check: func(t *testing.T, got []events.Event) {
				if len(got) != 1 || got[0].Type != events.TypeWorkflowFailed {
					t.Fatalf("decided %s, want WorkflowFailed", showEvents(got))
				}
				wf := got[0].WorkflowFailed
				if wf.Path != "" || wf.Error.Type != workflow.ErrTypeExpression || !strings.HasPrefix(wf.Error.Message, "output: ") ||
					!strings.Contains(wf.Error.Message, "no such key") {
					t.Errorf("WorkflowFailed = %+v", wf)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def := parse(t, tc.def)
			st := fold(t, tc.h)
			now := st.Now
			// Decide returns a first part of what Advance decides.
			first := workflow.Decide(st, def)
			got, err := workflow.Advance(st, def)
			if err != nil {
				t.Fatalf("Advance: %v", err)
			}
			if len(first) > len(got) || !sameEvents(first, got[:len(first)]) || (len(first) == 0) != (len(got) == 0) {
				t.Errorf("Decide = %s, not a first part of Advance = %s", showEvents(first), showEvents(got))
			}
			for _, e := range got {
				if !e.Time.Equal(now) {
					t.Errorf("decided %s at %v, want State.Now %v", e.Type, e.Time, now)
				}
				if err := e.Validate(); err != nil {
					t.Errorf("decided an invalid event: %v", err)
				}
			}
			if tc.check != nil {
				tc.check(t, got)
			} else if !sameEvents(got, tc.want) {
				t.Errorf("Advance decided %s\nwant %s", showEvents(got), showEvents(tc.want))
			}
			// Advance applied what it decided: nothing more follows.
			if more := workflow.Decide(st, def); len(more) != 0 {
				t.Errorf("Decide after Advance = %s", showEvents(more))
			}
			if st.Events != len(tc.h)+len(got) {
				t.Errorf("state holds %d events, want %d", st.Events, len(tc.h)+len(got))
			}
		})
	}
}

func TestAdvanceCancelClosesSteps(t *testing.T) {
	def := parse(t, approvalYAML)
	st := fold(t, cat(approvalWaiting(), cancelRequested(time.Hour, "stop")))
	if _, err := workflow.Advance(st, def); err != nil {
		t.Fatal(err)
	}
	if st.Status != workflow.StatusCanceled || !st.Closed.Equal(at(time.Hour)) {
		t.Errorf("Status = %q closed %v, want CANCELED at %v", st.Status, st.Closed, at(time.Hour))
	}
	if s := st.Steps["approve"]; s.Status != workflow.StepCanceled || !s.Closed.Equal(at(time.Hour)) {
		t.Errorf("wait step = %+v, want canceled", s)
	}
	if s := st.Steps["prepare"]; s.Status != workflow.StepCompleted {
		t.Errorf("completed step = %+v, want it to stay completed", s)
	}
}

func TestDecideDoesNotChangeState(t *testing.T) {
	def := parse(t, pipelineYAML)
	h := pipelineDone()[:3]
	st := fold(t, h)
	before := fold(t, h)
	for range 3 {
		a, b := workflow.Decide(st, def), workflow.Decide(st, def)
		if !sameEvents(a, b) {
			t.Fatalf("Decide is not deterministic: %s then %s", showEvents(a), showEvents(b))
		}
	}
	if !reflect.DeepEqual(st, before) {
		t.Errorf("Decide changed the state")
	}
}

func TestScope(t *testing.T) {
	st := fold(t, cat(pipelineDone()[:4], waitStarted(6*time.Second, "w", "s", 0)))
	sc := st.Scope()
	want := definition.Scope{Input: pipelineInput, WorkflowID: wfID, Now: at(6 * time.Second),
		Steps: map[string]any{"fetch": map[string]any{"status": int64(200), "body": "hello"}}, Vars: map[string]any{}}
	if !reflect.DeepEqual(sc, want) {
		t.Errorf("Scope() = %+v, want %+v", sc, want)
	}
}

func TestAcceptResult(t *testing.T) {
	running := cat(pipelineDone()[:2], attemptFailed(time.Second, "fetch", 1, "io", "refused"))
	res := func(path string, gen, attempt int, o events.Outcome) events.Result {
		r := events.Result{V: 1, WorkflowID: wfID, Path: path, Gen: gen, Attempt: attempt, Outcome: o, Time: at(time.Minute)}
		switch o {
		case events.OutcomeCompleted:
			r.Output = map[string]any{"body": "hi"}
		case events.OutcomeAttemptFailed:
			r.Error, r.RetryDelay = &events.Error{Message: "refused", Type: "io"}, 6*time.Second
		case events.OutcomeFailed:
			r.Error = &events.Error{Message: "nope", Type: "bad_request"}
		}
		return r
	}
	// A parallel step whose branch "left" failed the workflow while "right" runs.
	fanFailed := hist(started(0, nil),
		events.Event{Type: events.TypeStepStarted, Time: at(0), StepStarted: &events.StepStarted{Path: "fan", Kind: "parallel"}},
		task(0, "left", "t", nil), task(0, "right", "t", nil),
		failed(time.Second, "left", 1, "x", "boom"),
		events.Event{Type: events.TypeStepFailed, Time: at(time.Second), StepFailed: &events.StepFailed{Path: "fan",
			Error: events.Error{Message: "step left: boom", Type: "x"}}},
		wfFailed(time.Second, "fan", "x", "step fan: step left: boom"))
	tests := []struct {
		name string
		h    []events.Event
		r    events.Result
		ok   bool
	}{
		{"completion", running, res("fetch", 1, 2, events.OutcomeCompleted), true},
		{"completion of a first attempt", pipelineDone()[:2], res("fetch", 1, 1, events.OutcomeCompleted), true},
		{"next attempt failure", running, res("fetch", 1, 2, events.OutcomeAttemptFailed), true},
		{"attempt failure beyond the next", running, res("fetch", 1, 4, events.OutcomeAttemptFailed), true},
		{"final failure", running, res("fetch", 1, 2, events.OutcomeFailed), true},
		{"unknown path", running, res("nope", 1, 2, events.OutcomeCompleted), false},
		{"empty path", running, res("", 1, 2, events.OutcomeCompleted), false},
		{"step not started", running, res("transform", 1, 1, events.OutcomeCompleted), false},
		{"wrong gen", running, res("fetch", 2, 2, events.OutcomeCompleted), false},
		{"gen 0", running, res("fetch", 0, 2, events.OutcomeCompleted), false},
		{"stale attempt failure", running, res("fetch", 1, 1, events.OutcomeAttemptFailed), false},
		{"attempt 0 failure", running, res("fetch", 1, 0, events.OutcomeAttemptFailed), false},
		{"duplicate completion", pipelineDone()[:3], res("fetch", 1, 1, events.OutcomeCompleted), false},
		{"failure after completion", pipelineDone()[:3], res("fetch", 1, 2, events.OutcomeFailed), false},
		{"attempt failure after completion", pipelineDone()[:3], res("fetch", 1, 2, events.OutcomeAttemptFailed), false},
		{"result after the step failed", cat(running, failed(2*time.Second, "fetch", 2, "x", "y")), res("fetch", 1, 3, events.OutcomeCompleted), false},
		{"result for a wait step", approvalWaiting(), res("approve", 0, 1, events.OutcomeCompleted), false},
		{"result for a wait step with gen 1", approvalWaiting(), res("approve", 1, 1, events.OutcomeCompleted), false},
		{"after completion of the workflow", cat(pipelineDone(), wfCompleted(12*time.Second, nil)), res("store", 1, 2, events.OutcomeCompleted), false},
		{"failed step after the workflow failed", cat(running, failed(2*time.Second, "fetch", 2, "x", "y"), wfFailed(2*time.Second, "fetch", "x", "y")),
			res("fetch", 1, 3, events.OutcomeAttemptFailed), false},
		{"running step after the workflow failed is recorded for a redrive", fanFailed, res("right", 1, 1, events.OutcomeCompleted), true},
		{"running step attempt failure after the workflow failed", fanFailed, res("right", 1, 1, events.OutcomeAttemptFailed), true},
		{"container step", fanFailed[:4], res("fan", 0, 1, events.OutcomeCompleted), false},
		{"child workflow", hist(started(0, nil), events.Event{Type: events.TypeChildStarted, Time: at(0), ChildStarted: &events.ChildStarted{
			Path: "charge", Gen: 1, WorkflowID: "wf-1-charge-1", Definition: "billing"}}), res("charge", 1, 0, events.OutcomeCompleted), true},
		{"child workflow of another gen", hist(started(0, nil), events.Event{Type: events.TypeChildStarted, Time: at(0), ChildStarted: &events.ChildStarted{
			Path: "charge", Gen: 1, WorkflowID: "wf-1-charge-1", Definition: "billing"}}), res("charge", 2, 0, events.OutcomeCompleted), false},
		{"after the workflow was canceled", cat(running, cancelRequested(2*time.Second, ""), wfCanceled(2*time.Second, "")),
			res("fetch", 1, 2, events.OutcomeCompleted), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fold(t, tc.h)
			ev, ok := workflow.AcceptResult(st, tc.r)
			if ok != tc.ok {
				t.Fatalf("AcceptResult ok = %v, want %v (event %s)", ok, tc.ok, showEvents([]events.Event{ev}))
			}
			if !ok {
				if ev.Type != "" {
					t.Errorf("rejected with an event %s", showEvents([]events.Event{ev}))
				}
				return
			}
			if want := tc.r.Event(); !reflect.DeepEqual(ev, want) {
				t.Errorf("event = %s, want %s", showEvents([]events.Event{ev}), showEvents([]events.Event{want}))
			}
			if err := st.Apply(ev); err != nil {
				t.Fatalf("Apply accepted event: %v", err)
			}
			// The same result again is a duplicate, whatever its outcome.
			if ev2, ok := workflow.AcceptResult(st, tc.r); ok {
				t.Errorf("the same result was accepted twice: %s", showEvents([]events.Event{ev2}))
			}
		})
	}
}

func TestAcceptTimer(t *testing.T) {
	due := at(72*time.Hour + 10*time.Second)
	timer := events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve", Path: "approve", Due: due}
	tests := []struct {
		name    string
		h       []events.Event
		td      events.TimerDue
		now     time.Time
		ok, due bool
	}{
		{"at its time", approvalWaiting(), timer, due, true, true},
		{"after its time", approvalWaiting(), timer, due.Add(time.Hour), true, true},
		{"before its time", approvalWaiting(), timer, due.Add(-time.Nanosecond), false, false},
		{"long before its time", approvalWaiting(), timer, at(time.Hour), false, false},
		{"the message's due does not count", approvalWaiting(), events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve", Path: "approve", Due: at(0)}, at(time.Hour), false, false},
		{"wait already completed", cat(approvalWaiting(), signal(time.Hour, "approve", nil), signaled(time.Hour, "approve", nil, 5)), timer, due, false, true},
		{"wait already timed out", cat(approvalWaiting(), timerFired(72*time.Hour+10*time.Second, "approve", due)), timer, due, false, true},
		{"wrong timer id", approvalWaiting(), events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_other", Path: "approve"}, due, false, true},
		{"unknown path", approvalWaiting(), events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve", Path: "other"}, due, false, true},
		{"no path", approvalWaiting(), events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve"}, due, false, true},
		{"wait not started", approvalWaiting()[:3], timer, due, false, true},
		{"task step", approvalWaiting()[:2], events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_prepare", Path: "prepare"}, due, false, true},
		{"workflow canceled", cat(approvalWaiting(), cancelRequested(time.Hour, ""), wfCanceled(time.Hour, "")), timer, due, false, true},
		{"workflow completed", hist(started(0, nil), waitStarted(0, "approve", "approve", time.Hour),
			signal(time.Minute, "approve", nil), signaled(time.Minute, "approve", nil, 3), wfCompleted(time.Minute, nil)),
			events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve", Path: "approve"}, at(2 * time.Hour), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fold(t, tc.h)
			ev, ok, isDue := workflow.AcceptTimer(st, tc.td, tc.now)
			if ok != tc.ok || isDue != tc.due {
				t.Fatalf("AcceptTimer = ok %v, due %v; want ok %v, due %v", ok, isDue, tc.ok, tc.due)
			}
			if !ok {
				if ev.Type != "" {
					t.Errorf("rejected with an event %s", showEvents([]events.Event{ev}))
				}
				return
			}
			want := events.Event{Type: events.TypeTimerFired, Time: tc.now, TimerFired: &events.TimerFired{
				TimerID: "t1_approve", Path: "approve", Due: due}}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("event = %s, want %s", showEvents([]events.Event{ev}), showEvents([]events.Event{want}))
			}
			if err := st.Apply(ev); err != nil {
				t.Fatal(err)
			}
			if !st.Steps["approve"].TimedOut {
				t.Error("the accepted timer did not time the wait out")
			}
			if _, ok, _ := workflow.AcceptTimer(st, tc.td, tc.now); ok {
				t.Error("the same timer was accepted twice")
			}
		})
	}
}

func TestAcceptWorkflowTimeoutTimer(t *testing.T) {
	due := at(time.Hour)
	timeoutID := workflow.WorkflowTimeoutTimerID(0)
	scheduledTimeout := events.Event{Type: events.TypeTimerScheduled, Time: at(0), TimerScheduled: &events.TimerScheduled{
		TimerID: timeoutID, Due: due}}
	running := hist(started(0, nil), scheduledTimeout, task(0, "a", "t", nil))
	td := events.TimerDue{V: 1, WorkflowID: wfID, TimerID: timeoutID}
	tests := []struct {
		name    string
		h       []events.Event
		td      events.TimerDue
		now     time.Time
		ok, due bool
	}{
		{"at its time", running, td, due, true, true},
		{"before its time", running, td, due.Add(-time.Second), false, false},
		{"another id", running, events.TimerDue{V: 1, WorkflowID: wfID, TimerID: workflow.WorkflowTimeoutTimerID(1)}, due, false, true},
		{"no timeout scheduled", hist(started(0, nil), task(0, "a", "t", nil)), td, due, false, true},
		{"already fired", cat(running, events.Event{Type: events.TypeTimerFired, Time: due, TimerFired: &events.TimerFired{TimerID: timeoutID, Due: due}}),
			td, due, false, true},
		{"workflow completed", cat(running, completed(time.Minute, "a", 1, nil), wfCompleted(time.Minute, nil)), td, due, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fold(t, tc.h)
			ev, ok, isDue := workflow.AcceptTimer(st, tc.td, tc.now)
			if ok != tc.ok || isDue != tc.due {
				t.Fatalf("AcceptTimer = ok %v, due %v; want ok %v, due %v", ok, isDue, tc.ok, tc.due)
			}
			if !ok {
				return
			}
			want := events.Event{Type: events.TypeTimerFired, Time: tc.now, TimerFired: &events.TimerFired{TimerID: timeoutID, Due: due}}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("event = %s, want %s", showEvents([]events.Event{ev}), showEvents([]events.Event{want}))
			}
			if err := st.Apply(ev); err != nil {
				t.Fatal(err)
			}
			if !st.TimedOut {
				t.Error("the accepted timer did not time the workflow out")
			}
		})
	}
}
