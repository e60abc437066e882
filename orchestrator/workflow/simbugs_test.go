package workflow_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// The smallest cases of the bugs in simKnownBugs, as the simulation found
// them. Each is skipped while its bug is listed there (set WEFT_SIM_STRICT
// to run it); remove the skip with the entry.

func simSkipKnown(t *testing.T, bug string) {
	t.Helper()
	if _, ok := simKnownBugs[bug]; ok && os.Getenv("WEFT_SIM_STRICT") == "" {
		t.Skipf("known bug %q: %s", bug, simKnownBugs[bug])
	}
}

// simStart folds a start of src and advances it.
func simStart(t *testing.T, src string) (*definition.Definition, *workflow.State, []events.Event) {
	t.Helper()
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	st := &workflow.State{}
	start := events.Event{Type: events.TypeWorkflowStarted, Time: simT0,
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "wf", Definition: def.Name, Revision: 1}}
	if err := st.Apply(start); err != nil {
		t.Fatal(err)
	}
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	return def, st, append([]events.Event{start}, evs...)
}

// One signal completes one wait, however many wait for its name.
func TestSimKnownSignalTakenTwice(t *testing.T) {
	simSkipKnown(t, "signal taken twice")
	def, st, _ := simStart(t, `
name: two-waits
steps:
  - id: both
    parallel:
      branches:
        a: [ { id: w1, wait: { signal: go } } ]
        b: [ { id: w2, wait: { signal: go } } ]
`)
	sig := events.Event{Type: events.TypeSignalReceived, Time: simT0, SignalReceived: &events.SignalReceived{Name: "go"}}
	if err := st.Apply(sig); err != nil {
		t.Fatal(err)
	}
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps["w1"].Done() && st.Steps["w2"].Done() {
		t.Fatalf("one signal completed both waits:\n%s", simShowAll(evs))
	}
}

// Deciding again after a crash kept the first record of a decision ends
// where the whole decision did.
func TestSimKnownCrashChangesTheDecision(t *testing.T) {
	simSkipKnown(t, "crash changes the decision")
	const src = `
name: fail-fast
steps:
  - id: p
    parallel:
      branches:
        a:
          - { id: skip, if: false, task: t }
          - { id: x, fail: { message: first } }
        b: [ { id: work, task: t } ]
        c: [ { id: y, fail: { message: second } } ]
`
	def, whole, evs := simStart(t, src)
	// The orchestrator appends the decision as one record per step
	// command; it crashes after the first, up to and with "work".
	first := 1
	for evs[first].Type != events.TypeStepScheduled {
		first++
	}
	st, err := workflow.Fold(evs[:first+1])
	if err != nil {
		t.Fatal(err)
	}
	again, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	if d := simDiff(st, whole); d != "" {
		t.Fatalf("decided again after the crash: %s\nthe whole decision:\n%s\ndecided again:\n%s", d,
			simShowAll(evs[first+1:]), simShowAll(again))
	}
}

