package workflow_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// searchYAML sets search attributes at the start, from the input, and on
// steps as they complete, from their outputs; later values replace earlier
// ones of the same name.
const searchYAML = `
name: searched
search:
  customer: "${ input.customer }"
  stage: start
  since: "${ workflow.now }"
steps:
  - id: charge
    task: billing.charge
    search:
      amount: "${ steps.charge.output.amount }"
      stage: charged
  - id: lines
    foreach: input.lines
    do:
      - id: ship
        task: ship
        search: { last_line: "${ item + '/' + string(steps.ship.output) }" }
  - id: done
    task: t
    catch:
      - do: []
    search: { stage: "${ 'done:' + steps.done.output }" }
`

func searchSet(off time.Duration, path string, attrs map[string]any) events.Event {
	return events.Event{Type: events.TypeSearchAttributesSet, Time: at(off), SearchAttributesSet: &events.SearchAttributesSet{
		Path: path, Attributes: attrs}}
}

func TestSearchAttributes(t *testing.T) {
	r := startRun(t, searchYAML, map[string]any{"customer": "ann", "lines": []any{"a", "b"}})
	want := hist(
		searchSet(0, "", map[string]any{"customer": "ann", "stage": "start", "since": at(0)}),
		task(0, "charge", "billing.charge", nil),
	)
	if got := r.hist[1:]; !sameEvents(got, want) {
		t.Fatalf("first decision = %s\nwant %s", showEvents(got), showEvents(want))
	}
	if !r.st.StartSearched || r.st.SearchChanges != 1 {
		t.Errorf("after the start: StartSearched %v, SearchChanges %d", r.st.StartSearched, r.st.SearchChanges)
	}

	// The step's search sees its own output, and its stage replaces the start's.
	evs := r.result(time.Second, "charge", 1, events.OutcomeCompleted, map[string]any{"amount": 2.5}, nil)
	if len(evs) == 0 || !sameEvents(evs[:1], hist(searchSet(time.Second, "charge", map[string]any{"amount": 2.5, "stage": "charged"}))) {
		t.Fatalf("after charge: %s", showEvents(evs))
	}
	if !r.st.Steps["charge"].Searched {
		t.Error("charge: Searched is false after its search was recorded")
	}
	want2 := map[string]any{"customer": "ann", "stage": "charged", "since": at(0), "amount": 2.5}
	if !reflect.DeepEqual(r.st.Search, want2) {
		t.Errorf("Search = %v, want %v", r.st.Search, want2)
	}

	// Iterations record theirs as each completes: the last one wins.
	r.result(2*time.Second, "lines[1].ship", 1, events.OutcomeCompleted, int64(7), nil)
	r.result(3*time.Second, "lines[0].ship", 1, events.OutcomeCompleted, int64(3), nil)
	if got := r.st.Search["last_line"]; got != "a/3" {
		t.Errorf("last_line = %v, want a/3 (lines[0] completed last)", got)
	}

	// A caught failure completes the step with the catch's output.
	r.result(4*time.Second, "done", 1, events.OutcomeFailed, nil, &events.Error{Type: "oops", Message: "no"})
	if r.st.Status != workflow.StatusFailed || r.st.Error.Type != workflow.ErrTypeExpression {
		// 'done:' + null has no overload: the run fails, as for other expressions.
		t.Fatalf("status %s, error %+v; want failed with an expression error", r.st.Status, r.st.Error)
	}
	if r.st.ErrorPath != "" || !strings.HasPrefix(r.st.Error.Message, "step done: evaluate search.stage: ") {
		t.Errorf("error %q at %q, want it to name the step and field, at no step (the step completed)", r.st.Error.Message, r.st.ErrorPath)
	}
	if s := r.st.Steps["done"]; s.Status != workflow.StepCompleted || s.Searched {
		t.Errorf("done is %s, searched %v; want completed, not searched", s.Status, s.Searched)
	}
	if r.st.SearchChanges != 4 {
		t.Errorf("SearchChanges = %d, want 4", r.st.SearchChanges)
	}
}

