package workflow_test

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Scenarios for the step kinds beyond task and wait. Each runs through the
// run driver, which checks after every decision that the history replays
// (folded again, after a crash, and through storage) to the same state.

const (
	switchYAML = `
name: route
steps:
  - id: route
    switch:
      - if: "input.n > 10"
        then: [{id: big, task: t, input: "${ input.n }"}]
      - if: "input.n > 5"
        then: []
    default: [{id: small, task: t}]
`
	foreachYAML = `
name: each
steps:
  - id: each
    foreach: input.items
    as: it
    concurrency: 2
    filter: "it > 0"
    do:
      - id: one
        task: t
        input: "${ [it, index] }"
`
	foreachContinueYAML = `
name: each
steps:
  - id: each
    foreach: input.items
    on_error: continue
    do:
      - id: one
        task: t
        input: "${ item }"
`
	parallelYAML = `
name: fan
steps:
  - id: fan
    parallel:
      branches:
        b: [{id: right, task: t}, {id: right2, task: t, input: "${ steps.right.output }"}]
        a: [{id: left, task: t}]
`
	repeatYAML = `
name: poll
steps:
  - id: poll
    repeat:
      do: [{id: check, task: t, input: "${ iteration }"}]
      until: "steps.check.output.done"
      max_iterations: 3
`
	sleepYAML = `
name: nap
steps:
  - id: nap
    sleep: 1h
  - id: after
    task: t
`
	sleepUntilYAML = `
name: nap
steps:
  - id: nap
    sleep: {until: "input.at"}
  - id: after
    task: t
`
	setYAML = `
name: vars
steps:
  - id: init
    set: {total: "input.n * 2", tag: "'x'"}
  - id: use
    task: t
    input: "${ {'total': vars.total, 'tag': vars.tag, 'init': steps.init.output} }"
`
	ifYAML = `
name: guarded
steps:
  - id: maybe
    if: "input.go"
    task: t
  - id: after
    task: t
    input: "${ steps.maybe.output }"
`
	catchYAML = `
name: caught
steps:
  - id: risky
    task: t
    catch:
      - errors: [declined]
        do: [{id: fallback, task: t2, input: "${ input }"}]
  - id: after
    task: t
    input: "${ steps.risky.output }"
`
	failSucceedYAML = `
name: stop
steps:
  - id: check
    switch:
      - if: "input.n < 0"
        then: [{id: bad, fail: {message: "negative: ${ input.n }", type: invalid}}]
  - id: done
    succeed: {output: "${ input.n }"}
  - id: never
    task: t
`
	timeoutYAML = `
name: slow
timeout: 1h
steps:
  - id: a
    task: t
  - id: b
    task: t
`
	timeoutStepsYAML = `
name: remind
steps:
  - id: approval
    wait: {signal: ok, timeout: 1h}
    timeout_steps: [{id: remind, task: mail, input: "reminder"}]
`
	childYAML = `
name: parent
steps:
  - id: charge
    workflow: billing
    input: {amount: "${ input.amount }"}
`
	parallelSleepYAML = `
name: fansleep
steps:
  - id: fan
    parallel:
      branches:
        a: [{id: work, task: t}]
        b: [{id: nap, sleep: 1h}, {id: after, task: t}]
`
)