// A redrive resumes failed iterations within the foreach's concurrency.
func TestSimKnownRedriveExceedsConcurrency(t *testing.T) {
	simSkipKnown(t, "redrive exceeds foreach concurrency")
	def, st, _ := simStart(t, `
name: redrive-concurrency
steps:
  - id: each
    foreach: "[1, 2, 3]"
    concurrency: 1
    on_error: continue
    do:
      - { id: a, task: t }
      - { id: b, task: t }
  - id: stop
    fail: { message: stop }
`)
	// Every a succeeds and every b fails, one iteration at a time; then
	// stop fails the workflow.
	for st.Status == workflow.StatusRunning {
		var path string
		for _, p := range st.Order {
			if s := st.Steps[p]; s.Kind == "task" && s.Status == workflow.StepRunning {
				path = p
			}
		}
		if path == "" {
			t.Fatalf("nothing runs:\n%s", simSteps(st))
		}
		r := events.Result{V: 1, WorkflowID: "wf", Path: path, Gen: st.Steps[path].Gen, Attempt: 1, Time: simT0,
			Outcome: events.OutcomeCompleted}
		if strings.HasSuffix(path, ".b") {
			r.Outcome, r.Error = events.OutcomeFailed, &events.Error{Type: "oops", Message: "no"}
		}
		ev, ok := workflow.AcceptResult(st, r)
		if !ok {
			t.Fatalf("result for %s not taken", path)
		}
		if err := st.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if _, err := workflow.Advance(st, def); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Apply(events.Event{Type: events.TypeWorkflowRetried, Time: simT0, WorkflowRetried: &events.WorkflowRetried{}}); err != nil {
		t.Fatal(err)
	}
	evs, err := workflow.Advance(st, def)
	if err != nil {
		t.Fatal(err)
	}
	var scheduled []string
	for _, e := range evs {
		if e.StepScheduled != nil {
			scheduled = append(scheduled, e.StepScheduled.Path)
		}
	}
	if len(scheduled) > 1 {
		t.Fatalf("the redrive runs %v at once, concurrency 1:\n%s", scheduled, simShowAll(evs))
	}
}

// A redrive runs the failed iterations of an on_error: continue foreach
// that had not completed within its concurrency, like any others: here
// the workflow's timeout leaves it running. (A failing parallel around it,
// which cancels it, does the same.)
func TestSimKnownRedriveRerunsPastConcurrency(t *testing.T) {
	simSkipKnown(t, "redrive reruns failed iterations past foreach concurrency")
	def, st, _ := simStart(t, `
name: redrive-continue
timeout: 10s
steps:
  - id: each
    foreach: "[1, 2]"
    concurrency: 1
    on_error: continue
    do:
      - { id: a, task: t }
      - { id: b, task: t }
`)
	apply := func(ev events.Event) {
		t.Helper()
		if err := st.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if _, err := workflow.Advance(st, def); err != nil {
			t.Fatal(err)
		}
	}
	// Iteration 0 fails in b and the loop goes on; iteration 1 runs b
	// when the workflow times out.
	for _, r := range []struct {
		path string
		ok   bool
	}{{"each[0].a", true}, {"each[0].b", false}, {"each[1].a", true}} {
		res := events.Result{V: 1, WorkflowID: "wf", Path: r.path, Gen: 1, Attempt: 1, Time: simT0, Outcome: events.OutcomeCompleted}
		if !r.ok {
			res.Outcome, res.Error = events.OutcomeFailed, &events.Error{Type: "oops", Message: "no"}
		}
		ev, ok := workflow.AcceptResult(st, res)
		if !ok {
			t.Fatalf("result for %s not taken", r.path)
		}
		apply(ev)
	}
	ev, ok, _ := workflow.AcceptTimer(st, events.TimerDue{V: 1, WorkflowID: "wf", TimerID: workflow.WorkflowTimeoutTimerID(0)},
		simT0.Add(10*time.Second))
	if !ok {
		t.Fatal("the workflow's timeout not taken")
	}
	apply(ev)
	if st.Status != workflow.StatusFailed {
		t.Fatalf("status %s, want FAILED", st.Status)
	}
	apply(events.Event{Type: events.TypeWorkflowRetried, Time: simT0.Add(10 * time.Second), WorkflowRetried: &events.WorkflowRetried{}})
	var running []string
	for _, p := range st.Order {
		if s := st.Steps[p]; s.Kind == "task" && s.Status == workflow.StepRunning {
			running = append(running, p)
		}
	}
	if len(running) > 1 {
		t.Fatalf("after the redrive %v run at once, concurrency 1:\n%s", running, simSteps(st))
	}
}

// A redrive lets an iteration that held its slot when the run failed pass
// its result up before it reopens a failed one: a foreach of concurrency 1
// never has two iterations open. Here iteration 1's wait timed out while
// the run was failed by its timeout; the redrive fails iteration 1 first,
// then runs iteration 0 again.
func TestSimRedriveLetsAnIterationFinishBeforeReopening(t *testing.T) {
	def, st, _ := simStart(t, `
name: redrive-finishing
timeout: 20s
steps:
  - id: each
    foreach: "[1, 2]"
    concurrency: 1
    on_error: continue
    do:
      - id: r
        repeat:
          max_iterations: 1
          until: "true"
          do:
            - { id: w, wait: { signal: a, timeout: 10s } }
`)
	step := func(ev events.Event) {
		t.Helper()
		if err := st.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if st.Status == workflow.StatusRunning {
			if _, err := workflow.Advance(st, def); err != nil {
				t.Fatal(err)
			}
		}
	}
	fire := func(id, path string, at time.Duration) {
		t.Helper()
		ev, ok, _ := workflow.AcceptTimer(st, events.TimerDue{V: 1, WorkflowID: "wf", TimerID: id, Path: path, Due: simT0.Add(at)}, simT0.Add(at))
		if !ok {
			t.Fatalf("timer %s not taken:\n%s", id, simSteps(st))
		}
		step(ev)
	}
	fire(st.Steps["each[0].r[0].w"].TimerID, "each[0].r[0].w", 10*time.Second)
	wait1 := st.Steps["each[1].r[0].w"]
	if wait1 == nil || wait1.Status != workflow.StepWaiting {
		t.Fatalf("iteration 1 does not wait:\n%s", simSteps(st))
	}
	fire(workflow.WorkflowTimeoutTimerID(0), "", 20*time.Second)
	if st.Status != workflow.StatusFailed {
		t.Fatalf("status %s, want FAILED", st.Status)
	}
	fire(wait1.TimerID, "each[1].r[0].w", 20*time.Second)
	step(events.Event{Type: events.TypeWorkflowRetried, Time: simT0.Add(20 * time.Second), WorkflowRetried: &events.WorkflowRetried{}})
	open := map[string]bool{}
	for _, p := range st.Order {
		if s := st.Steps[p]; strings.HasPrefix(p, "each[") && (s.Status == workflow.StepRunning || s.Status == workflow.StepWaiting) {
			open[p[:strings.IndexByte(p, ']')+1]] = true
		}
	}
	if len(open) > 1 {
		t.Fatalf("after the redrive iterations %v are open at once, concurrency 1:\n%s", open, simSteps(st))
	}
}
