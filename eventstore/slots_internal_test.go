package eventstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/internal/natstest"
)

// A key's slots name each holder's run and generation: a give-back of an
// earlier generation (a failed run since redriven) or of an earlier run of
// the id leaves the slot its id holds now be; the current one's goes. An
// entry an earlier version stored (holders by id only) is read, its
// holders given back by id, and taken over by the generation that
// enqueues; an earlier version reads the entry as it did.
func TestSlotsNameTheRunAndGenerationThatHolds(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, natstest.Start(t).Connect(t), Config{MarkerTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(100, 5).UTC()
	gen0, gen1 := RunOf(created, 0), RunOf(created, 1)
	other := RunOf(created.Add(time.Hour), 0) // a run started under the id after this one was deleted
	update := func(change func(*Slots)) Slots {
		t.Helper()
		sl, _, err := s.UpdateSlots(ctx, "d", "k", 1, change)
		if err != nil {
			t.Fatal(err)
		}
		return sl
	}
	if sl := update(func(sl *Slots) { sl.Enqueue("r1", gen0) }); !sl.Holds("r1", gen0) || sl.Holds("r1", gen1) {
		t.Fatalf("generation 0 enqueued: %+v", sl)
	}
	// Redriven before generation 0 gave its slot back: generation 1 takes it over.
	if sl := update(func(sl *Slots) { sl.Enqueue("r1", gen1) }); !sl.Holds("r1", gen1) || sl.Holds("r1", gen0) {
		t.Fatalf("generation 1 enqueued: %+v", sl)
	}
	for _, stale := range []SlotRun{gen0, other} {
		if sl := update(func(sl *Slots) { sl.GiveBack("r1", stale) }); !slices.Equal(sl.Holders, []string{"r1"}) {
			t.Fatalf("a give-back of %+v freed generation 1's slot: %+v", stale, sl)
		}
	}
	update(func(sl *Slots) { sl.Enqueue("r2", gen0) })
	if sl := update(func(sl *Slots) { sl.GiveBack("r1", gen1) }); !slices.Equal(sl.Holders, []string{"r2"}) || sl.Runs["r2"] != gen0 || len(sl.Runs) != 1 {
		t.Fatalf("generation 1's give-back: %+v; want r2 holding the slot", sl)
	}

	// An entry of an earlier version.
	type earlierQueued struct {
		ID      string    `msgpack:"id"`
		Started time.Time `msgpack:"at"`
	}
	type earlier struct {
		Holders []string        `msgpack:"h"`
		Queue   []earlierQueued `msgpack:"q"`
	}
	b, err := msgpack.Marshal(earlier{Holders: []string{"o1"}, Queue: []earlierQueued{{ID: "o2", Started: created}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.slots.Put(ctx, slotKey("d", "old"), b); err != nil {
		t.Fatal(err)
	}
	sl, err := s.ReadSlots(ctx, "d", "old")
	if err != nil || !sl.Holds("o1", gen0) || !sl.Holds("o1", gen1) || len(sl.Queue) != 1 || sl.Queue[0].run() != gen0 {
		t.Fatalf("the earlier entry: %+v, %v", sl, err)
	}
	// Its holder is given back by id; its queued run takes the slot, as
	// generation 0 of the run it names.
	sl, took, err := s.UpdateSlots(ctx, "d", "old", 1, func(sl *Slots) { sl.GiveBack("o1", gen1) })
	if err != nil || !slices.Equal(took, []string{"o2"}) || sl.Runs["o2"] != gen0 {
		t.Fatalf("the earlier holder given back: %+v, %v, %v", sl, took, err)
	}
	// What this version writes, an earlier one reads.
	e, err := s.slots.Get(ctx, slotKey("d", "old"))
	if err != nil {
		t.Fatal(err)
	}
	var back earlier
	if err := msgpack.Unmarshal(e.Value(), &back); err != nil || !slices.Equal(back.Holders, []string{"o2"}) || len(back.Queue) != 0 {
		t.Fatalf("read as an earlier version: %+v, %v", back, err)
	}
}

// Generations of one run only move forward in a key's slots: an enqueue
// of an earlier generation (a state read before the redrive) leaves the
// slot or place of a later one be, and a give-back of a generation takes
// a slot or place held in an earlier generation's name with it (a
// redriven run admitted by its earlier generation's place), but never a
// later generation's, nor another run's of the id.
func TestSlotGenerationsOnlyMoveForward(t *testing.T) {
	created := time.Unix(100, 5).UTC()
	gen0, gen1, gen2 := RunOf(created, 0), RunOf(created, 1), RunOf(created, 2)
	other := RunOf(created.Add(time.Hour), 0)

	s := Slots{Holders: []string{"r1"}, Runs: map[string]SlotRun{"r1": gen1}}
	s.Enqueue("r1", gen0)
	if !s.Holds("r1", gen1) {
		t.Fatalf("a stale enqueue of generation 0 took generation 1's slot: %+v", s)
	}
	s.Enqueue("r1", gen2)
	if !s.Holds("r1", gen2) {
		t.Fatalf("generation 2 did not take the slot over: %+v", s)
	}
	s = Slots{Queue: []QueuedRun{{ID: "r1", Started: created, Retries: 1}}}
	s.Enqueue("r1", gen0)
	if len(s.Queue) != 1 || s.Queue[0].run() != gen1 {
		t.Fatalf("a stale enqueue of generation 0 took generation 1's place: %+v", s)
	}

	for _, tc := range []struct {
		name  string
		held  SlotRun
		given SlotRun
		freed bool
	}{
		{"the same generation", gen1, gen1, true},
		{"an earlier generation's name", gen0, gen1, true},
		{"a later generation", gen2, gen1, false},
		{"another run of the id", other, gen1, false},
	} {
		s := Slots{Holders: []string{"r1"}, Runs: map[string]SlotRun{"r1": tc.held}}
		s.GiveBack("r1", tc.given)
		if freed := len(s.Holders) == 0; freed != tc.freed {
			t.Errorf("holder %s: a give-back of %+v freed=%v, want %v (%+v)", tc.name, tc.given, freed, tc.freed, s)
		}
		q := Slots{Queue: []QueuedRun{{ID: "r1", Started: time.Unix(0, tc.held.Created).UTC(), Retries: tc.held.Retries}}}
		q.GiveBack("r1", tc.given)
		if freed := len(q.Queue) == 0; freed != tc.freed {
			t.Errorf("queued %s: a give-back of %+v removed=%v, want %v (%+v)", tc.name, tc.given, freed, tc.freed, q)
		}
	}
}
