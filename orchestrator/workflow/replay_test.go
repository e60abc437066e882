package workflow_test

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// run drives one workflow as the orchestrator does: outside events are
// accepted and applied, then Advance decides; every event goes to hist.
// After each Advance it checks that the history replays.
type run struct {
	t    *testing.T
	def  *definition.Definition
	st   *workflow.State
	hist []events.Event
}

func startRun(t *testing.T, src string, input any) *run {
	t.Helper()
	r := &run{t: t, def: parse(t, src), hist: hist(started(0, input))}
	r.st = fold(t, r.hist)
	r.advance()
	return r
}

// advance decides, records the decisions and checks the history replays.
func (r *run) advance() []events.Event {
	r.t.Helper()
	before := len(r.hist)
	evs, err := workflow.Advance(r.st, r.def)
	if err != nil {
		r.t.Fatalf("Advance: %v", err)
	}
	r.hist = append(r.hist, evs...)
	r.checkReplay(before)
	return evs
}

// add records an outside event and advances.
func (r *run) add(e events.Event) []events.Event {
	r.t.Helper()
	if err := r.st.Apply(e); err != nil {
		r.t.Fatalf("Apply %s: %v", e.Type, err)
	}
	r.hist = append(r.hist, e)
	return r.advance()
}

// result reports an attempt of the running step at path, at offset off.
func (r *run) result(off time.Duration, path string, attempt int, o events.Outcome, out any, errv *events.Error) []events.Event {
	r.t.Helper()
	s := r.st.Steps[path]
	if s == nil {
		r.t.Fatalf("result for %s, which has not started", path)
	}
	res := events.Result{V: 1, WorkflowID: r.st.ID, Path: path, Gen: s.Gen, Attempt: attempt, Outcome: o,
		Output: out, Error: errv, Time: at(off)}
	if o == events.OutcomeAttemptFailed {
		res.RetryDelay = time.Second
	}
	ev, ok := workflow.AcceptResult(r.st, res)
	if !ok {
		r.t.Fatalf("result %+v not accepted", res)
	}
	return r.add(ev)
}

// signal sends a signal at offset off.
func (r *run) signal(off time.Duration, name string, payload any) []events.Event {
	r.t.Helper()
	return r.add(signal(off, name, payload))
}

// fire delivers the timer of the wait at path at offset off; it reports
// whether the timer was accepted.
func (r *run) fire(off time.Duration, path string) ([]events.Event, bool) {
	r.t.Helper()
	s := r.st.Steps[path]
	if s == nil || s.TimerID == "" {
		r.t.Fatalf("no timer for %s", path)
	}
	td := events.TimerDue{V: 1, WorkflowID: r.st.ID, TimerID: s.TimerID, Path: path}
	ev, ok, due := workflow.AcceptTimer(r.st, td, at(off))
	if !due {
		r.t.Fatalf("timer of %s not due at %v", path, at(off))
	}
	if !ok {
		return nil, false
	}
	return r.add(ev), true
}

// fireTimeout delivers the workflow timeout's timer at offset off; it
// reports whether the timer was accepted.
func (r *run) fireTimeout(off time.Duration) ([]events.Event, bool) {
	r.t.Helper()
	td := events.TimerDue{V: 1, WorkflowID: r.st.ID, TimerID: r.st.TimeoutTimerID}
	ev, ok, due := workflow.AcceptTimer(r.st, td, at(off))
	if !due {
		r.t.Fatalf("workflow timeout not due at %v", at(off))
	}
	if !ok {
		return nil, false
	}
	return r.add(ev), true
}

