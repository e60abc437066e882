package workflow_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

func TestMovers(t *testing.T) {
	timer := func(path string, gen int) string { return workflow.TimerID(path, gen) }
	tests := []struct {
		name  string
		src   string
		input any
		// drive takes the started workflow to the state under test.
		drive func(r *run)
		want  []workflow.Mover
		// undecided: Decide still has events for the state.
		undecided bool
	}{{
		name: "a task in flight",
		src:  pipelineYAML, input: pipelineInput,
		want: []workflow.Mover{{Kind: workflow.MoverTask, Path: "fetch", Task: "http.get", Gen: 1}},
	}, {
		name:  "a wait with a timeout",
		src:   approvalYAML,
		drive: func(r *run) { r.result(time.Minute, "prepare", 1, events.OutcomeCompleted, "ok", nil) },
		want: []workflow.Mover{{Kind: workflow.MoverTimer, Path: "approve", TimerID: timer("approve", 1),
			Due: at(time.Minute + 72*time.Hour), Signal: "approve"}},
	}, {
		name: "a wait without a timeout",
		src:  twiceYAML,
		want: []workflow.Mover{{Kind: workflow.MoverSignal, Path: "first", Signal: "go"}},
	}, {
		name: "a sleep",
		src:  sleepYAML,
		want: []workflow.Mover{{Kind: workflow.MoverTimer, Path: "nap", TimerID: timer("nap", 1), Due: at(time.Hour)}},
	}, {
		name:      "a sleep whose timer fired, not yet decided",
		src:       sleepYAML,
		drive:     func(r *run) { apply(r.t, r.st, timerFired(time.Hour, "nap", at(time.Hour))) },
		undecided: true,
	}, {
		name: "parallel branches, in the order they started",
		src:  parallelSleepYAML,
		want: []workflow.Mover{
			{Kind: workflow.MoverTask, Path: "work", Task: "t", Gen: 1},
			{Kind: workflow.MoverTimer, Path: "nap", TimerID: timer("nap", 1), Due: at(time.Hour)},
		},
	}, {
		name: "a child workflow",
		src:  childYAML, input: map[string]any{"amount": int64(1)},
		want: []workflow.Mover{{Kind: workflow.MoverChild, Path: "charge", Task: "billing", Gen: 1,
			ChildID: workflow.ChildID(wfID, "charge", 1)}},
	}, {
		name: "a workflow timeout",
		src:  timeoutYAML,
		want: []workflow.Mover{
			{Kind: workflow.MoverTask, Path: "a", Task: "t", Gen: 1},
			{Kind: workflow.MoverTimer, TimerID: workflow.WorkflowTimeoutTimerID(0), Due: at(time.Hour)},
		},
	}, {
		name:  "a cancel requested",
		src:   twiceYAML,
		drive: func(r *run) { apply(r.t, r.st, cancelRequested(time.Minute, "enough")) },
		want: []workflow.Mover{
			{Kind: workflow.MoverSignal, Path: "first", Signal: "go"},
			{Kind: workflow.MoverCancel},
		},
		undecided: true,
	}, {
		name:      "a signal received, not yet decided",
		src:       twiceYAML,
		drive:     func(r *run) { apply(r.t, r.st, signal(time.Minute, "go", int64(1))) },
		want:      []workflow.Mover{{Kind: workflow.MoverSignal, Path: "first", Signal: "go"}},
		undecided: true,
	}, {
		name: "a completed workflow",
		src:  pairYAML,
		drive: func(r *run) {
			r.result(time.Minute, "a", 1, events.OutcomeCompleted, "A", nil)
			r.result(2*time.Minute, "b", 1, events.OutcomeCompleted, "B", nil)
		},
	}, {
		name:  "a failed workflow with a step still running",
		src:   parallelSleepYAML,
		drive: func(r *run) { apply(r.t, r.st, wfFailed(time.Minute, "", "x", "gave up")) },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.src, tc.input)
			if tc.drive != nil {
				tc.drive(r)
			}
			st := r.st
			got := workflow.Movers(st)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Movers =\n  %+v\nwant\n  %+v", got, tc.want)
			}
			if undecided := len(workflow.Decide(st, r.def)) > 0; undecided != tc.undecided {
				t.Errorf("Decide has events: %v, want %v", undecided, tc.undecided)
			}
		})
	}
}

func TestMoverString(t *testing.T) {
	due := at(time.Hour)
	for _, tc := range []struct {
		m    workflow.Mover
		want string
	}{
		{workflow.Mover{Kind: workflow.MoverTask, Path: "a", Task: "t"}, "step a: task t in flight"},
		{workflow.Mover{Kind: workflow.MoverChild, Path: "c", ChildID: "kid"}, "step c: child workflow kid running"},
		{workflow.Mover{Kind: workflow.MoverTimer, Path: "nap", Due: due}, "step nap: sleeping until 2025-03-01T13:00:00Z"},
		{workflow.Mover{Kind: workflow.MoverTimer, Path: "w", Signal: "ok", Due: due}, `step w: waiting for signal "ok", timeout due 2025-03-01T13:00:00Z`},
		{workflow.Mover{Kind: workflow.MoverTimer, Due: due}, "workflow timeout due 2025-03-01T13:00:00Z"},
		{workflow.Mover{Kind: workflow.MoverSignal, Path: "w", Signal: "ok"}, `step w: waiting for signal "ok"`},
		{workflow.Mover{Kind: workflow.MoverCancel}, "cancel requested"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.m, got, tc.want)
		}
	}
}

func apply(t *testing.T, st *workflow.State, e events.Event) {
	t.Helper()
	if err := st.Apply(e); err != nil {
		t.Fatalf("Apply %s: %v", e.Type, err)
	}
}
