package workflow_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// waiting returns the paths of the steps of st that wait, in State.Order.
func waiting(st *workflow.State) []string {
	var out []string
	for _, p := range st.Order {
		if s := st.Steps[p]; s.Status == workflow.StepWaiting {
			out = append(out, p)
		}
	}
	return out
}

// Each signal satisfies one wait: waits open at once take signals of their
// name in the order they started (State.Order), earliest signal first.
func TestDefect8_OneSignalSatisfiesOneWait(t *testing.T) {
	ann, bob, cy := map[string]any{"by": "ann"}, map[string]any{"by": "bob"}, map[string]any{"by": "cy"}
	tests := []struct {
		name string
		def  string
		// drive sends signals and results; after it the workflow must be
		// in status with output, and the listed waits still waiting.
		drive   func(r *run)
		status  workflow.Status
		output  any
		waiting []string
	}{
		{
			name: "two parallel waits, one signal",
			def: `
name: two
steps:
  - id: both
    parallel:
      branches:
        a: [{id: wa, wait: {signal: approve}}]
        b: [{id: wb, wait: {signal: approve}}]
`,
			drive:  func(r *run) { r.signal(time.Second, "approve", ann) },
			status: workflow.StatusRunning, waiting: []string{"wb"},
		},
		{
			name: "two parallel waits, two signals in order",
			def: `
name: two
steps:
  - id: both
    parallel:
      branches:
        a: [{id: wa, wait: {signal: approve}}]
        b: [{id: wb, wait: {signal: approve}}]
`,
			drive: func(r *run) {
				r.signal(time.Second, "approve", ann)
				r.signal(2*time.Second, "approve", bob)
			},
			status: workflow.StatusCompleted, output: map[string]any{"a": ann, "b": bob},
		},
		{
			name: "waits take signals in the order they started, not branch order",
			def: `
name: two
steps:
  - id: both
    parallel:
      branches:
        a: [{id: first, task: t}, {id: wa, wait: {signal: approve}}]
        b: [{id: wb, wait: {signal: approve}}]
`,
			drive: func(r *run) {
				r.result(time.Second, "first", 1, events.OutcomeCompleted, nil, nil)
				r.signal(2*time.Second, "approve", ann)
				r.signal(3*time.Second, "approve", bob)
			},
			status: workflow.StatusCompleted, output: map[string]any{"a": bob, "b": ann},
		},
		{
			name: "two early signals, three waits in a foreach",
			def: `
name: loop
steps:
  - id: prep
    task: t
  - id: each
    foreach: "[1, 2, 3]"
    do: [{id: w, wait: {signal: approve}}]
`,
			drive: func(r *run) {
				r.signal(time.Second, "approve", ann)
				r.signal(2*time.Second, "approve", bob)
				r.result(3*time.Second, "prep", 1, events.OutcomeCompleted, nil, nil)
			},
			status: workflow.StatusRunning, waiting: []string{"each[2].w"},
		},
		{
			name: "two early signals, three waits in a foreach, then a third",
			def: `
name: loop
steps:
  - id: prep
    task: t
  - id: each
    foreach: "[1, 2, 3]"
    do: [{id: w, wait: {signal: approve}}]
`,
			drive: func(r *run) {
				r.signal(time.Second, "approve", ann)
				r.signal(2*time.Second, "approve", bob)
				r.result(3*time.Second, "prep", 1, events.OutcomeCompleted, nil, nil)
				r.signal(4*time.Second, "approve", cy)
			},
			status: workflow.StatusCompleted, output: []any{ann, bob, cy},
		},
		{
			name: "a timed-out wait leaves the signal to the other",
			def: `
name: two
steps:
  - id: both
    parallel:
      branches:
        a: [{id: wa, wait: {signal: approve, timeout: 1h}, catch: [{do: []}]}]
        b: [{id: wb, wait: {signal: approve}}]
`,
			drive: func(r *run) {
				r.fire(2*time.Hour, "wa")
				r.signal(3*time.Hour, "approve", ann)
			},
			status: workflow.StatusCompleted, output: map[string]any{"a": nil, "b": ann},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.def, nil)
			tc.drive(r)
			if r.st.Status != tc.status {
				t.Errorf("Status = %s, want %s (error %+v)", r.st.Status, tc.status, r.st.Error)
			}
			if !reflect.DeepEqual(r.st.Output, tc.output) {
				t.Errorf("Output = %v, want %v", r.st.Output, tc.output)
			}
			if got := waiting(r.st); !reflect.DeepEqual(got, tc.waiting) {
				t.Errorf("waiting %v, want %v", got, tc.waiting)
			}
			consumed := map[int]string{}
			for _, e := range r.hist {
				if sc := e.StepCompleted; sc != nil && sc.SignalSeq > 0 {
					if other, ok := consumed[sc.SignalSeq]; ok {
						t.Errorf("signal %d satisfied both %s and %s", sc.SignalSeq, other, sc.Path)
					}
					consumed[sc.SignalSeq] = sc.Path
				}
			}
		})
	}
}