func TestSearchAttributesCompleteRun(t *testing.T) {
	r := startRun(t, `
name: s
steps:
  - id: a
    task: t
    search: { n: "${ steps.a.output }" }
`, nil)
	if len(r.hist) != 2 {
		t.Fatalf("a definition without search records none at the start: %s", showEvents(r.hist[1:]))
	}
	evs := r.result(time.Second, "a", 1, events.OutcomeCompleted, int64(4), nil)
	want := hist(searchSet(time.Second, "a", map[string]any{"n": int64(4)}), wfCompleted(time.Second, int64(4)))
	if !sameEvents(evs, want) {
		t.Fatalf("after a = %s\nwant %s", showEvents(evs), showEvents(want))
	}
}

// A value that cannot be recorded fails the run with
// invalid_search_attribute, at the start or when a step completes; a catch
// of the step does not handle it. So does a failed evaluation, with the
// type other expressions fail with.
func TestSearchAttributesFailRun(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		input     any
		out       any
		typ, msg  string
	}{
		{"start, list", "name: s\nsearch: { tags: \"${ input.tags }\" }\nsteps: [{ id: a, task: t }]\n",
			map[string]any{"tags": []any{"x"}}, nil, workflow.ErrTypeInvalidSearch,
			"evaluate search.tags: invalid search attribute value: it is a list, not a string, number, bool or timestamp"},
		{"start, missing", "name: s\nsearch: { who: \"${ input.who }\" }\nsteps: [{ id: a, task: t }]\n",
			map[string]any{}, nil, workflow.ErrTypeExpression, "evaluate search.who: no such key: who"},
		{"step, too long", "name: s\nsteps:\n  - id: a\n    task: t\n    catch: [{ do: [] }]\n    search: { note: \"${ steps.a.output }\" }\n",
			nil, strings.Repeat("x", 300), workflow.ErrTypeInvalidSearch,
			"step a: evaluate search.note: invalid search attribute value: a string of 300 bytes, longer than 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.src, tc.input)
			if r.st.Status == workflow.StatusRunning {
				r.result(time.Second, "a", 1, events.OutcomeCompleted, tc.out, nil)
			}
			if r.st.Status != workflow.StatusFailed || r.st.Error == nil {
				t.Fatalf("status %s; want failed: %s", r.st.Status, showEvents(r.hist))
			}
			if got := *r.st.Error; got.Type != tc.typ || got.Message != tc.msg || r.st.ErrorPath != "" {
				t.Errorf("error %+v at %q\nwant type %s, message %q, no path", got, r.st.ErrorPath, tc.typ, tc.msg)
			}
		})
	}
}

// The folded state keeps who started the run, and a snapshot keeps the
// search attributes and what was recorded.
func TestSearchAttributesFoldAndSnapshot(t *testing.T) {
	start := started(0, nil)
	start.Identity = "alice"
	h := hist(start,
		searchSet(0, "", map[string]any{"customer": "ann", "n": int64(1)}),
		task(0, "a", "t", nil), completed(time.Second, "a", 1, "x"),
		searchSet(time.Second, "a", map[string]any{"n": 2.5, "due": at(time.Hour), "ok": true}),
	)
	st := fold(t, stored(t, h))
	want := map[string]any{"customer": "ann", "n": 2.5, "due": at(time.Hour), "ok": true}
	if st.StartedBy != "alice" || !reflect.DeepEqual(st.Search, want) || st.SearchChanges != 2 || !st.StartSearched || !st.Steps["a"].Searched {
		t.Fatalf("folded: started by %q, search %v, changes %d, start searched %v, a searched %v",
			st.StartedBy, st.Search, st.SearchChanges, st.StartSearched, st.Steps["a"].Searched)
	}
	got := restore(t, st)
	if d := diffStates(got, st); d != nil {
		t.Errorf("restored from a snapshot: %v", d)
	}
	if due := got.Search["due"].(time.Time); due.Location() != time.UTC {
		t.Errorf("a time from a snapshot is in %v, want UTC", due.Location())
	}
	// A step that completes again needs its search recorded again.
	if err := got.Apply(completed(2*time.Second, "a", 2, "y")); err != nil {
		t.Fatal(err)
	}
	if got.Steps["a"].Searched {
		t.Error("a step completed again is still marked searched")
	}
}

// stored is h encoded and decoded as the event store does.
func stored(tb testing.TB, h []events.Event) []events.Event { return store(tb, h) }
