package workflow_test

import (
	"os"
	"testing"

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
