package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Definitions of the doctor's scenarios.
const (
	doctorQuick  = "name: quick\nsteps:\n  - { id: a, task: echo, input: 1 }\n"
	doctorGate   = "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n"
	doctorNap    = "name: nap\nsteps:\n  - { id: nap, sleep: 1h }\n"
	doctorHold   = "name: hold\nsteps:\n  - { id: work, task: hold }\n"
	doctorParent = "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n"
	doctorIdle   = "name: idle\nsteps:\n  - { id: work, task: nobody }\n"
)

// doctorEnv is a Weft with one run of each kind in a state that moves or
// waits: completed, waiting for a signal, sleeping, a task in flight, a
// parent whose child waits.
type doctorEnv struct {
	*env
	quick, gate, nap, hold, parent, child, idle string
}

func newDoctorEnv(t *testing.T) *doctorEnv {
	t.Helper()
	var once sync.Once
	holding, release := make(chan struct{}), make(chan struct{})
	e := &doctorEnv{env: newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"hold": func(ctx context.Context, _ *executor.Task) (any, error) {
			once.Do(func() { close(holding) })
			select {
			case <-ctx.Done():
			case <-release:
			}
			return nil, ctx.Err()
		},
	}})}
	t.Cleanup(func() { close(release) }) // before the env stops
	for _, src := range []string{doctorQuick, doctorGate, doctorNap, doctorHold, doctorParent, doctorIdle} {
		e.putDef(src)
	}
	e.quick = e.start("quick", "quick-1", ``)
	e.gate = e.start("gate", "gate-1", ``)
	e.nap = e.start("nap", "nap-1", ``)
	e.hold = e.start("hold", "hold-1", ``)
	e.parent = e.start("parent", "parent-1", ``)
	e.idle = e.start("idle", "idle-1", ``)
	e.child = workflow.ChildID(e.parent, "kid", 1)
	if w := e.waitClosed(e.quick, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("quick: %v", w.Status)
	}
	select {
	case <-holding:
	case <-time.After(20 * time.Second):
		t.Fatal("the hold task did not start")
	}
	e.waitSettled(e.quick, weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED, "")
	for _, id := range []string{e.gate, e.child} {
		e.waitSettled(id, weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, "gate")
	}
	e.waitSettled(e.nap, weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, "nap")
	for _, id := range []string{e.hold, e.parent, e.idle} {
		e.waitSettled(id, weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, "")
	}
	return e
}

// waitSettled waits until the index lists wf with status and, if step is
// given, that step waits.
func (e *doctorEnv) waitSettled(wf string, status weftv1.WorkflowStatus, step string) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, wf+" to be listed "+status.String(), func() bool { return e.listed(wf) == status })
	if step != "" {
		eventually(e.t, 20*time.Second, wf+" to wait at "+step, func() bool {
			return stepStatus(e.get(wf), step) == weftv1.StepStatus_STEP_STATUS_WAITING
		})
	}
}

// check runs the doctor over the env as if a second later, past its
// grace period for what just changed.
func (e *doctorEnv) check() *doctor.Report {
	e.t.Helper()
	later := func() time.Time { return time.Now().Add(time.Second) }
	rep, err := doctor.Check(ctx(e.t), e.node.Store, doctor.Options{Grace: 500 * time.Millisecond, All: true, Now: later})
	if err != nil {
		e.t.Fatalf("doctor.Check: %v", err)
	}
	return rep
}

func runsByID(rep *doctor.Report) map[string]doctor.Run {
	m := map[string]doctor.Run{}
	for _, r := range rep.Runs {
		m[r.ID] = r
	}
	return m
}

func show(rep *doctor.Report) string {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return string(b)
}

