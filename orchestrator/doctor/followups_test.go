package doctor_test

// Follow-ups the doctor checks. Each test builds histories by hand (no
// orchestrator runs) and runs the check as if a minute later.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

type rig struct {
	t     *testing.T
	ctx   context.Context
	store *eventstore.Store
	js    jetstream.JetStream
	t0    time.Time
}

func newRig(t *testing.T, defs map[string]string) *rig {
	t.Helper()
	// No orchestrator runs beside a rig: a consumer none asks for inputs
	// is looked at again only briefly.
	doctor.SetLookAgain(t, 10*time.Millisecond)
	nc := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range defs {
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, ctx: ctx, store: store, js: js, t0: time.Now().UTC().Add(-time.Minute)}
}

func (r *rig) start(id, def string, parent *events.ParentRef) events.Event {
	return events.Event{Type: events.TypeWorkflowStarted, Time: r.t0, WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: id, Definition: def, Revision: 1, Parent: parent}}
}

// decided appends start and what an orchestrator decides on it, one
// record per step command, and returns the last sequence.
func (r *rig) decided(start events.Event) uint64 {
	r.t.Helper()
	id := start.WorkflowStarted.WorkflowID
	st := &workflow.State{}
	if err := st.Apply(start); err != nil {
		r.t.Fatal(err)
	}
	def, _, err := runs.NewDefinitions(r.store).Load(r.ctx, start.WorkflowStarted.Definition, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	evs, err := workflow.Advance(st, def)
	if err != nil {
		r.t.Fatal(err)
	}
	seq, err := r.store.Append(r.ctx, id, 0, start)
	if err != nil {
		r.t.Fatal(err)
	}
	b := 0
	for i, ev := range evs {
		if ev.Type == events.TypeStepScheduled || i == len(evs)-1 {
			if seq, err = r.store.Append(r.ctx, id, seq, evs[b:i+1]...); err != nil {
				r.t.Fatal(err)
			}
			b = i + 1
		}
	}
	return seq
}

func (r *rig) index(id, def, status string, seq uint64) {
	r.t.Helper()
	if errs := r.store.PutSummaries(r.ctx, []eventstore.Summary{{ID: id, Definition: def, Revision: 1, Status: status, Created: r.t0, Seq: seq}}); errs[0] != nil {
		r.t.Fatal(errs[0])
	}
}

func (r *rig) check() *doctor.Report {
	r.t.Helper()
	return r.checkWith(doctor.Options{})
}

// checkWith is check with opts (its Grace, All and Now set).
func (r *rig) checkWith(opts doctor.Options) *doctor.Report {
	r.t.Helper()
	opts.Grace, opts.All, opts.Now = time.Second, true, func() time.Time { return time.Now().Add(time.Minute) }
	rep, err := doctor.Check(r.ctx, r.store, opts)
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

func stuckIDs(rep *doctor.Report) string {
	var ids []string
	for _, p := range rep.Problems {
		for _, f := range p.Findings {
			ids = append(ids, p.ID+" "+string(f.Kind)+": "+f.Reason)
		}
	}
	return strings.Join(ids, "\n")
}

func problem(rep *doctor.Report, id string) bool {
	for _, p := range rep.Problems {
		if p.ID == id {
			return true
		}
	}
	return false
}

// fetch takes n messages from consumer of the history stream, by subject.
func (r *rig) fetch(consumer string, n int) map[string]jetstream.Msg {
	r.t.Helper()
	c, err := r.js.Consumer(r.ctx, eventstore.HistoryStream, consumer)
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]jetstream.Msg{}
	for m := range b.Messages() {
		out[m.Subject()] = m
	}
	if len(out) != n {
		r.t.Fatalf("fetched %d of %d", len(out), n)
	}
	return out
}

const taskDef = "name: w\nsteps:\n  - { id: a, task: work }\n"

// A run with history that the index does not list (its entry lost, the
// bucket recreated, a write that never landed) is read too: it is
// reported, as drifted and, here, stuck.
func TestAnUnlistedRunIsChecked(t *testing.T) {
	r := newRig(t, map[string]string{"w": taskDef})
	// Both: started, nothing decided, no input waiting.
	for _, id := range []string{"listed", "unlisted"} {
		seq, err := r.store.Append(r.ctx, id, 0, r.start(id, "w", nil))
		if err != nil {
			t.Fatal(err)
		}
		if id == "listed" {
			r.index(id, "w", "RUNNING", seq)
		}
	}
	rep := r.check()
	if !problem(rep, "listed") {
		t.Fatalf("control: the listed run is not reported: %s", stuckIDs(rep))
	}
	if !problem(rep, "unlisted") {
		t.Errorf("the unlisted stuck run is not reported (entries %d): %s", rep.Entries, stuckIDs(rep))
	}
}

// The external consumer's ack floor is a low-water mark: one start,
// signal or cancel never acked (a run of a definition that cannot be
// loaded is naked for ever, MaxDeliver -1) would make every later run
// whose input was taken but never decided look as if its input still
// waits. Beyond InputGrace an input handed out does not count.
func TestAnInputFailingForGoodHidesNoUndecidedRun(t *testing.T) {
	r := newRig(t, map[string]string{"w": taskDef})
	var zero uint64
	for _, id := range []string{"poison", "victim"} {
		seq, err := r.store.AppendExternal(r.ctx, id, &zero, "start/"+id, r.start(id, "w", nil))
		if err != nil {
			t.Fatal(err)
		}
		r.index(id, "w", "RUNNING", seq)
	}
	msgs := r.fetch(eventstore.ExternalConsumer, 2)
	// victim's start was taken (acked), and nothing decided for it.
	if err := msgs["weft.h.victim.ext"].DoubleAck(r.ctx); err != nil {
		t.Fatal(err)
	}
	// The orchestrator holding poison's start runs (asks for inputs) in
	// truth; here none does, and none is taken to be on its way.
	taking := doctor.Options{OrchestratorGrace: time.Hour}
	if rep := r.checkWith(taking); problem(rep, "victim") {
		t.Errorf("within InputGrace, 'victim' is reported: %s", stuckIDs(rep))
	}
	rep := r.checkWith(doctor.Options{InputGrace: 30 * time.Second, OrchestratorGrace: time.Hour})
	if !problem(rep, "victim") {
		t.Errorf("poison's start unacked: the undecided 'victim' is not reported: %s", stuckIDs(rep))
	}
	if err := msgs["weft.h.poison.ext"].DoubleAck(r.ctx); err != nil {
		t.Fatal(err)
	}
	if rep = r.checkWith(taking); !problem(rep, "victim") {
		t.Errorf("with the floor past it, 'victim' is not reported: %s", stuckIDs(rep))
	}
}

// A parent canceled with its child step running must cancel the child: a
// child never asked to is reported (it would wait for its signal for ever,
// counted as waiting).
func TestAChildNeverCanceledIsReported(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	seq := r.decided(r.start("p", "parent", nil))
	seq, err := r.store.Append(r.ctx, "p", seq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("p", "parent", "CANCELED", seq)
	kid := workflow.ChildID("p", "kid", 1)
	r.index(kid, "gate", "RUNNING", r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: 1, Created: r.t0})))
	rep := r.check()
	if rep.OK() {
		t.Errorf("the canceled parent's child, never asked to cancel, is not reported (%s)", rep.Summary())
	}
}

