package doctor_test

import (
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/runs"
)

// The listing-entry follow-up writes the status AND the search attributes
// (docs/reliability.md, "write the listing entry": "the index is not known
// to hold the status and the search attributes"). A write skipped after a
// SearchAttributesSet leaves the entry with the right status and no
// attributes, for good (the run is parked on a signal: nothing else writes
// it): `weft list` by that attribute never finds the run. The doctor must
// report the entry as drifted.
func TestAListingEntryMissingSearchAttributesIsDrifted(t *testing.T) {
	r := newRig(t, map[string]string{"gate": "name: gate\nsteps:\n  - { id: g, wait: { signal: go } }\n"})
	seq := r.decided(r.start("sa", "gate", nil))
	seq, err := r.store.Append(r.ctx, "sa", seq, events.Event{Type: events.TypeSearchAttributesSet, Time: r.t0,
		SearchAttributesSet: &events.SearchAttributesSet{Attributes: map[string]any{"customer": "acme"}}})
	if err != nil {
		t.Fatal(err)
	}
	// The entry as written before the attributes were set: status right,
	// attributes missing.
	r.index("sa", "gate", "RUNNING", seq-1)
	rep := r.check()
	if !problem(rep, "sa") {
		t.Errorf("a listing entry without the search attributes its history set is not reported (%s): %s", rep.Summary(), stuckIDs(rep))
	}
}

// Control: the entry an orchestrator writes (runs.Summary of the folded
// state), with attributes of every kind, agrees with history.
func TestAListingEntryWithItsSearchAttributesIsNotDrifted(t *testing.T) {
	r := newRig(t, map[string]string{"gate": "name: gate\nsteps:\n  - { id: g, wait: { signal: go } }\n"})
	seq := r.decided(r.start("sa", "gate", nil))
	seq, err := r.store.Append(r.ctx, "sa", seq, events.Event{Type: events.TypeSearchAttributesSet, Time: r.t0,
		SearchAttributesSet: &events.SearchAttributesSet{Attributes: map[string]any{
			"s": "acme", "i": int64(3), "f": 2.5, "b": true, "t": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := runs.ReadFromSnapshot(r.ctx, r.store, "sa")
	if err != nil {
		t.Fatal(err)
	}
	runs.FoldMessages(l.State, l.Msgs)
	if errs := r.store.PutSummaries(r.ctx, []eventstore.Summary{runs.Summary("sa", l.State)}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	_ = seq
	if rep := r.check(); problem(rep, "sa") {
		t.Errorf("the entry an orchestrator writes is reported: %s", stuckIDs(rep))
	}
}