func typesOf(evs []events.Event) []events.Type {
	var out []events.Type
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

// expect checks the types of decided events.
func expect(t *testing.T, evs []events.Event, want ...events.Type) {
	t.Helper()
	if got := typesOf(evs); !slices.Equal(got, want) {
		t.Fatalf("decided %s\nwant types %v", showEvents(evs), want)
	}
}

// scheduledPaths returns the paths and inputs of the StepScheduled events.
func scheduledPaths(evs []events.Event) map[string]any {
	out := map[string]any{}
	for _, e := range evs {
		if e.StepScheduled != nil {
			out[e.StepScheduled.Path] = e.StepScheduled.Input
		}
	}
	return out
}

func checkEnd(t *testing.T, r *run, status workflow.Status, output any) {
	t.Helper()
	if r.st.Status != status {
		t.Errorf("Status = %q, want %q (error %+v at %q)", r.st.Status, status, r.st.Error, r.st.ErrorPath)
	}
	if !reflect.DeepEqual(r.st.Output, output) {
		t.Errorf("Output = %#v, want %#v", r.st.Output, output)
	}
}

func TestSwitch(t *testing.T) {
	t.Run("first true case", func(t *testing.T) {
		r := startRun(t, switchYAML, map[string]any{"n": int64(20)})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepScheduled)
		if ss := r.hist[1].StepStarted; ss.Path != "route" || ss.Kind != "switch" || ss.Case != 0 {
			t.Errorf("StepStarted = %+v", ss)
		}
		if got := scheduledPaths(r.hist); !reflect.DeepEqual(got, map[string]any{"big": int64(20)}) {
			t.Errorf("scheduled %v", got)
		}
		evs := r.result(time.Second, "big", 1, events.OutcomeCompleted, "B", nil)
		expect(t, evs, events.TypeStepCompleted, events.TypeWorkflowCompleted)
		checkEnd(t, r, workflow.StatusCompleted, "B")
	})
	t.Run("empty case", func(t *testing.T) {
		r := startRun(t, switchYAML, map[string]any{"n": int64(7)})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepCompleted, events.TypeWorkflowCompleted)
		if r.hist[1].StepStarted.Case != 1 {
			t.Errorf("case %d, want 1", r.hist[1].StepStarted.Case)
		}
		checkEnd(t, r, workflow.StatusCompleted, nil)
	})
	t.Run("default", func(t *testing.T) {
		r := startRun(t, switchYAML, map[string]any{"n": int64(1)})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepScheduled)
		if r.hist[1].StepStarted.Case != -1 || r.hist[2].StepScheduled.Path != "small" {
			t.Errorf("decided %s", showEvents(r.hist[1:]))
		}
		r.result(time.Second, "small", 1, events.OutcomeCompleted, "S", nil)
		checkEnd(t, r, workflow.StatusCompleted, "S")
	})
	t.Run("case expression fails", func(t *testing.T) {
		r := startRun(t, switchYAML, map[string]any{})
		expect(t, r.hist[1:], events.TypeStepFailed, events.TypeWorkflowFailed)
		if e := r.hist[1].StepFailed.Error; e.Type != workflow.ErrTypeExpression {
			t.Errorf("StepFailed error = %+v", e)
		}
		checkEnd(t, r, workflow.StatusFailed, nil)
	})
}

func TestForeach(t *testing.T) {
	t.Run("filter, concurrency and output order", func(t *testing.T) {
		r := startRun(t, foreachYAML, map[string]any{"items": []any{int64(3), int64(-1), int64(5), int64(7)}})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepScheduled, events.TypeStepScheduled)
		if items := r.hist[1].StepStarted.Items; !reflect.DeepEqual(items, []any{int64(3), int64(5), int64(7)}) {
			t.Errorf("items = %v", items)
		}
		want := map[string]any{"each[0].one": []any{int64(3), int64(0)}, "each[1].one": []any{int64(5), int64(1)}}
		if got := scheduledPaths(r.hist); !reflect.DeepEqual(got, want) {
			t.Errorf("scheduled %v, want %v", got, want)
		}
		evs := r.result(time.Second, "each[1].one", 1, events.OutcomeCompleted, "b", nil)
		expect(t, evs, events.TypeStepScheduled)
		if got := scheduledPaths(evs); !reflect.DeepEqual(got, map[string]any{"each[2].one": []any{int64(7), int64(2)}}) {
			t.Errorf("scheduled %v", got)
		}
		r.result(2*time.Second, "each[2].one", 1, events.OutcomeCompleted, "c", nil)
		evs = r.result(3*time.Second, "each[0].one", 1, events.OutcomeCompleted, "a", nil)
		expect(t, evs, events.TypeStepCompleted, events.TypeWorkflowCompleted)
		checkEnd(t, r, workflow.StatusCompleted, []any{"a", "b", "c"})
	})
	t.Run("no items", func(t *testing.T) {
		r := startRun(t, foreachYAML, map[string]any{"items": []any{}})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepCompleted, events.TypeWorkflowCompleted)
		checkEnd(t, r, workflow.StatusCompleted, []any{})
	})
	t.Run("items not a list", func(t *testing.T) {
		r := startRun(t, foreachYAML, map[string]any{"items": "abc"})
		expect(t, r.hist[1:], events.TypeStepFailed, events.TypeWorkflowFailed)
		checkEnd(t, r, workflow.StatusFailed, nil)
	})
	t.Run("an iteration fails", func(t *testing.T) {
		r := startRun(t, foreachYAML, map[string]any{"items": []any{int64(1), int64(2)}})
		evs := r.result(time.Second, "each[1].one", 1, events.OutcomeFailed, nil, &events.Error{Message: "boom", Type: "x"})
		// The iteration still running is canceled.
		expect(t, evs, events.TypeStepCanceled, events.TypeStepFailed, events.TypeWorkflowFailed)
		if sc := evs[0].StepCanceled; sc.Path != "each[0].one" || sc.Cause != "each" {
			t.Errorf("StepCanceled = %+v", sc)
		}
		if sf := evs[1].StepFailed; sf.Path != "each" || sf.Error != (events.Error{Message: "step each[1].one: item 1: boom", Type: "x"}) {
			t.Errorf("foreach StepFailed = %+v", sf)
		}
		checkEnd(t, r, workflow.StatusFailed, nil)
	})
	t.Run("on_error continue", func(t *testing.T) {
		r := startRun(t, foreachContinueYAML, map[string]any{"items": []any{"x", "y"}})
		r.result(time.Second, "each[0].one", 1, events.OutcomeFailed, nil, &events.Error{Message: "boom", Type: "x"})
		r.result(2*time.Second, "each[1].one", 1, events.OutcomeCompleted, "Y", nil)
		checkEnd(t, r, workflow.StatusCompleted, []any{
			map[string]any{"error": map[string]any{"message": "boom", "type": "x", "step": "each[0].one"}}, "Y"})
	})
}