// On a healthy Weft the doctor finds something that moves every running
// run, or a signal it waits for, and an index that agrees with history.
func TestDoctorHealthy(t *testing.T) {
	e := newDoctorEnv(t)
	rep := e.check()
	if !rep.OK() || len(rep.Problems) != 0 {
		t.Fatalf("healthy Weft reported problems:\n%s", show(rep))
	}
	if rep.Entries != 7 || rep.Running != 6 || rep.Waiting != 2 || rep.Moving != 4 {
		t.Errorf("%s; want 7 entries, 6 running: 4 moving, 2 waiting\n%s", rep.Summary(), show(rep))
	}
	runs := runsByID(rep)
	for id, want := range map[string]struct {
		verdict doctor.Verdict
		mover   workflow.MoverKind
	}{
		e.quick: {verdict: doctor.Closed}, e.gate: {doctor.Waiting, workflow.MoverSignal},
		e.child: {doctor.Waiting, workflow.MoverSignal}, e.nap: {doctor.Moving, workflow.MoverTimer},
		e.hold: {doctor.Moving, workflow.MoverTask}, e.parent: {doctor.Moving, workflow.MoverChild},
		e.idle: {doctor.Moving, workflow.MoverTask},
	} {
		r := runs[id]
		if r.Verdict != want.verdict || want.mover != "" && (len(r.Movers) != 1 || r.Movers[0].Kind != want.mover) {
			t.Errorf("%s: verdict %s, movers %v; want %s, a %s", id, r.Verdict, r.Movers, want.verdict, want.mover)
		}
	}
	if !strings.HasPrefix(rep.Summary(), "6 running: 4 moving, 2 waiting for a signal, 0 stuck, 0 drifted") {
		t.Errorf("Summary = %q", rep.Summary())
	}
	// Within the grace period every run counts as moving.
	fresh, err := doctor.Check(ctx(t), e.node.Store, doctor.Options{Grace: time.Hour})
	if err != nil || !fresh.OK() || fresh.Moving != 6 || fresh.Runs != nil {
		t.Fatalf("with an hour's grace: %v\n%s", err, show(fresh))
	}
}

