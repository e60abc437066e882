package workflow_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

func TestDecodeSnapshotRejects(t *testing.T) {
	st := fold(t, hist(started(0, map[string]any{"n": 1}), task(1, "a", "echo", nil), completed(2, "a", 1, "x")))
	good, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := msgpack.Marshal(map[string]any{"v": workflow.SnapshotVersion + 1, "s": map[string]any{"Events": 3}})
	unstarted, _ := msgpack.Marshal(map[string]any{"v": workflow.SnapshotVersion, "s": map[string]any{"Events": 0}})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"truncated":     good[:len(good)/2],
		"not msgpack":   []byte("{\"v\":1}"),
		"other version": other,
		"not started":   unstarted,
	} {
		if _, err := workflow.DecodeSnapshot(b, 0); !errors.Is(err, workflow.ErrBadSnapshot) {
			t.Errorf("%s: DecodeSnapshot error = %v, want ErrBadSnapshot", name, err)
		}
	}
	if _, err := workflow.DecodeSnapshot(good, 7); !errors.Is(err, workflow.ErrBadSnapshot) {
		t.Errorf("a snapshot taken at seq 0, read as taken at 7: %v, want ErrBadSnapshot", err)
	}
	if _, err := workflow.EncodeSnapshot(&workflow.State{}); err == nil {
		t.Error("EncodeSnapshot of an unstarted state: no error")
	}
}