// A redrive that starts a canceled child step again under a new id must
// still cancel the step's first child: one never asked to is reported on
// the parent, though its step now names the second.
func TestASupersededChildNeverCanceledIsReported(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	seq := r.decided(r.start("p", "parent", nil))
	var err error
	for _, ev := range []events.Event{
		{Type: events.TypeStepCanceled, Time: r.t0, StepCanceled: &events.StepCanceled{Path: "kid", Cause: "by hand"}},
		{Type: events.TypeWorkflowFailed, Time: r.t0, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "x", Message: "x"}}},
		{Type: events.TypeWorkflowRetried, Time: r.t0, WorkflowRetried: &events.WorkflowRetried{}},
		{Type: events.TypeChildStarted, Time: r.t0, ChildStarted: &events.ChildStarted{Path: "kid", Gen: 2,
			WorkflowID: workflow.ChildID("p", "kid", 2), Definition: "gate", Revision: 1}},
	} {
		if seq, err = r.store.Append(r.ctx, "p", seq, ev); err != nil {
			t.Fatal(err)
		}
	}
	r.index("p", "parent", "RUNNING", seq)
	for gen := 1; gen <= 2; gen++ {
		kid := workflow.ChildID("p", "kid", gen)
		r.index(kid, "gate", "RUNNING", r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: gen, Created: r.t0})))
	}
	rep := r.check()
	if !problem(rep, "p") || !strings.Contains(stuckIDs(rep), workflow.ChildID("p", "kid", 1)) {
		t.Errorf("the redriven parent's first child, never asked to cancel, is not reported:\n%s", stuckIDs(rep))
	}
	if strings.Contains(stuckIDs(rep), workflow.ChildID("p", "kid", 2)) {
		t.Errorf("the redriven step's own child is reported:\n%s", stuckIDs(rep))
	}
}