// A parallel or foreach that fails (without on_error: continue) cancels
// the steps still open under it; their late results and timers are ignored.
func TestDefect7_FailingContainerCancelsOpenSteps(t *testing.T) {
	boom := &events.Error{Message: "boom", Type: "x"}
	tests := []struct {
		name  string
		def   string
		input any
		drive func(r *run)
		// canceled are the steps canceled, in the order they were.
		canceled []string
		status   workflow.Status
		output   any
	}{
		{
			name: "parallel: task, wait, sleep and child of other branches",
			def: `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: boom, task: t}]
        b: [{id: slow, task: t}]
        c: [{id: w, wait: {signal: go, timeout: 1h}}]
        d: [{id: nap, sleep: 1h}]
        e: [{id: kid, workflow: billing}]
`,
			drive:    func(r *run) { r.result(time.Second, "boom", 1, events.OutcomeFailed, nil, boom) },
			canceled: []string{"slow", "w", "nap", "kid"},
			status:   workflow.StatusFailed,
		},
		{
			name: "foreach: the other running iterations",
			def: `
name: each
steps:
  - id: each
    foreach: "[0, 1, 2, 3]"
    concurrency: 3
    do: [{id: one, task: t}]
`,
			drive:    func(r *run) { r.result(time.Second, "each[1].one", 1, events.OutcomeFailed, nil, boom) },
			canceled: []string{"each[0].one", "each[2].one"},
			status:   workflow.StatusFailed,
		},
		{
			name: "nested: a foreach in another branch and its iterations",
			def: `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: pre, task: t}, {id: each, foreach: "[0, 1]", do: [{id: one, task: t}]}]
        b: [{id: boom, task: t}]
`,
			drive: func(r *run) {
				r.result(time.Second, "pre", 1, events.OutcomeCompleted, nil, nil)
				r.result(2*time.Second, "boom", 1, events.OutcomeFailed, nil, boom)
			},
			canceled: []string{"each", "each[0].one", "each[1].one"},
			status:   workflow.StatusFailed,
		},
		{
			name: "a catch block and a wait's timeout steps that run",
			def: `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: x, task: t, catch: [{do: [{id: fallback, task: t}]}]}]
        b: [{id: w, wait: {signal: go, timeout: 1m}, timeout_steps: [{id: remind, task: t}]}]
        c: [{id: boom, task: t}]
`,
			drive: func(r *run) {
				r.result(time.Second, "x", 1, events.OutcomeFailed, nil, boom)
				r.fire(2*time.Minute, "w")
				r.result(3*time.Minute, "boom", 1, events.OutcomeFailed, nil, boom)
			},
			canceled: []string{"fallback", "w", "remind"},
			status:   workflow.StatusFailed,
		},
		{
			name: "caught parallel: the workflow goes on without the canceled steps",
			def: `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: boom, task: t}]
        b: [{id: slow, task: t}]
    catch: [{do: [{id: handled, set: {ok: "true"}}]}]
  - id: after
    task: t
`,
			drive: func(r *run) {
				r.result(time.Second, "boom", 1, events.OutcomeFailed, nil, boom)
				r.result(2*time.Second, "after", 1, events.OutcomeCompleted, "done", nil)
			},
			canceled: []string{"slow"},
			status:   workflow.StatusCompleted, output: "done",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.def, tc.input)
			tc.drive(r)
			if r.st.Status != tc.status {
				t.Errorf("Status = %s, want %s (error %+v)", r.st.Status, tc.status, r.st.Error)
			}
			if !reflect.DeepEqual(r.st.Output, tc.output) {
				t.Errorf("Output = %v, want %v", r.st.Output, tc.output)
			}
			var recorded []string
			for _, e := range r.hist {
				if e.Type == events.TypeStepCanceled {
					recorded = append(recorded, e.StepCanceled.Path)
				}
			}
			if !reflect.DeepEqual(recorded, tc.canceled) {
				t.Errorf("history cancels %v, want %v", recorded, tc.canceled)
			}
			for _, p := range tc.canceled {
				s := r.st.Steps[p]
				if s == nil || s.Status != workflow.StepCanceled {
					t.Errorf("step %s: %+v, want CANCELED", p, s)
					continue
				}
				// A late result or timer of a canceled step is ignored.
				res := events.Result{V: 1, WorkflowID: r.st.ID, Path: p, Gen: s.Gen, Attempt: s.Attempts + 1,
					Outcome: events.OutcomeCompleted, Output: "late", Time: at(time.Hour)}
				if _, ok := workflow.AcceptResult(r.st, res); ok {
					t.Errorf("late result of canceled %s accepted", p)
				}
				if s.TimerID != "" {
					td := events.TimerDue{V: 1, WorkflowID: r.st.ID, TimerID: s.TimerID, Path: p}
					if _, ok, _ := workflow.AcceptTimer(r.st, td, at(100*time.Hour)); ok {
						t.Errorf("timer of canceled %s accepted", p)
					}
				}
				if s.Kind == "workflow" && s.ChildID == "" {
					t.Errorf("canceled child step %s names no child", p)
				}
			}
		})
	}
}
