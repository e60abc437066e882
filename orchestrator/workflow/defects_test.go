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