// A closed run of a definition with a retention must have its deletion
// scheduled: one kept for good is reported.
func TestARetentionNotScheduledIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"kept": "name: kept\nretention: 1h\nsteps:\n  - { id: a, task: work }\n"})
	r.t0 = time.Now().UTC().Add(-3 * time.Hour)
	seq := r.decided(r.start("old", "kept", nil))
	seq, err := r.store.Append(r.ctx, "old", seq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("old", "kept", "CANCELED", seq)
	rep := r.check()
	if rep.OK() {
		t.Errorf("a run closed 3h ago with retention 1h and no deletion scheduled is not reported (%s)", rep.Summary())
	}
}

// A result that suspends a step while another step is in flight is acked
// at once and its listing entry written after a delay (index: not held,
// "the result of what is in flight will come to an orchestrator that
// writes it"). An orchestrator that dies in between leaves the entry at
// RUNNING until that result comes, hours later for a long task: a state the
// design accepts, which the doctor does not report as drifted.
func TestASuspendedRunWithATaskInFlightIsNotDrifted(t *testing.T) {
	r := newRig(t, map[string]string{"ps": `name: ps
steps:
  - id: both
    parallel:
      branches:
        x:
          - { id: a, task: work, retry: { exhausted: suspend } }
        y:
          - { id: b, task: long }
`})
	for _, typ := range []string{"work", "long"} {
		if err := r.store.EnsureTaskConsumer(r.ctx, typ); err != nil {
			t.Fatal(err)
		}
	}
	seq := r.decided(r.start("ps1", "ps", nil))
	l, err := runs.ReadFromSnapshot(r.ctx, r.store, "ps1")
	if err != nil {
		t.Fatal(err)
	}
	runs.FoldMessages(l.State, l.Msgs)
	var pathA string
	for p, s := range l.State.Steps {
		if s.Task == "work" {
			pathA = p
		}
	}
	// The listing as written before the suspension.
	r.index("ps1", "ps", "RUNNING", seq)
	work := r.fetch(eventstore.TaskConsumerName("work"), 1)
	long := r.fetch(eventstore.TaskConsumerName("long"), 1) // held by an executor: b runs
	_ = long
	if _, err := r.store.Append(r.ctx, "ps1", seq, events.Event{Type: events.TypeStepSuspended, Time: r.t0,
		StepSuspended: &events.StepSuspended{Path: pathA, Gen: 1, Attempt: 1, Error: events.Error{Type: "handler", Message: "x"}}}); err != nil {
		t.Fatal(err)
	}
	for _, m := range work {
		if err := m.DoubleAck(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep := r.check()
	if !rep.OK() {
		t.Errorf("a suspended run with a task in flight, its entry to be written by that task's result, is reported: %s", stuckIDs(rep))
	}
}

// A parent started again under the id of a deleted run, canceled while
// its child step runs, whose child id is taken by the earlier run's kept
// child: the orchestrator leaves that child alone (tryStartChild: not
// ours, "earlier"), so the doctor must not report it as never asked to
// cancel.
func TestAnEarlierRunsKeptChildIsNotReportedAsAbandoned(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	kid := workflow.ChildID("p", "kid", 1)
	// The earlier run of "p" (deleted since) started this child.
	earlier := r.t0.Add(-time.Hour)
	r.index(kid, "gate", "RUNNING", r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: 1, Created: earlier})))
	// The new run of "p", canceled with its child step running.
	seq := r.decided(r.start("p", "parent", nil))
	seq, err := r.store.Append(r.ctx, "p", seq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("p", "parent", "CANCELED", seq)
	if rep := r.check(); !rep.OK() {
		t.Errorf("the earlier run's kept child is reported as this run's abandoned child: %s", stuckIDs(rep))
	}
}
