package doctor_test

// Concurrency slots of task steps (the weft-flow bucket): a slot held by
// an attempt that is over, and that nothing will give back, keeps every
// other attempt of its step's key waiting until its lease ends (the step's
// timeout and a minute, however long that is).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/doctor"
)

const flowDef = "name: f\nsteps:\n  - { id: a, task: work, timeout: 24h, concurrency: { key: \"'eu'\", limit: 2 } }\n"

// hold takes a slot of key "eu" of step a of f for holder, for 25 hours (a 24h timeout and a minute, rounded up).
func (r *rig) hold(holder string) {
	r.t.Helper()
	ok, _, err := r.store.AcquireSlot(r.ctx, "f/a", "eu", 2, holder, time.Now(), 25*time.Hour)
	if err != nil || !ok {
		r.t.Fatalf("take a slot for %s: %v %v", holder, ok, err)
	}
}

// flowCheck checks with an ExecutorGrace the rig's clock (a minute ahead)
// has passed.
func (r *rig) flowCheck() *doctor.Report {
	r.t.Helper()
	return r.checkWith(doctor.Options{ExecutorGrace: 30 * time.Second})
}

// findingsOf returns id's findings in rep, one a line.
func findingsOf(rep *doctor.Report, id string) string {
	var out []string
	for _, p := range rep.Problems {
		if p.ID == id {
			for _, f := range p.Findings {
				out = append(out, string(f.Kind)+": "+f.Reason)
			}
		}
	}
	return strings.Join(out, "\n")
}

// A completed run whose attempt's slot was never given back (its executor
// died between reporting the result and giving it back, and the command
// was acked or lost), and a run deleted since with one too: both are
// reported, until their leases end.
func TestDoctorFindsAStepSlotHeldByAnAttemptThatIsOver(t *testing.T) {
	r := newRig(t, map[string]string{"f": flowDef})
	if err := r.store.EnsureTaskConsumer(r.ctx, "work"); err != nil {
		t.Fatal(err)
	}
	seq := r.decided(r.start("done", "f", nil))
	seq, err := r.store.Append(r.ctx, "done", seq,
		events.Event{Type: events.TypeStepCompleted, Time: r.t0, StepCompleted: &events.StepCompleted{Path: "a", Gen: 1, Attempt: 1, Output: "ok"}},
		events.Event{Type: events.TypeWorkflowCompleted, Time: r.t0, WorkflowCompleted: &events.WorkflowCompleted{}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("done", "f", "COMPLETED", seq)
	for _, m := range r.fetch(eventstore.TaskConsumerName("work"), 1) {
		if err := m.DoubleAck(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A lease that ends within the executor grace is a delay, not a slot
	// lost: it is not reported.
	if ok, _, err := r.store.AcquireSlot(r.ctx, "f/a", "eu", 2, "done/a/1/1", time.Now(), 80*time.Second); err != nil || !ok {
		t.Fatalf("take a slot: %v %v", ok, err)
	}
	if rep := r.flowCheck(); !rep.OK() {
		t.Errorf("a slot whose lease ends within the executor grace is reported: %s", stuckIDs(rep))
	}
	r.hold("done/a/1/1")
	r.hold("gone/a/1/3") // a run deleted since (no history)
	rep := r.flowCheck()
	if f := findingsOf(rep, "done"); !strings.Contains(f, `concurrency slot of key "eu"`) {
		t.Errorf("the completed run's slot, never given back, is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
	if f := findingsOf(rep, "gone"); !strings.Contains(f, `concurrency slot of key "eu"`) {
		t.Errorf("the deleted run's slot, never given back, is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
	if rep.OK() {
		t.Errorf("a check with slots held by attempts that are over is OK: %s", rep.Summary())
	}
}

// A slot held by the attempt a running run's step runs is that attempt's,
// and so is one held by the attempt of a run canceled while it ran, while
// its command is unsettled: its handler may still run (a cancel does not
// stop it), and its executor gives the slot back when it returns (or the
// command, delivered again, does). Once the command is settled, the slot
// is left over and reported.
func TestDoctorLeavesAStepSlotOfARunningAttemptBe(t *testing.T) {
	r := newRig(t, map[string]string{"f": flowDef})
	if err := r.store.EnsureTaskConsumer(r.ctx, "work"); err != nil {
		t.Fatal(err)
	}
	seq := r.decided(r.start("cut", "f", nil))
	seq, err := r.store.Append(r.ctx, "cut", seq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("cut", "f", "CANCELED", seq)
	r.index("live", "f", "RUNNING", r.decided(r.start("live", "f", nil)))
	msgs := r.fetch(eventstore.TaskConsumerName("work"), 2) // both held by executors, running their handlers
	r.hold("live/a/1/1")
	r.hold("cut/a/1/1")
	if rep := r.flowCheck(); !rep.OK() {
		t.Errorf("slots held by attempts that may still run are reported: %s", stuckIDs(rep))
	}
	// The canceled run's executor settles its command (its handler
	// returned) but never gives the slot back.
	var cut []string
	for subj, m := range msgs {
		if strings.Contains(subj, ".cut.") {
			cut = append(cut, subj)
			if err := m.DoubleAck(r.ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(cut) != 1 {
		t.Fatalf("the canceled run's command is not among %v", keys(msgs))
	}
	rep := r.flowCheck()
	if f := findingsOf(rep, "cut"); !strings.Contains(f, `concurrency slot of key "eu"`) {
		t.Errorf("the canceled run's slot, its command settled, is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
	if f := findingsOf(rep, "live"); f != "" {
		t.Errorf("the running attempt's slot is reported: %s", f)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Holders as the executor names them now, with the command's sequence: the
// running attempt's, named with its run's command, is that attempt's; one
// named with a command stored before its run's first record is of an
// earlier run of the id (deleted since, started again) and is reported.
func TestDoctorReadsAStepSlotHolderNamedWithItsCommand(t *testing.T) {
	r := newRig(t, map[string]string{"f": flowDef})
	if err := r.store.EnsureTaskConsumer(r.ctx, "work"); err != nil {
		t.Fatal(err)
	}
	r.index("other", "f", "RUNNING", r.decided(r.start("other", "f", nil)))
	cmd := r.decided(r.start("live", "f", nil)) // its last record is its step's command
	r.index("live", "f", "RUNNING", cmd)
	r.fetch(eventstore.TaskConsumerName("work"), 2) // held by executors, running their handlers
	r.hold(fmt.Sprintf("live/a/1/1/%d", cmd))
	if rep := r.flowCheck(); !rep.OK() {
		t.Fatalf("the running attempt's slot, named with its command, is reported: %s", stuckIDs(rep))
	}
	r.hold("live/a/1/1/1") // stored before the run's first record
	rep := r.flowCheck()
	f := findingsOf(rep, "live")
	if !strings.Contains(f, "earlier run of its id") || strings.Count(f, "concurrency slot") != 1 {
		t.Errorf("the slot of an earlier run of the id: findings %q (%s)", f, rep.Summary())
	}
}