// checkReplay checks the history as it stands, whose decisions start at
// index before:
//   - folded from scratch it gives the state built step by step, and
//     decides nothing new;
//   - after a crash that kept any first part of the decisions, deciding
//     again gives the rest;
//   - stored (encoded in records) and read back, it folds to the same
//     state and decides nothing new.
func (r *run) checkReplay(before int) {
	r.t.Helper()
	re, err := workflow.Fold(r.hist)
	if err != nil {
		r.t.Fatalf("replay: Fold: %v", err)
	}
	if d := diffStates(re, r.st); d != nil {
		r.t.Errorf("replay: folded state differs from the incremental one: %v", d)
	}
	if evs := workflow.Decide(re, r.def); len(evs) != 0 {
		r.t.Errorf("replay: Decide on the replayed history = %s", showEvents(evs))
	}
	decided := r.hist[before:]
	for k := range len(decided) + 1 {
		st, err := workflow.Fold(r.hist[:before+k])
		if err != nil {
			r.t.Fatalf("crash after %d decisions: Fold: %v", k, err)
		}
		rest, err := workflow.Advance(st, r.def)
		if err != nil {
			r.t.Fatalf("crash after %d decisions: Advance: %v", k, err)
		}
		if !sameEvents(rest, decided[k:]) {
			r.t.Errorf("crash after %d decisions: Advance = %s\nwant %s", k, showEvents(rest), showEvents(decided[k:]))
		}
		// The same crash, with the state restored from a snapshot taken
		// there instead of folded: it equals the folded state and decides
		// the same.
		st, err = workflow.Fold(r.hist[:before+k])
		if err != nil {
			r.t.Fatalf("crash after %d decisions: Fold: %v", k, err)
		}
		snap := restore(r.t, st)
		if d := diffStates(snap, st); d != nil {
			r.t.Errorf("crash after %d decisions: state from snapshot differs: %v", k, d)
		}
		rest, err = workflow.Advance(snap, r.def)
		if err != nil {
			r.t.Fatalf("crash after %d decisions, from snapshot: Advance: %v", k, err)
		}
		if !sameEvents(rest, decided[k:]) {
			r.t.Errorf("crash after %d decisions, from snapshot: Advance = %s\nwant %s", k, showEvents(rest), showEvents(decided[k:]))
		}
	}
	// A snapshot of the state as decisions left it (with what they learned
	// about loops) folds the rest of the history like the state itself.
	snap := restore(r.t, r.st)
	if d := diffStates(snap, r.st); d != nil {
		r.t.Errorf("snapshot: restored state differs: %v", d)
	}
	if evs := workflow.Decide(snap, r.def); len(evs) != 0 {
		r.t.Errorf("snapshot: Decide on the restored state = %s", showEvents(evs))
	}
	stored := store(r.t, r.hist)
	st, err := workflow.Fold(stored)
	if err != nil {
		r.t.Fatalf("stored replay: Fold: %v", err)
	}
	// Payload times decode in time.Local (see the events tests), and an
	// empty list of items decodes as none: neither changes a decision.
	st.TimeoutAt = st.TimeoutAt.UTC()
	for path, s := range st.Steps {
		s.TimeoutAt = s.TimeoutAt.UTC()
		if s.Items == nil && r.st.Steps[path] != nil && r.st.Steps[path].Items != nil && len(r.st.Steps[path].Items) == 0 {
			s.Items = []any{}
		}
	}
	if d := diffStates(st, r.st); d != nil {
		r.t.Errorf("stored replay: folded state differs: %v", d)
	}
	if evs := workflow.Decide(st, r.def); len(evs) != 0 {
		r.t.Errorf("stored replay: Decide = %s", showEvents(evs))
	}
}

// restore encodes st as a snapshot and decodes it again. An empty list of
// items may come back as none, as from a stored history: that changes no
// decision, so it is put back for comparing.
func restore(tb testing.TB, st *workflow.State) *workflow.State {
	tb.Helper()
	b, err := workflow.EncodeSnapshot(st)
	if err != nil {
		tb.Fatalf("EncodeSnapshot: %v", err)
	}
	got, err := workflow.DecodeSnapshot(b, st.LastSeq)
	if err != nil {
		tb.Fatalf("DecodeSnapshot: %v", err)
	}
	for path, s := range got.Steps {
		if s.Items == nil && st.Steps[path] != nil && st.Steps[path].Items != nil && len(st.Steps[path].Items) == 0 {
			s.Items = []any{}
		}
	}
	return got
}

// store encodes h as the event store does (records of up to three events)
// and decodes it again.
func store(tb testing.TB, h []events.Event) []events.Event {
	tb.Helper()
	var out []events.Event
	for c := range slices.Chunk(h, 3) {
		b, err := events.Encode(c...)
		if err != nil {
			tb.Fatalf("Encode: %v", err)
		}
		rec, err := events.Decode(b)
		if err != nil {
			tb.Fatalf("Decode: %v", err)
		}
		out = append(out, rec.Events...)
	}
	return out
}