func TestParallel(t *testing.T) {
	t.Run("all branches complete", func(t *testing.T) {
		r := startRun(t, parallelYAML, nil)
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepScheduled, events.TypeStepScheduled)
		if got := scheduledPaths(r.hist); !reflect.DeepEqual(got, map[string]any{"left": nil, "right": nil}) {
			t.Errorf("scheduled %v", got)
		}
		evs := r.result(time.Second, "right", 1, events.OutcomeCompleted, "r", nil)
		if got := scheduledPaths(evs); !reflect.DeepEqual(got, map[string]any{"right2": "r"}) {
			t.Errorf("scheduled %v", got)
		}
		r.result(2*time.Second, "left", 1, events.OutcomeCompleted, "l", nil)
		r.result(3*time.Second, "right2", 1, events.OutcomeCompleted, "r2", nil)
		checkEnd(t, r, workflow.StatusCompleted, map[string]any{"a": "l", "b": "r2"})
	})
	t.Run("a failed branch fails the step and cancels the others; a late result is ignored", func(t *testing.T) {
		r := startRun(t, parallelYAML, nil)
		evs := r.result(time.Second, "left", 1, events.OutcomeFailed, nil, &events.Error{Message: "boom", Type: "x"})
		expect(t, evs, events.TypeStepCanceled, events.TypeStepFailed, events.TypeWorkflowFailed)
		if wf := evs[2].WorkflowFailed; wf.Path != "fan" || wf.Error != (events.Error{Message: "step fan: step left: boom", Type: "x"}) {
			t.Errorf("WorkflowFailed = %+v", wf)
		}
		checkEnd(t, r, workflow.StatusFailed, nil)
		// The other branch's result arrives after the workflow failed.
		if _, ok := workflow.AcceptResult(r.st, events.Result{V: 1, WorkflowID: wfID, Path: "right", Gen: 1, Attempt: 1,
			Outcome: events.OutcomeCompleted, Output: "r", Time: at(2 * time.Second)}); ok {
			t.Error("late result of a canceled step accepted")
		}
		if s := r.st.Steps["right"]; s.Status != workflow.StepCanceled {
			t.Errorf("right is %+v, want CANCELED", s)
		}
	})
}

