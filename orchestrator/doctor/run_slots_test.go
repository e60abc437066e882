package doctor_test

// Slots of a definition's concurrency (the weft-slots bucket): a run's
// close gives its slot back. One still held by a run that closed, by a run
// with no history, or in the name of an earlier run of the id, is a
// give-back missed: nothing frees it until a run waits on the key.

import (
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const queuedDef = "name: q\nconcurrency: { limit: 3 }\nsteps:\n  - { id: gate, wait: { signal: go } }\n"

// holdRunSlots makes the slots of q's key "" held by holders, in the
// generations runs names (an earlier version's holder without).
func (r *rig) holdRunSlots(holders []string, runs map[string]eventstore.SlotRun) {
	r.t.Helper()
	if _, _, err := r.store.UpdateSlots(r.ctx, "q", "", 3, func(s *eventstore.Slots) {
		s.Holders, s.Queue, s.Runs = holders, nil, runs
	}); err != nil {
		r.t.Fatal(err)
	}
}

// admitted appends a run of def started, queued, admitted and waiting for
// its signal, and returns its last sequence.
func (r *rig) admitted(id, def string) uint64 {
	r.t.Helper()
	start := r.start(id, def, nil)
	st := &workflow.State{}
	d, _, err := runs.NewDefinitions(r.store).Load(r.ctx, def, 1)
	if err != nil || st.Apply(start) != nil {
		r.t.Fatal(err)
	}
	queued, err := workflow.Advance(st, d)
	if err != nil {
		r.t.Fatal(err)
	}
	admit := events.Event{Type: events.TypeWorkflowAdmitted, Time: r.t0, WorkflowAdmitted: &events.WorkflowAdmitted{}}
	if err := st.Apply(admit); err != nil {
		r.t.Fatal(err)
	}
	begun, err := workflow.Advance(st, d)
	if err != nil {
		r.t.Fatal(err)
	}
	var seq uint64
	for _, evs := range [][]events.Event{{start}, queued, append([]events.Event{admit}, begun...)} {
		if seq, err = r.store.Append(r.ctx, id, seq, evs...); err != nil {
			r.t.Fatal(err)
		}
	}
	return seq
}

func TestDoctorFindsARunSlotAClosedOrDeletedRunHolds(t *testing.T) {
	r := newRig(t, map[string]string{"q": queuedDef})
	r.index("live", "q", "RUNNING", r.admitted("live", "q"))
	seq, err := r.store.Append(r.ctx, "done", r.admitted("done", "q"),
		events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0, WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("done", "q", "CANCELED", seq)
	created := eventstore.RunOf(r.t0, 0)

	// The running run's slot is its own; the closed run gave its back.
	r.holdRunSlots([]string{"live"}, map[string]eventstore.SlotRun{"live": created})
	if rep := r.check(); !rep.OK() {
		t.Fatalf("a slot a running run holds is reported: %s", stuckIDs(rep))
	}

	// The closed run's give-back was missed, a deleted run's too, and a
	// slot is held in the running run's id for an earlier run of it.
	earlier := eventstore.RunOf(r.t0.Add(-time.Hour), 0)
	r.holdRunSlots([]string{"done", "gone", "live"}, map[string]eventstore.SlotRun{"done": created, "gone": created, "live": earlier})
	rep := r.check()
	for id, want := range map[string]string{
		"done": "is held by the run, canceled at",
		"gone": "has no history (deleted)",
		"live": "is held in the name of an earlier run of the id",
	} {
		f := findingsOf(rep, id)
		if !strings.Contains(f, `drifted: a concurrency slot of key "" of definition "q" `+want) {
			t.Errorf("%s: findings %q; want the slot it holds reported (%s)", id, f, want)
		}
	}
	if rep.Drifted != 3 || rep.OK() {
		t.Errorf("%s; want 3 drifted", rep.Summary())
	}
	for _, p := range rep.Problems {
		if p.ID == "gone" && p.Verdict != doctor.Gone {
			t.Errorf("the deleted run's verdict is %s; want gone", p.Verdict)
		}
	}

	// A holder stored by an earlier version, of a running run, is that
	// run's.
	r.holdRunSlots([]string{"live"}, nil)
	if rep := r.check(); !rep.OK() {
		t.Errorf("a running run's slot stored without its generation is reported: %s", stuckIDs(rep))
	}
}

// An admitted run that runs holds a slot of its key: the slots bucket
// restored from a backup older than the history (streams are backed up one
// at a time) can lack it, and then the key's slots go to other runs as if
// it did not run, past the limit, with nothing to report it.
func TestDoctorFindsAnAdmittedRunThatHoldsNoSlot(t *testing.T) {
	r := newRig(t, map[string]string{"q": queuedDef})
	r.index("live", "q", "RUNNING", r.admitted("live", "q"))
	created := eventstore.RunOf(r.t0, 0)

	r.holdRunSlots([]string{"live"}, map[string]eventstore.SlotRun{"live": created})
	if rep := r.check(); !rep.OK() {
		t.Fatalf("a slot a running run holds is reported: %s", stuckIDs(rep))
	}

	// Another run holds the key's slot, or nobody does.
	for name, reset := range map[string]func(){
		"another holder": func() { r.holdRunSlots([]string{"other"}, nil) },
		"nobody":         func() { r.holdRunSlots(nil, nil) },
	} {
		reset()
		rep := r.check()
		f := findingsOf(rep, "live")
		if !strings.Contains(f, `drifted: admitted, it runs, but holds no concurrency slot of key "" of definition "q"`) {
			t.Errorf("%s: findings %q; want the missing slot reported", name, f)
		}
		if rep.OK() {
			t.Errorf("%s: %s; want it drifted", name, rep.Summary())
		}
	}
}