// diffStates names the fields in which a and b differ, or returns nil.
func diffStates(a, b *workflow.State) []string {
	a, b = workflow.WithoutLoopProgress(a), workflow.WithoutLoopProgress(b)
	if reflect.DeepEqual(a, b) {
		return nil
	}
	var d []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		name := va.Type().Field(i).Name
		if name == "Steps" || !va.Type().Field(i).IsExported() {
			continue
		}
		if fa, fb := va.Field(i).Interface(), vb.Field(i).Interface(); !reflect.DeepEqual(fa, fb) {
			d = append(d, fmt.Sprintf("%s: %+v != %+v", name, fa, fb))
		}
	}
	paths := map[string]bool{}
	for p := range a.Steps {
		paths[p] = true
	}
	for p := range b.Steps {
		paths[p] = true
	}
	var sorted []string
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		if sa, sb := a.Steps[p], b.Steps[p]; !reflect.DeepEqual(sa, sb) {
			d = append(d, fmt.Sprintf("step %s: %+v != %+v", p, sa, sb))
		}
	}
	if d == nil {
		d = append(d, "unexported fields")
	}
	return d
}

func TestReplay(t *testing.T) {
	io := &events.Error{Message: "refused", Type: "io"}
	tests := []struct {
		name   string
		def    string
		input  any
		drive  func(r *run)
		status workflow.Status
		output any
		types  []events.Type // of the whole history
	}{
		{
			name: "pipeline with a retry", def: pipelineYAML, input: pipelineInput,
			drive: func(r *run) {
				r.result(time.Second, "fetch", 1, events.OutcomeAttemptFailed, nil, io)
				r.result(4*time.Second, "fetch", 2, events.OutcomeCompleted, map[string]any{"body": "hello"}, nil)
				r.result(5*time.Second, "transform", 1, events.OutcomeCompleted, "HELLO", nil)
				r.result(6*time.Second, "store", 1, events.OutcomeCompleted, "ok", nil)
			},
			status: workflow.StatusCompleted, output: map[string]any{"stored": "ok", "size": int64(5)},
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepAttemptFailed,
				events.TypeStepCompleted, events.TypeStepScheduled, events.TypeStepCompleted, events.TypeStepScheduled,
				events.TypeStepCompleted, events.TypeWorkflowCompleted},
		},
		{
			name: "pipeline step fails", def: pipelineYAML, input: pipelineInput,
			drive: func(r *run) {
				r.result(time.Second, "fetch", 1, events.OutcomeFailed, nil, &events.Error{Message: "400", Type: "bad_request"})
			},
			status: workflow.StatusFailed,
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepFailed,
				events.TypeWorkflowFailed},
		},
		{
			name: "approval signaled in time", def: approvalYAML,
			drive: func(r *run) {
				r.result(time.Second, "prepare", 1, events.OutcomeCompleted, "ready", nil)
				r.signal(time.Minute, "other", nil)
				r.signal(time.Hour, "approve", map[string]any{"by": "bob"})
				if _, ok := r.fire(73*time.Hour, "approve"); ok {
					r.t.Error("timer of a completed wait accepted")
				}
				r.result(time.Hour+time.Second, "notify", 1, events.OutcomeCompleted, "sent", nil)
			},
			status: workflow.StatusCompleted, output: "sent",
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepCompleted,
				events.TypeWaitStarted, events.TypeSignalReceived, events.TypeSignalReceived, events.TypeStepCompleted,
				events.TypeStepScheduled, events.TypeStepCompleted, events.TypeWorkflowCompleted},
		},
		{
			name: "approval signaled before the wait", def: approvalYAML,
			drive: func(r *run) {
				r.signal(time.Second, "approve", "early")
				r.result(2*time.Second, "prepare", 1, events.OutcomeCompleted, "ready", nil)
				r.result(3*time.Second, "notify", 1, events.OutcomeCompleted, nil, nil)
			},
			status: workflow.StatusCompleted,
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeSignalReceived,
				events.TypeStepCompleted, events.TypeWaitStarted, events.TypeStepCompleted, events.TypeStepScheduled,
				events.TypeStepCompleted, events.TypeWorkflowCompleted},
		},
		{
			name: "approval times out", def: approvalYAML,
			drive: func(r *run) {
				r.result(time.Second, "prepare", 1, events.OutcomeCompleted, "ready", nil)
				r.signal(time.Hour, "reject", nil)
				if _, ok := r.fire(72*time.Hour+2*time.Second, "approve"); !ok {
					r.t.Fatal("timer not accepted")
				}
				r.signal(73*time.Hour, "approve", nil)
			},
			status: workflow.StatusFailed,
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepCompleted,
				events.TypeWaitStarted, events.TypeSignalReceived, events.TypeTimerFired, events.TypeStepFailed,
				events.TypeWorkflowFailed, events.TypeSignalReceived},
		},
		{
			name: "canceled while waiting", def: approvalYAML,
			drive: func(r *run) {
				r.result(time.Second, "prepare", 1, events.OutcomeCompleted, "ready", nil)
				r.add(cancelRequested(time.Minute, "stop"))
				if _, ok := r.fire(72*time.Hour+time.Second, "approve"); ok {
					r.t.Error("timer of a canceled workflow accepted")
				}
			},
			status: workflow.StatusCanceled,
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepCompleted,
				events.TypeWaitStarted, events.TypeCancelRequested, events.TypeWorkflowCanceled},
		},
		{
			name: "canceled while a task runs", def: pipelineYAML, input: pipelineInput,
			drive: func(r *run) {
				r.result(time.Second, "fetch", 1, events.OutcomeAttemptFailed, nil, io)
				r.add(cancelRequested(time.Minute, ""))
			},
			status: workflow.StatusCanceled,
			types: []events.Type{events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepAttemptFailed,
				events.TypeCancelRequested, events.TypeWorkflowCanceled},
		},
		{
			name: "input expression fails", def: badInputYAML, input: map[string]any{},
			status: workflow.StatusFailed,
			types:  []events.Type{events.TypeWorkflowStarted, events.TypeStepFailed, events.TypeWorkflowFailed},
		},
		{
			name: "two waits on one signal", def: twiceYAML,
			drive: func(r *run) {
				r.signal(time.Second, "go", int64(1))
				r.signal(2*time.Second, "stop", int64(9))
				r.signal(3*time.Second, "go", int64(2))
			},
			status: workflow.StatusCompleted, output: int64(2),
			types: []events.Type{events.TypeWorkflowStarted, events.TypeWaitStarted, events.TypeSignalReceived,
				events.TypeStepCompleted, events.TypeWaitStarted, events.TypeSignalReceived, events.TypeSignalReceived,
				events.TypeStepCompleted, events.TypeWorkflowCompleted},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startRun(t, tc.def, tc.input)
			if tc.drive != nil {
				tc.drive(r)
			}
			if r.st.Status != tc.status {
				t.Errorf("Status = %q, want %q", r.st.Status, tc.status)
			}
			if !reflect.DeepEqual(r.st.Output, tc.output) {
				t.Errorf("Output = %#v, want %#v", r.st.Output, tc.output)
			}
			var types []events.Type
			for _, e := range r.hist {
				types = append(types, e.Type)
			}
			if !slices.Equal(types, tc.types) {
				t.Errorf("history:\n got %v\nwant %v", types, tc.types)
			}
			// Replaying twice gives the same: decisions depend on the history only.
			a, b := fold(t, r.hist), fold(t, r.hist)
			if d := diffStates(a, b); d != nil {
				t.Errorf("two folds differ: %v", d)
			}
		})
	}
}

// Decisions depend on the history only, not on whether the state was built
// in memory or folded from stored records, nor on the host's time zone.
func TestStoredHistoryDecidesTheSame(t *testing.T) {
	def := parse(t, approvalYAML)
	var decided [][]events.Event
	for _, h := range [][]events.Event{approvalWaiting(), store(t, approvalWaiting())} {
		st := fold(t, h)
		if loc := st.Steps["approve"].TimeoutAt.Location(); loc != time.UTC {
			t.Errorf("TimeoutAt location = %v, want UTC", loc)
		}
		ev, ok, _ := workflow.AcceptTimer(st, events.TimerDue{V: 1, WorkflowID: wfID, TimerID: "t1_approve", Path: "approve"}, at(73*time.Hour))
		if !ok {
			t.Fatal("timer not accepted")
		}
		if err := st.Apply(ev); err != nil {
			t.Fatal(err)
		}
		evs, err := workflow.Advance(st, def)
		if err != nil {
			t.Fatal(err)
		}
		decided = append(decided, append([]events.Event{ev}, evs...))
	}
	if !reflect.DeepEqual(decided[0], decided[1]) {
		t.Errorf("in memory: %s\nstored: %s", showEvents(decided[0]), showEvents(decided[1]))
	}
}