func TestRepeat(t *testing.T) {
	t.Run("until true", func(t *testing.T) {
		r := startRun(t, repeatYAML, nil)
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepScheduled)
		if p := r.hist[2].StepScheduled; p.Path != "poll[0].check" || p.Input != int64(0) {
			t.Errorf("scheduled %+v", p)
		}
		evs := r.result(time.Second, "poll[0].check", 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
		expect(t, evs, events.TypeStepIterated, events.TypeStepScheduled)
		if p := evs[1].StepScheduled; p.Path != "poll[1].check" || p.Input != int64(1) {
			t.Errorf("scheduled %+v", p)
		}
		evs = r.result(2*time.Second, "poll[1].check", 1, events.OutcomeCompleted, map[string]any{"done": true}, nil)
		expect(t, evs, events.TypeStepCompleted, events.TypeWorkflowCompleted)
		checkEnd(t, r, workflow.StatusCompleted, map[string]any{"done": true})
		if s := r.st.Steps["poll"]; s.Iteration != 1 {
			t.Errorf("Iteration = %d, want 1", s.Iteration)
		}
	})
	t.Run("max iterations", func(t *testing.T) {
		r := startRun(t, repeatYAML, nil)
		for i, path := range []string{"poll[0].check", "poll[1].check", "poll[2].check"} {
			r.result(time.Duration(i+1)*time.Second, path, 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
		}
		checkEnd(t, r, workflow.StatusFailed, nil)
		if r.st.Error == nil || r.st.Error.Type != workflow.ErrTypeMaxIterations || r.st.ErrorPath != "poll" {
			t.Errorf("Error = %+v at %q", r.st.Error, r.st.ErrorPath)
		}
	})
}

func TestSleep(t *testing.T) {
	t.Run("for a duration", func(t *testing.T) {
		r := startRun(t, sleepYAML, nil)
		want := events.Event{Type: events.TypeTimerScheduled, Time: at(0), TimerScheduled: &events.TimerScheduled{
			Path: "nap", TimerID: workflow.TimerID("nap", 1), Due: at(time.Hour)}}
		if !sameEvents(r.hist[1:], []events.Event{want}) {
			t.Fatalf("decided %s", showEvents(r.hist[1:]))
		}
		td := events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_nap", Path: "nap"}
		if _, ok, due := workflow.AcceptTimer(r.st, td, at(time.Hour-time.Nanosecond)); ok || due {
			t.Errorf("timer accepted before it was due: ok %v, due %v", ok, due)
		}
		evs, ok := r.fire(time.Hour, "nap")
		if !ok {
			t.Fatal("timer not accepted")
		}
		expect(t, evs, events.TypeStepCompleted, events.TypeStepScheduled)
		r.result(time.Hour+time.Second, "after", 1, events.OutcomeCompleted, "done", nil)
		checkEnd(t, r, workflow.StatusCompleted, "done")
	})
	t.Run("until a time already past", func(t *testing.T) {
		r := startRun(t, sleepUntilYAML, map[string]any{"at": "2020-01-01T00:00:00Z"})
		expect(t, r.hist[1:], events.TypeStepCompleted, events.TypeStepScheduled)
	})
	t.Run("until a later time", func(t *testing.T) {
		r := startRun(t, sleepUntilYAML, map[string]any{"at": "2025-03-02T12:00:00+02:00"})
		expect(t, r.hist[1:], events.TypeTimerScheduled)
		if due := r.hist[1].TimerScheduled.Due; !due.Equal(at(22*time.Hour)) || due.Location() != time.UTC {
			t.Errorf("Due = %v, want %v in UTC", due, at(22*time.Hour))
		}
	})
	t.Run("until something not a time", func(t *testing.T) {
		r := startRun(t, sleepUntilYAML, map[string]any{"at": "tomorrow"})
		expect(t, r.hist[1:], events.TypeStepFailed, events.TypeWorkflowFailed)
		checkEnd(t, r, workflow.StatusFailed, nil)
	})
}

func TestSetAndIf(t *testing.T) {
	t.Run("set assigns vars", func(t *testing.T) {
		r := startRun(t, setYAML, map[string]any{"n": int64(21)})
		expect(t, r.hist[1:], events.TypeStepCompleted, events.TypeStepScheduled)
		vars := map[string]any{"total": int64(42), "tag": "x"}
		if sc := r.hist[1].StepCompleted; !reflect.DeepEqual(sc.Vars, vars) || sc.Output != nil {
			t.Errorf("StepCompleted = %+v", sc)
		}
		if out := r.st.Steps["init"].Output; !reflect.DeepEqual(out, vars) {
			t.Errorf("set step output = %v, want the values it set", out)
		}
		want := map[string]any{"total": int64(42), "tag": "x", "init": vars}
		if in := r.hist[2].StepScheduled.Input; !reflect.DeepEqual(in, want) {
			t.Errorf("input = %v, want %v", in, want)
		}
		if !reflect.DeepEqual(r.st.Vars, vars) {
			t.Errorf("Vars = %v", r.st.Vars)
		}
	})
	t.Run("if false skips", func(t *testing.T) {
		r := startRun(t, ifYAML, map[string]any{"go": false})
		expect(t, r.hist[1:], events.TypeStepSkipped, events.TypeStepScheduled)
		if s := r.st.Steps["maybe"]; s.Status != workflow.StepSkipped || !s.Done() {
			t.Errorf("skipped step = %+v", s)
		}
		if p := r.hist[2].StepScheduled; p.Path != "after" || p.Input != nil {
			t.Errorf("scheduled %+v", p)
		}
	})
	t.Run("if true runs", func(t *testing.T) {
		r := startRun(t, ifYAML, map[string]any{"go": true})
		expect(t, r.hist[1:], events.TypeStepScheduled)
		evs := r.result(time.Second, "maybe", 1, events.OutcomeCompleted, "m", nil)
		if got := scheduledPaths(evs); !reflect.DeepEqual(got, map[string]any{"after": "m"}) {
			t.Errorf("scheduled %v", got)
		}
	})
	t.Run("if not a bool skips", func(t *testing.T) {
		r := startRun(t, ifYAML, map[string]any{"go": "yes"})
		expect(t, r.hist[1:], events.TypeStepSkipped, events.TypeStepScheduled)
	})
	t.Run("if failing fails the step", func(t *testing.T) {
		r := startRun(t, ifYAML, map[string]any{})
		expect(t, r.hist[1:], events.TypeStepFailed, events.TypeWorkflowFailed)
		if e := r.hist[1].StepFailed.Error; e.Type != workflow.ErrTypeExpression {
			t.Errorf("error = %+v", e)
		}
	})
}

func TestCatch(t *testing.T) {
	t.Run("matching error runs the catch", func(t *testing.T) {
		r := startRun(t, catchYAML, "in")
		evs := r.result(time.Second, "risky", 1, events.OutcomeFailed, nil, &events.Error{Message: "no funds", Type: "declined"})
		expect(t, evs, events.TypeStepScheduled)
		if p := evs[0].StepScheduled; p.Path != "fallback" || p.Input != "in" || p.Task != "t2" {
			t.Errorf("scheduled %+v", p)
		}
		evs = r.result(2*time.Second, "fallback", 1, events.OutcomeCompleted, "fb", nil)
		expect(t, evs, events.TypeStepCompleted, events.TypeStepScheduled)
		if sc := evs[0].StepCompleted; sc.Path != "risky" || sc.Output != "fb" {
			t.Errorf("caught step completed %+v", sc)
		}
		if p := evs[1].StepScheduled; p.Path != "after" || p.Input != "fb" {
			t.Errorf("scheduled %+v", p)
		}
	})
	t.Run("other error fails", func(t *testing.T) {
		r := startRun(t, catchYAML, nil)
		evs := r.result(time.Second, "risky", 1, events.OutcomeFailed, nil, &events.Error{Message: "down", Type: "io"})
		expect(t, evs, events.TypeWorkflowFailed)
		checkEnd(t, r, workflow.StatusFailed, nil)
	})
}

func TestFailAndSucceed(t *testing.T) {
	t.Run("fail", func(t *testing.T) {
		r := startRun(t, failSucceedYAML, map[string]any{"n": int64(-1)})
		expect(t, r.hist[1:], events.TypeStepStarted, events.TypeStepFailed, events.TypeStepFailed, events.TypeWorkflowFailed)
		if e := r.hist[2].StepFailed.Error; e != (events.Error{Message: "negative: -1", Type: "invalid"}) {
			t.Errorf("fail step error = %+v", e)
		}
		if *r.st.Error != (events.Error{Message: "step check: step bad: negative: -1", Type: "invalid"}) || r.st.ErrorPath != "check" {
			t.Errorf("workflow error = %+v at %q", r.st.Error, r.st.ErrorPath)
		}
	})
	t.Run("succeed ends the workflow early", func(t *testing.T) {
		r := startRun(t, failSucceedYAML, map[string]any{"n": int64(4)})
		expect(t, r.hist[1:], events.TypeStepCompleted, events.TypeWorkflowCompleted)
		checkEnd(t, r, workflow.StatusCompleted, int64(4))
		if r.st.Steps["never"] != nil {
			t.Error("a step after succeed started")
		}
	})
}

func TestWorkflowTimeout(t *testing.T) {
	t.Run("fires", func(t *testing.T) {
		r := startRun(t, timeoutYAML, nil)
		expect(t, r.hist[1:], events.TypeTimerScheduled, events.TypeStepScheduled)
		if ts := r.hist[1].TimerScheduled; ts.Path != "" || ts.TimerID != workflow.WorkflowTimeoutTimerID(0) || !ts.Due.Equal(at(time.Hour)) {
			t.Errorf("TimerScheduled = %+v", ts)
		}
		evs, ok := r.fireTimeout(time.Hour)
		if !ok {
			t.Fatal("timeout not accepted")
		}
		expect(t, evs, events.TypeWorkflowFailed)
		if e := r.st.Error; e == nil || e.Type != workflow.ErrTypeTimeout {
			t.Errorf("Error = %+v", e)
		}
		if _, ok := r.fireTimeout(2 * time.Hour); ok {
			t.Error("timeout accepted twice")
		}
	})
	t.Run("finishing first", func(t *testing.T) {
		r := startRun(t, timeoutYAML, nil)
		r.result(time.Minute, "a", 1, events.OutcomeCompleted, "A", nil)
		r.result(2*time.Minute, "b", 1, events.OutcomeCompleted, "B", nil)
		checkEnd(t, r, workflow.StatusCompleted, "B")
		if _, ok := r.fireTimeout(time.Hour); ok {
			t.Error("timeout of a completed workflow accepted")
		}
	})
}

func TestWaitTimeoutSteps(t *testing.T) {
	r := startRun(t, timeoutStepsYAML, nil)
	expect(t, r.hist[1:], events.TypeWaitStarted)
	evs, ok := r.fire(time.Hour, "approval")
	if !ok {
		t.Fatal("timer not accepted")
	}
	expect(t, evs, events.TypeStepStarted, events.TypeStepScheduled)
	if p := evs[1].StepScheduled; p.Path != "remind" || p.Input != "reminder" {
		t.Errorf("scheduled %+v", p)
	}
	// A late signal does not complete the wait any more.
	expect(t, r.signal(time.Hour+time.Second, "ok", "late"))
	r.result(time.Hour+2*time.Second, "remind", 1, events.OutcomeCompleted, "sent", nil)
	checkEnd(t, r, workflow.StatusCompleted, "sent")
}

func TestChildWorkflow(t *testing.T) {
	r := startRun(t, childYAML, map[string]any{"amount": int64(250)})
	want := events.Event{Type: events.TypeChildStarted, Time: at(0), ChildStarted: &events.ChildStarted{
		Path: "charge", Gen: 1, WorkflowID: workflow.ChildID(wfID, "charge", 1), Definition: "billing",
		Input: map[string]any{"amount": int64(250)}}}
	if !sameEvents(r.hist[1:], []events.Event{want}) {
		t.Fatalf("decided %s\nwant %s", showEvents(r.hist[1:]), showEvents([]events.Event{want}))
	}
	if id := r.hist[1].ChildStarted.WorkflowID; !strings.HasPrefix(id, "wf-1-charge-") {
		t.Errorf("child id = %q", id)
	}
	// The outcome of a child of another run of this id (deleted by
	// retention) is not this run's; one naming this run, or no run (sent
	// before runs were named), is.
	other := events.Result{V: 1, WorkflowID: wfID, Path: "charge", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted,
		Output: "stale", Time: at(time.Minute), ParentCreated: r.st.Created.Add(-time.Hour)}
	if _, ok := workflow.AcceptResult(r.st, other); ok {
		t.Fatal("the outcome of another run's child was accepted")
	}
	own := other
	own.ParentCreated, own.Output = r.st.Created, "paid"
	if _, ok := workflow.AcceptResult(r.st, own); !ok {
		t.Fatal("the outcome of this run's child was not accepted")
	}
	r.result(time.Minute, "charge", 0, events.OutcomeCompleted, "paid", nil)
	checkEnd(t, r, workflow.StatusCompleted, "paid")
}

func TestChildID(t *testing.T) {
	a := workflow.ChildID("wf-1", "charge", 1)
	if !strings.HasPrefix(a, "wf-1-charge-") || len(a) > 128 {
		t.Errorf("ChildID = %q", a)
	}
	// Ids that read alike stay apart: the hash covers the exact parts.
	if workflow.ChildID("order", "x-ship", 1) == workflow.ChildID("order-x", "ship", 1) {
		t.Error("child ids of different parents and paths collide")
	}
	if workflow.ChildID("wf", "a[1].b", 1) == workflow.ChildID("wf", "a-1_b", 1) || a == workflow.ChildID("wf-1", "charge", 2) {
		t.Error("child ids collide")
	}
	long := workflow.ChildID(strings.Repeat("p", 128), strings.Repeat("s", 64), 1)
	if len(long) > 128 {
		t.Errorf("child id of %d characters", len(long))
	}
}

func TestRedrive(t *testing.T) {
	retried := func(off time.Duration) events.Event {
		return events.Event{Type: events.TypeWorkflowRetried, Time: at(off), WorkflowRetried: &events.WorkflowRetried{Reason: "again"}}
	}
	t.Run("failed step runs again with the next attempts", func(t *testing.T) {
		r := startRun(t, pairYAML, nil)
		r.result(time.Second, "a", 1, events.OutcomeCompleted, "A", nil)
		r.result(2*time.Second, "b", 1, events.OutcomeAttemptFailed, nil, &events.Error{Message: "x"})
		r.result(3*time.Second, "b", 2, events.OutcomeFailed, nil, &events.Error{Message: "x"})
		checkEnd(t, r, workflow.StatusFailed, nil)
		evs := r.add(retried(time.Hour))
		expect(t, evs, events.TypeStepScheduled)
		if p := evs[0].StepScheduled; p.Path != "b" || p.Gen != 2 || p.FirstAttempt != 3 || p.Input != "A" {
			t.Errorf("scheduled %+v", p)
		}
		if r.st.Status != workflow.StatusRunning || r.st.Retries != 1 || r.st.Error != nil {
			t.Errorf("state after redrive: %q, retries %d, error %+v", r.st.Status, r.st.Retries, r.st.Error)
		}
		// A result of the first scheduling no longer applies.
		if _, ok := workflow.AcceptResult(r.st, events.Result{V: 1, WorkflowID: wfID, Path: "b", Gen: 1, Attempt: 3,
			Outcome: events.OutcomeCompleted}); ok {
			t.Error("result of Gen 1 accepted after the redrive")
		}
		r.result(2*time.Hour, "b", 3, events.OutcomeCompleted, "B", nil)
		checkEnd(t, r, workflow.StatusCompleted, "B")
	})
	t.Run("only a failed workflow is redriven", func(t *testing.T) {
		r := startRun(t, pairYAML, nil)
		expect(t, r.add(retried(time.Second)))
		if r.st.Retries != 0 {
			t.Errorf("Retries = %d", r.st.Retries)
		}
	})
	t.Run("a timed-out workflow gets a new timeout", func(t *testing.T) {
		r := startRun(t, timeoutYAML, nil)
		r.fireTimeout(time.Hour)
		evs := r.add(retried(2 * time.Hour))
		expect(t, evs, events.TypeTimerScheduled)
		if ts := evs[0].TimerScheduled; ts.TimerID != workflow.WorkflowTimeoutTimerID(1) || !ts.Due.Equal(at(3*time.Hour)) {
			t.Errorf("TimerScheduled = %+v", ts)
		}
		r.result(2*time.Hour+time.Second, "a", 1, events.OutcomeCompleted, "A", nil)
		r.result(2*time.Hour+2*time.Second, "b", 1, events.OutcomeCompleted, "B", nil)
		checkEnd(t, r, workflow.StatusCompleted, "B")
	})
	t.Run("a timed-out wait waits again with a new timer", func(t *testing.T) {
		r := startRun(t, approvalYAML, nil)
		r.result(time.Second, "prepare", 1, events.OutcomeCompleted, "ready", nil)
		if _, ok := r.fire(72*time.Hour+time.Second, "approve"); !ok {
			t.Fatal("timer not accepted")
		}
		checkEnd(t, r, workflow.StatusFailed, nil)
		evs := r.add(retried(100 * time.Hour))
		want := events.Event{Type: events.TypeWaitStarted, Time: at(100 * time.Hour), WaitStarted: &events.WaitStarted{
			Path: "approve", Signal: "approve", TimeoutAt: at(172 * time.Hour), TimerID: workflow.TimerID("approve", 2)}}
		if !sameEvents(evs, []events.Event{want}) {
			t.Fatalf("after redrive %s\nwant %s", showEvents(evs), showEvents([]events.Event{want}))
		}
		// The first waiting's timer no longer applies.
		old := events.TimerDue{V: 1, WorkflowID: wfID, TimerID: workflow.TimerID("approve", 1), Path: "approve"}
		if _, ok, _ := workflow.AcceptTimer(r.st, old, at(200*time.Hour)); ok {
			t.Error("timer of the first waiting accepted")
		}
		r.signal(101*time.Hour, "approve", "yes")
		r.result(102*time.Hour, "notify", 1, events.OutcomeCompleted, "sent", nil)
		checkEnd(t, r, workflow.StatusCompleted, "sent")
	})
	t.Run("a repeat resumes at its failed iteration", func(t *testing.T) {
		r := startRun(t, repeatYAML, nil)
		r.result(time.Second, "poll[0].check", 1, events.OutcomeCompleted, map[string]any{"done": false}, nil)
		r.result(2*time.Second, "poll[1].check", 1, events.OutcomeFailed, nil, &events.Error{Message: "x"})
		checkEnd(t, r, workflow.StatusFailed, nil)
		evs := r.add(retried(time.Hour))
		if got := scheduledPaths(evs); !reflect.DeepEqual(got, map[string]any{"poll[1].check": int64(1)}) {
			t.Errorf("after redrive scheduled %v (%s)", got, showEvents(evs))
		}
		r.result(2*time.Hour, "poll[1].check", 2, events.OutcomeCompleted, map[string]any{"done": true}, nil)
		checkEnd(t, r, workflow.StatusCompleted, map[string]any{"done": true})
	})
}

// A sleep in a parallel branch is canceled when another branch fails the
// workflow: its timer no longer applies, and the redriven workflow sleeps
// again on a new timer.
func TestRedriveAfterTimerWhileFailed(t *testing.T) {
	r := startRun(t, parallelSleepYAML, nil)
	r.result(time.Second, "work", 1, events.OutcomeFailed, nil, &events.Error{Message: "x"})
	checkEnd(t, r, workflow.StatusFailed, nil)
	if s := r.st.Steps["nap"]; s.Status != workflow.StepCanceled {
		t.Fatalf("nap is %s after the other branch failed, want CANCELED", s.Status)
	}
	old := events.TimerDue{V: 1, WorkflowID: wfID, TimerID: r.st.Steps["nap"].TimerID, Path: "nap"}
	if _, ok, _ := workflow.AcceptTimer(r.st, old, at(time.Hour)); ok {
		t.Fatal("timer of a canceled sleep accepted")
	}
	r.add(events.Event{Type: events.TypeWorkflowRetried, Time: at(2 * time.Hour), WorkflowRetried: &events.WorkflowRetried{}})
	s := r.st.Steps["nap"]
	if s.Status != workflow.StepWaiting || s.TimerID == old.TimerID {
		t.Fatalf("after the redrive nap is %s with timer %q, want WAITING on a new timer", s.Status, s.TimerID)
	}
	if _, ok, _ := workflow.AcceptTimer(r.st, old, at(4*time.Hour)); ok {
		t.Error("timer of the canceled sleep accepted after the redrive")
	}
	r.result(2*time.Hour+time.Second, "work", 2, events.OutcomeCompleted, "w", nil)
	r.fire(3*time.Hour, "nap")
	r.result(3*time.Hour+time.Second, "after", 1, events.OutcomeCompleted, "a", nil)
	checkEnd(t, r, workflow.StatusCompleted, map[string]any{"a": "w", "b": "a"})
}

// A redrive reopens a loop's failed iterations while later ones still
// run: the loop's concurrency still holds.
func TestRedriveKeepsForeachConcurrency(t *testing.T) {
	def := parse(t, `
name: par
steps:
  - id: par
    parallel:
      branches:
        loop:
          - id: each
            foreach: input.items
            concurrency: 2
            on_error: continue
            do:
              - { id: one, task: t, input: "${ item }" }
        other:
          - { id: boom, task: t }
`)
	h := hist(started(0, map[string]any{"items": []any{int64(0), int64(1), int64(2), int64(3), int64(4)}}))
	st := fold(t, h)
	step := func(evs []events.Event) {
		t.Helper()
		for _, e := range evs {
			if err := st.Apply(e); err != nil {
				t.Fatal(err)
			}
		}
		h = append(h, evs...)
		more, err := workflow.Advance(st, def)
		if err != nil {
			t.Fatal(err)
		}
		h = append(h, more...)
	}
	fail := func(off time.Duration, path string) events.Event {
		return events.Result{V: 1, WorkflowID: wfID, Path: path, Attempt: 1, Outcome: events.OutcomeFailed, Time: at(off),
			Error: &events.Error{Message: "x"}}.Event()
	}
	running := func(st *workflow.State) []string {
		var out []string
		for i := range 5 {
			if s := st.Steps[fmt.Sprintf("each[%d].one", i)]; s != nil && s.Status == workflow.StepRunning {
				out = append(out, s.Path)
			}
		}
		return out
	}
	step(nil)
	if r := running(st); len(r) == 0 {
		// Paths may be named differently: find the loop's first step.
		for _, p := range st.Order {
			t.Logf("step %s %s", p, st.Steps[p].Status)
		}
		t.Fatal("no iteration running after the start")
	}
	step([]events.Event{fail(time.Second, "each[0].one"), fail(time.Second, "each[1].one")})
	if r := running(st); len(r) != 2 {
		t.Fatalf("running after two failed items: %v", r)
	}
	step([]events.Event{fail(2*time.Second, "boom")})
	if st.Status != workflow.StatusFailed {
		t.Fatalf("status %s after the other branch failed", st.Status)
	}
	step([]events.Event{{Type: events.TypeWorkflowRetried, Time: at(time.Hour), WorkflowRetried: &events.WorkflowRetried{}}})
	if r := running(st); len(r) > 2 {
		t.Fatalf("after the redrive %d iterations run at once (%v); concurrency is 2", len(r), r)
	}
	// The same from a state folded afresh.
	re := fold(t, h)
	if r := running(re); len(r) > 2 {
		t.Fatalf("folded: %d iterations run (%v)", len(r), r)
	}
	if evs := workflow.Decide(re, def); len(evs) != 0 {
		t.Fatalf("folded afresh, the workflow decides more: %s", showEvents(evs))
	}
}
