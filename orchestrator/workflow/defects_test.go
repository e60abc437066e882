package workflow_test

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
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

// A redrive re-runs the failed (and canceled) steps it reaches from the
// top: a step that completed, including a container whose failures a catch
// or on_error: continue handled, keeps its output and is not entered; a
// repeat that ran out of iterations gets a fresh budget.
func TestDefect10_RedriveRerunsOnlyWhatFailedTheRun(t *testing.T) {
	boom := &events.Error{Message: "boom", Type: "x"}
	retried := events.Event{Type: events.TypeWorkflowRetried, Time: at(time.Hour), WorkflowRetried: &events.WorkflowRetried{}}
	tests := []struct {
		name  string
		def   string
		first func(r *run) // runs until the workflow fails
		// rerun are the steps the redrive schedules (path: input).
		rerun  map[string]any
		then   func(r *run) // runs the redriven workflow to its end
		output any
		steps  map[string]workflow.StepStatus
	}{
		{
			name: "a foreach a catch handled keeps its output",
			def: `
name: caught
steps:
  - id: each
    foreach: "[1, 2]"
    do: [{id: one, task: t}]
    catch: [{do: [{id: fb, set: {fallback: "true"}}]}]
  - id: after
    task: t
    input: "${ steps.each.output }"
`,
			first: func(r *run) {
				r.result(time.Second, "each[0].one", 1, events.OutcomeFailed, nil, boom)
				r.result(2*time.Second, "after", 1, events.OutcomeFailed, nil, boom)
			},
			rerun:  map[string]any{"after": map[string]any{"fallback": true}},
			then:   func(r *run) { r.result(2*time.Hour, "after", 2, events.OutcomeCompleted, "ok", nil) },
			output: "ok",
			steps: map[string]workflow.StepStatus{"each": workflow.StepCompleted, "each[0].one": workflow.StepFailed,
				"each[1].one": workflow.StepCanceled, "fb": workflow.StepCompleted},
		},
		{
			name: "a parallel with on_error continue keeps its failed branch",
			def: `
name: cont
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: bad, task: t}]
        b: [{id: good, task: t}]
    on_error: continue
  - id: after
    task: t
    input: "${ steps.fan.output }"
`,
			first: func(r *run) {
				r.result(time.Second, "bad", 1, events.OutcomeFailed, nil, boom)
				r.result(2*time.Second, "good", 1, events.OutcomeCompleted, "g", nil)
				r.result(3*time.Second, "after", 1, events.OutcomeFailed, nil, boom)
			},
			rerun: map[string]any{"after": map[string]any{
				"a": map[string]any{"error": map[string]any{"message": "boom", "type": "x", "step": "bad"}}, "b": "g"}},
			then:   func(r *run) { r.result(2*time.Hour, "after", 2, events.OutcomeCompleted, "ok", nil) },
			output: "ok",
			steps: map[string]workflow.StepStatus{"fan": workflow.StepCompleted, "bad": workflow.StepFailed,
				"good": workflow.StepCompleted, "after": workflow.StepCompleted},
		},
		{
			name: "a foreach with on_error continue keeps its failed iteration",
			def: `
name: cont
steps:
  - id: each
    foreach: "[1, 2]"
    on_error: continue
    do: [{id: one, task: t}]
  - id: after
    task: t
    input: "${ steps.each.output.size() }"
`,
			first: func(r *run) {
				r.result(time.Second, "each[0].one", 1, events.OutcomeFailed, nil, boom)
				r.result(2*time.Second, "each[1].one", 1, events.OutcomeCompleted, "y", nil)
				r.result(3*time.Second, "after", 1, events.OutcomeFailed, nil, boom)
			},
			rerun:  map[string]any{"after": int64(2)},
			then:   func(r *run) { r.result(2*time.Hour, "after", 2, events.OutcomeCompleted, "ok", nil) },
			output: "ok",
			steps: map[string]workflow.StepStatus{"each": workflow.StepCompleted, "each[0].one": workflow.StepFailed,
				"each[1].one": workflow.StepCompleted},
		},
		{
			name: "a repeat out of iterations gets a fresh budget",
			def: `
name: poll
steps:
  - id: poll
    repeat:
      do: [{id: check, task: t, input: "${ iteration }"}]
      until: "steps.check.output.done"
      max_iterations: 2
`,
			first: func(r *run) {
				r.result(time.Second, "poll[0].check", 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
				r.result(2*time.Second, "poll[1].check", 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
			},
			rerun: map[string]any{"poll[2].check": int64(2)},
			then: func(r *run) {
				r.result(2*time.Hour, "poll[2].check", 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
				r.result(3*time.Hour, "poll[3].check", 1, events.OutcomeCompleted, map[string]any{"done": true}, nil)
			},
			output: map[string]any{"done": true},
			steps:  map[string]workflow.StepStatus{"poll": workflow.StepCompleted},
		},
		{
			name: "a failed parallel reruns its failed and canceled branches",
			def: `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: bad, task: t}]
        b: [{id: slow, task: t}]
`,
			first: func(r *run) { r.result(time.Second, "bad", 1, events.OutcomeFailed, nil, boom) },
			rerun: map[string]any{"bad": nil, "slow": nil},
			then: func(r *run) {
				r.result(2*time.Hour, "bad", 2, events.OutcomeCompleted, "A", nil)
				r.result(2*time.Hour, "slow", 1, events.OutcomeCompleted, "B", nil)
			},
			output: map[string]any{"a": "A", "b": "B"},
			steps:  map[string]workflow.StepStatus{"fan": workflow.StepCompleted},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.def, nil)
			tc.first(r)
			if r.st.Status != workflow.StatusFailed {
				t.Fatalf("first run: Status = %s, want FAILED", r.st.Status)
			}
			outputs := map[string]any{}
			for p, s := range r.st.Steps {
				if s.Status == workflow.StepCompleted {
					outputs[p] = s.Output
				}
			}
			evs := r.add(retried)
			if got := scheduledPaths(evs); !reflect.DeepEqual(got, tc.rerun) {
				t.Errorf("the redrive scheduled %v, want %v\n%s", got, tc.rerun, showEvents(evs))
			}
			// What completed before the redrive stays as it was.
			for p, out := range outputs {
				if s := r.st.Steps[p]; s.Status != workflow.StepCompleted || !reflect.DeepEqual(s.Output, out) {
					t.Errorf("step %s is %s with output %v after the redrive, was COMPLETED with %v", p, s.Status, s.Output, out)
				}
			}
			tc.then(r)
			checkEnd(t, r, workflow.StatusCompleted, tc.output)
			for p, want := range tc.steps {
				if s := r.st.Steps[p]; s == nil || s.Status != want {
					t.Errorf("step %s: %+v, want %s", p, s, want)
				}
			}
			for _, p := range r.st.Order {
				if s := r.st.Steps[p]; s.Status == workflow.StepPending || s.Status == workflow.StepRunning || s.Status == workflow.StepWaiting {
					t.Errorf("step %s is %q in a completed run", p, s.Status)
				}
			}
		})
	}
}

// Histories redriven by earlier releases (whose fold reset failed steps
// at once) still fold to the same end and decide as they did, apart from
// recording the containers the redrive reopened.
func TestDefect10_OldRedriveHistoriesStillDecideTheSame(t *testing.T) {
	retried := func(off time.Duration) events.Event {
		return events.Event{Type: events.TypeWorkflowRetried, Time: at(off), WorkflowRetried: &events.WorkflowRetried{}}
	}
	started2 := func(off time.Duration, path string, input any, first int) events.Event {
		e := task(off, path, "t", input)
		e.StepScheduled.Gen, e.StepScheduled.FirstAttempt = 2, first
		return e
	}
	completed2 := func(off time.Duration, path string, attempt int, out any) events.Event {
		e := completed(off, path, attempt, out)
		e.StepCompleted.Gen = 2
		return e
	}
	ss := func(off time.Duration, path, kind string, items []any) events.Event {
		return events.Event{Type: events.TypeStepStarted, Time: at(off), StepStarted: &events.StepStarted{Path: path, Kind: kind, Items: items}}
	}
	stepFailed := func(off time.Duration, path, msg string) events.Event {
		return events.Event{Type: events.TypeStepFailed, Time: at(off), StepFailed: &events.StepFailed{Path: path, Error: events.Error{Message: msg, Type: "x"}}}
	}
	stepDone := func(off time.Duration, path string, out any) events.Event {
		return events.Event{Type: events.TypeStepCompleted, Time: at(off), StepCompleted: &events.StepCompleted{Path: path, Output: out}}
	}
	notDone, done := map[string]any{"done": false}, map[string]any{"done": true}
	tests := []struct {
		name string
		def  string
		h    []events.Event
		// outside are the indexes of the events that came from outside,
		// from the redrive on.
		outside []int
		output  any
	}{
		{
			name: "a repeat resumes at its failed iteration", def: repeatYAML,
			h: hist(started(0, nil), ss(0, "poll", "repeat", nil), task(0, "poll[0].check", "t", int64(0)),
				completed(time.Second, "poll[0].check", 1, notDone),
				events.Event{Type: events.TypeStepIterated, Time: at(time.Second), StepIterated: &events.StepIterated{Path: "poll", Iteration: 1}},
				task(time.Second, "poll[1].check", "t", int64(1)),
				failed(2*time.Second, "poll[1].check", 1, "x", "boom"),
				stepFailed(2*time.Second, "poll", "step poll[1].check: boom"),
				wfFailed(2*time.Second, "poll", "x", "step poll: step poll[1].check: boom"),
				retried(time.Hour),
				started2(time.Hour, "poll[1].check", int64(1), 2),
				completed2(2*time.Hour, "poll[1].check", 2, done),
				stepDone(2*time.Hour, "poll", done),
				wfCompleted(2*time.Hour, done)),
			outside: []int{9, 11},
			output:  done,
		},
		{
			name: "a foreach runs its failed iteration again", def: foreachYAML,
			h: hist(started(0, map[string]any{"items": []any{int64(1), int64(2)}}),
				ss(0, "each", "foreach", []any{int64(1), int64(2)}),
				task(0, "each[0].one", "t", []any{int64(1), int64(0)}), task(0, "each[1].one", "t", []any{int64(2), int64(1)}),
				failed(time.Second, "each[1].one", 1, "x", "boom"),
				stepFailed(time.Second, "each", "step each[1].one: item 1: boom"),
				wfFailed(time.Second, "each", "x", "step each: step each[1].one: item 1: boom"),
				completed(2*time.Second, "each[0].one", 1, "a"),
				retried(time.Hour),
				started2(time.Hour, "each[1].one", []any{int64(2), int64(1)}, 2),
				completed2(2*time.Hour, "each[1].one", 2, "b"),
				stepDone(2*time.Hour, "each", []any{"a", "b"}),
				wfCompleted(2*time.Hour, []any{"a", "b"})),
			outside: []int{8, 10},
			output:  []any{"a", "b"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			def := parse(t, tc.def)
			st := fold(t, tc.h)
			if st.Status != workflow.StatusCompleted || !reflect.DeepEqual(st.Output, tc.output) {
				t.Fatalf("folded: %s with %v", st.Status, st.Output)
			}
			if evs := workflow.Decide(st, def); len(evs) != 0 {
				t.Fatalf("the whole history decides more: %s", showEvents(evs))
			}
			for n, i := range tc.outside {
				end := len(tc.h)
				if n+1 < len(tc.outside) {
					end = tc.outside[n+1]
				}
				evs, err := workflow.Advance(fold(t, tc.h[:i+1]), def)
				if err != nil {
					t.Fatal(err)
				}
				var kept []events.Event
				for _, e := range evs {
					if e.Type != events.TypeStepReopened {
						kept = append(kept, e)
					}
				}
				if want := tc.h[i+1 : end]; !sameEvents(kept, want) {
					t.Errorf("after event %d decided %s\nwant %s", i, showEvents(kept), showEvents(want))
				}
			}
		})
	}
}

// A child's workflow id is <parent id>-<path with "." and "[" as "_" and
// "]" dropped>-<16 hex digits of a hash of parent, path and run>, and the
// language docs give that form with ids this code makes.
func TestDefect11_ChildIDForm(t *testing.T) {
	tests := []struct {
		parent, path string
		gen          int
		form         string
	}{
		{"order-7", "bill", 1, `^order-7-bill-[0-9a-f]{16}$`},
		{"order-7", "lines[3].bill", 1, `^order-7-lines_3_bill-[0-9a-f]{16}$`},
		{"order-7", "bill", 2, `^order-7-bill-[0-9a-f]{16}$`},
		{strings.Repeat("p", 100), "s", 1, `^p{90}-[0-9a-f]{16}$`},
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "language.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		id := workflow.ChildID(tc.parent, tc.path, tc.gen)
		if !regexp.MustCompile(tc.form).MatchString(id) {
			t.Errorf("ChildID(%q, %q, %d) = %q, want the form %s", tc.parent, tc.path, tc.gen, id, tc.form)
		}
		if seen[id] {
			t.Errorf("ChildID(%q, %q, %d) = %q again", tc.parent, tc.path, tc.gen, id)
		}
		seen[id] = true
		if tc.parent == "order-7" && !strings.Contains(string(doc), "`"+id+"`") {
			t.Errorf("docs/language.md does not give the id of step %s (run %d) of order-7: %s", tc.path, tc.gen, id)
		}
	}
	if strings.Contains(string(doc), "<parent id>-<path>-<n>") {
		t.Error("docs/language.md still gives the child id form <parent id>-<path>-<n>")
	}
}