// A signal repeated with its request id after a restore is still ignored:
// the ids received travel in the snapshot.
func TestSnapshotKeepsSignalIDs(t *testing.T) {
	sig := func(off time.Duration, id string) events.Event {
		return events.Event{Type: events.TypeSignalReceived, Time: at(off), SignalReceived: &events.SignalReceived{Name: "s", RequestID: id}}
	}
	st := fold(t, hist(started(0, nil), sig(1, "r1")))
	b, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := workflow.DecodeSnapshot(b, st.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []events.Event{sig(2, "r1"), sig(3, "r2")} {
		if err := got.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.Signals) != 2 || got.Signals[1].Seq != 4 {
		t.Fatalf("signals after restore: %d (want r1 and r2; the repeat of r1 ignored)", len(got.Signals))
	}
}

// The request ids of the cancels, retries and resumes recorded travel in
// the snapshot too: a repeat after a restore is still seen as done.
func TestSnapshotKeepsRequestIDs(t *testing.T) {
	cancel := events.Event{Type: events.TypeCancelRequested, Time: at(1), CancelRequested: &events.CancelRequested{RequestID: "c1"}}
	st := fold(t, hist(started(0, nil), cancel))
	b, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := workflow.DecodeSnapshot(b, st.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RequestSeen("cancel", "c1") || got.RequestSeen("retry", "c1") || got.RequestSeen("cancel", "") {
		t.Fatalf("after restore: cancel c1 seen %v, retry c1 %v, cancel with no id %v; want true, false, false",
			got.RequestSeen("cancel", "c1"), got.RequestSeen("retry", "c1"), got.RequestSeen("cancel", ""))
	}
}

// The snapshot encoding is State's and Step's fields by name: a change to
// them must come with a new SnapshotVersion, or a snapshot written by one
// build would be read as a different state by the next.
func TestSnapshotLayoutPinned(t *testing.T) {
	const want = `v13
State: ID string; Definition string; Revision int; Input interface {}; RequestID string; Parent *events.ParentRef; StartedBy string; Trace string; Suspended int; Status workflow.Status; Output interface {}; Error *events.Error; ErrorPath string; Steps map[string]*workflow.Step; Order []string; outputs map[string]map[string]interface {}; Vars map[string]interface {}; Search map[string]interface {}; SearchChanges int; StartSearched bool; Signals []*workflow.Signal; signalIDs map[string]bool; requestIDs map[string]bool; TimeoutTimerID string; TimeoutAt time.Time; TimedOut bool; CancelRequested bool; CancelReason string; Queued bool; QueueKey string; Admitted bool; AdmitChecks int; AdmitTimerID string; AdmitAt time.Time; Retries int; Superseded []*workflow.Step; Expired bool; Created time.Time; Closed time.Time; Now time.Time; Events int; LastSeq uint64; Bytes int64; FirstSeq uint64; loops map[string]*workflow.loopProgress
Step: Path string; Kind string; Task string; Status workflow.StepStatus; Gen int; Attempts int; LastError *events.Error; Output interface {}; Started time.Time; Closed time.Time; Signal string; TimerID string; TimeoutAt time.Time; TimedOut bool; TimedOutAt int; Case int; Items []interface {}; Iteration int; IterBase int; ChildID string; ChildRevision int; ChildInput interface {}; Searched bool; Suspend bool; Caught []string; CatchAll bool; HeldFor string; HeldDetail string; Rerun bool; Late bool
Signal: Seq int; Name string; Payload interface {}; Consumed bool`
	var b strings.Builder
	fmt.Fprintf(&b, "v%d", workflow.SnapshotVersion)
	for _, v := range []any{workflow.State{}, workflow.Step{}, workflow.Signal{}} {
		typ := reflect.TypeOf(v)
		var fields []string
		for i := range typ.NumField() {
			fields = append(fields, typ.Field(i).Name+" "+typ.Field(i).Type.String())
		}
		fmt.Fprintf(&b, "\n%s: %s", typ.Name(), strings.Join(fields, "; "))
	}
	if got := b.String(); got != want {
		t.Fatalf("the snapshot layout changed: bump SnapshotVersion (snapshots of the old layout are then folded past), "+
			"check EncodeSnapshot and DecodeSnapshot carry every field a fold sets, and update this test.\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// A child step canceled and started again by a redrive keeps its first
// child in Superseded, still to be canceled, and a snapshot keeps it too.
func TestARedrivenChildStepKeepsItsCanceledChild(t *testing.T) {
	child := func(off time.Duration, gen int) events.Event {
		return events.Event{Type: events.TypeChildStarted, Time: at(off), ChildStarted: &events.ChildStarted{Path: "k", Gen: gen,
			WorkflowID: workflow.ChildID("wf-1", "k", gen), Definition: "kid", Revision: 2, Input: map[string]any{"n": int64(gen)}}}
	}
	st := fold(t, hist(started(0, nil), child(1, 1),
		events.Event{Type: events.TypeStepCanceled, Time: at(2), StepCanceled: &events.StepCanceled{Path: "k"}},
		events.Event{Type: events.TypeWorkflowFailed, Time: at(2), WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "x", Message: "x"}}},
		events.Event{Type: events.TypeWorkflowRetried, Time: at(3), WorkflowRetried: &events.WorkflowRetried{}},
		child(4, 2)))
	if len(st.Superseded) != 1 {
		t.Fatalf("%d superseded steps; want the first child's", len(st.Superseded))
	}
	s := st.Superseded[0]
	if s.ChildID != workflow.ChildID("wf-1", "k", 1) || s.Gen != 1 || s.Task != "kid" || s.ChildRevision != 2 ||
		s.Status != workflow.StepCanceled || !workflow.Abandoned(st, s) {
		t.Fatalf("superseded %+v; want the canceled first child of step k", s)
	}
	if st.Steps["k"].ChildID != workflow.ChildID("wf-1", "k", 2) {
		t.Fatalf("step k names %s; want the redrive's child", st.Steps["k"].ChildID)
	}
	b, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := workflow.DecodeSnapshot(b, st.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Superseded, st.Superseded) {
		t.Fatalf("after restore: %+v; want %+v", got.Superseded[0], st.Superseded[0])
	}
}

// A canceled child step the redrive skips or fails (its condition or its
// input evaluates otherwise now) keeps its first child in Superseded too:
// the step is no longer CANCELED, and its child is canceled all the same.
func TestARedrivenChildStepSkippedOrFailedKeepsItsCanceledChild(t *testing.T) {
	for name, again := range map[string]events.Event{
		"skipped": {Type: events.TypeStepSkipped, Time: at(4), StepSkipped: &events.StepSkipped{Path: "k"}},
		"failed": {Type: events.TypeStepFailed, Time: at(4), StepFailed: &events.StepFailed{Path: "k",
			Error: events.Error{Type: "expression", Message: "no such key"}}},
	} {
		st := fold(t, hist(started(0, nil),
			events.Event{Type: events.TypeChildStarted, Time: at(1), ChildStarted: &events.ChildStarted{Path: "k", Gen: 1,
				WorkflowID: workflow.ChildID("wf-1", "k", 1), Definition: "kid", Revision: 2}},
			events.Event{Type: events.TypeStepCanceled, Time: at(2), StepCanceled: &events.StepCanceled{Path: "k"}},
			events.Event{Type: events.TypeWorkflowFailed, Time: at(2), WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "x", Message: "x"}}},
			events.Event{Type: events.TypeWorkflowRetried, Time: at(3), WorkflowRetried: &events.WorkflowRetried{}},
			again))
		if len(st.Superseded) != 1 || st.Superseded[0].ChildID != workflow.ChildID("wf-1", "k", 1) {
			t.Errorf("%s: superseded %+v; want the canceled first child of step k", name, st.Superseded)
		}
		if steps := workflow.AbandonedSteps(st); len(steps) != 1 || steps[0].ChildID != workflow.ChildID("wf-1", "k", 1) {
			t.Errorf("%s: abandoned %+v; want the first child once", name, steps)
		}
	}
}