// Runs made stuck, and index entries made to drift, behind Weft's back
// are named with the reason; the runs around them are not.
func TestDoctorFindsStuckAndDrifted(t *testing.T) {
	e := newDoctorEnv(t)
	c := ctx(t)
	store := e.node.Store
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		t.Fatal(err)
	}

	// A parent whose child workflow is gone: its history names a child
	// that has no history.
	orphan, ghost := "orphan-1", workflow.ChildID("orphan-1", "kid", 1)
	t0 := time.Now().UTC()
	if _, err := store.Append(c, orphan, 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: orphan, Definition: "parent", Revision: 1}},
		events.Event{Type: events.TypeChildStarted, Time: t0, ChildStarted: &events.ChildStarted{
			Path: "kid", Gen: 1, WorkflowID: ghost, Definition: "gate"}}); err != nil {
		t.Fatal(err)
	}
	if errs := store.PutSummaries(c, []eventstore.Summary{{ID: orphan, Definition: "parent", Revision: 1,
		Status: "RUNNING", Created: t0, Seq: 1}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// A child that closed without its parent being told: its completion
	// is appended where no orchestrator looks.
	last, err := store.LastSeq(c, e.child)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(c, e.child, last, events.Event{Type: events.TypeWorkflowCompleted, Time: time.Now().UTC(),
		WorkflowCompleted: &events.WorkflowCompleted{Output: "early"}}); err != nil {
		t.Fatal(err)
	}
	// A signal recorded where no orchestrator looks: history calls for
	// the wait to complete, and nothing will make an orchestrator decide.
	if last, err = store.LastSeq(c, e.gate); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(c, e.gate, last, events.Event{Type: events.TypeSignalReceived, Time: time.Now().UTC(),
		SignalReceived: &events.SignalReceived{Name: "go"}}); err != nil {
		t.Fatal(err)
	}
	// A sleep whose timer is gone.
	if err := store.CancelTimer(c, e.nap, workflow.TimerID("nap", 1)); err != nil {
		t.Fatal(err)
	}
	// A task type whose command queue is gone.
	if err := js.DeleteConsumer(c, eventstore.HistoryStream, eventstore.TaskConsumer("nobody")); err != nil {
		t.Fatal(err)
	}
	// A completed run the index lists as running.
	kv, err := js.KeyValue(c, eventstore.WorkflowsBucket)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := store.GetSummary(c, e.quick)
	if err != nil {
		t.Fatal(err)
	}
	sum.Status = "RUNNING"
	data, err := msgpack.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(c, e.quick, data); err != nil {
		t.Fatal(err)
	}

	rep := e.check()
	want := map[string][]string{
		orphan:   {"stuck: step kid: child workflow " + ghost + " does not exist"},
		e.parent: {"stuck: step kid: child workflow " + e.child + " is COMPLETED since", "but the parent was not told"},
		e.child:  {"drifted: index says RUNNING, history says COMPLETED"},
		e.nap:    {"stuck: step nap: sleeping until", "its timer t1_nap is neither scheduled nor fired"},
		e.idle:   {"stuck: step work: task type nobody has no consumer"},
		e.quick:  {"drifted: index says RUNNING, history says COMPLETED"},
		e.gate:   {"stuck: undecided: its history calls for StepCompleted, but no orchestrator recorded it"},
	}
	if rep.OK() || rep.Stuck != 5 || rep.Drifted != 2 || len(rep.Problems) != len(want) {
		t.Fatalf("%s; want 5 stuck, 2 drifted\n%s", rep.Summary(), show(rep))
	}
	for _, p := range rep.Problems {
		parts, ok := want[p.ID]
		if !ok {
			t.Errorf("%s reported: %v", p.ID, p.Findings)
			continue
		}
		if len(p.Findings) != 1 {
			t.Errorf("%s: findings %v", p.ID, p.Findings)
			continue
		}
		got := string(p.Findings[0].Kind) + ": " + p.Findings[0].Reason
		for _, part := range parts {
			if !strings.Contains(got, part) {
				t.Errorf("%s: %q, want it to say %q", p.ID, got, part)
			}
		}
	}
	runs := runsByID(rep)
	if r := runs[e.hold]; r.Verdict != doctor.Moving || len(r.Findings) != 0 {
		t.Errorf("%s: %s %v", e.hold, r.Verdict, r.Findings)
	}
}

// A queued run whose key's slots are all held by runs that closed or are
// gone is stuck: nothing gives a slot back. While a running run holds the
// slot, the queued run waits.
func TestDoctorFindsASlotNoRunGivesBack(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef("name: one\nconcurrency: { limit: 1 }\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	first := e.start("one", "one-1", ``)
	eventually(t, 20*time.Second, "one-1 to wait", func() bool { return e.listed(first) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING })
	second := e.start("one", "one-2", ``) // after one-1 holds the slot
	eventually(t, 20*time.Second, "one-2 to be queued", func() bool { return e.listed(second) == weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED })
	later := func() time.Time { return time.Now().Add(time.Minute) }
	check := func() *doctor.Report {
		t.Helper()
		rep, err := doctor.Check(ctx(t), e.node.Store, doctor.Options{Grace: time.Second, All: true, Now: later})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := check(); !rep.OK() || runsByID(rep)[second].Verdict != doctor.Waiting {
		t.Fatalf("the queued run behind a running one:\n%s", show(rep))
	}

	// The slot is taken from one-1 and given to a run with no history.
	if _, _, err := e.node.Store.UpdateSlots(ctx(t), "one", "", 1, func(s *eventstore.Slots) {
		s.Holders = []string{"gone-1"}
	}); err != nil {
		t.Fatal(err)
	}
	rep := check()
	r := runsByID(rep)[second]
	if rep.Stuck != 1 || !r.Stuck() || !strings.Contains(r.Findings[0].Reason, `the slots of key "" are held by runs that closed or are gone (gone-1)`) {
		t.Fatalf("the queued run behind a run that is gone:\n%s", show(rep))
	}
}
