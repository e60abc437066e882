package eventstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// SlotsBucket holds, per definition and concurrency key, the runs that
// hold one of the key's slots and those queued for one, in start order
// (definition-level concurrency: docs/language.md, "Flow control").
const SlotsBucket = "weft-slots"

// Slots is one concurrency key's entry: the runs holding its slots and the
// runs queued for one, in start order.
//
// A run is named by its id, and, since Runs (and QueuedRun.Retries) were
// added, by which run of the id it is and how many times it was redriven:
// a give-back of a failed generation, or of a run deleted since whose id
// was started again, is never taken for the slot of the run that holds it
// now. A holder with no entry in Runs was stored by an earlier version (or
// written over by one, which keeps no Runs): any run of its id matches it.
type Slots struct {
	Holders []string    `msgpack:"h"`
	Queue   []QueuedRun `msgpack:"q"`
	// Runs holds, per holder, the run holding the slot.
	Runs map[string]SlotRun `msgpack:"r,omitempty"`
}

// SlotRun names one generation of a run: the run of its id started at
// Created (Unix nanoseconds: an id is used again once its run is deleted)
// after Retries redrives.
type SlotRun struct {
	Created int64 `msgpack:"c"`
	Retries int   `msgpack:"n"`
}

// RunOf names the generation of the run started at created after retries
// redrives.
func RunOf(created time.Time, retries int) SlotRun {
	return SlotRun{Created: created.UnixNano(), Retries: retries}
}

// QueuedRun is a run waiting for a slot, with the time it started (and
// how many times it was redriven: 0 in an entry of an earlier version).
type QueuedRun struct {
	ID      string    `msgpack:"id"`
	Started time.Time `msgpack:"at"`
	Retries int       `msgpack:"n,omitempty"`
}

func (q QueuedRun) run() SlotRun { return RunOf(q.Started, q.Retries) }

// Holder returns the generation holding id's slot, and whether id holds
// one; known is false for a holder an earlier version stored.
func (s *Slots) Holder(id string) (run SlotRun, holds, known bool) {
	if !slices.Contains(s.Holders, id) {
		return SlotRun{}, false, false
	}
	run, known = s.Runs[id]
	return run, true, known
}

// Holds reports whether generation run of id holds a slot (or id does,
// stored by an earlier version).
func (s *Slots) Holds(id string, run SlotRun) bool {
	got, holds, known := s.Holder(id)
	return holds && (!known || got == run)
}

// Enqueue puts generation run of id in the queue in start order (ties by
// id), unless it holds a slot or is queued already. A slot or place its
// id holds for another generation becomes this one's: an earlier
// generation of the run is over (it failed before its redrive), and an
// earlier run of the id is deleted. One a later generation of the run
// holds is left be: run is over, read before its redrive (a stale state).
func (s *Slots) Enqueue(id string, run SlotRun) {
	if slices.Contains(s.Holders, id) {
		if held, known := s.Runs[id]; known && later(held, run) {
			return
		}
		if s.Runs[id] != run {
			if s.Runs == nil {
				s.Runs = map[string]SlotRun{}
			}
			s.Runs[id] = run
		}
		return
	}
	if i := slices.IndexFunc(s.Queue, func(q QueuedRun) bool { return q.ID == id }); i >= 0 {
		if s.Queue[i].run() == run || later(s.Queue[i].run(), run) {
			return
		}
		s.Queue = slices.Delete(slices.Clone(s.Queue), i, i+1)
	}
	q := QueuedRun{ID: id, Started: time.Unix(0, run.Created).UTC(), Retries: run.Retries}
	i, _ := slices.BinarySearchFunc(s.Queue, q, func(a, b QueuedRun) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s.Queue = slices.Insert(s.Queue, i, q)
}

// Remove takes id out of the holders and the queue, whichever run of it
// is there.
func (s *Slots) Remove(id string) {
	s.Holders = slices.DeleteFunc(s.Holders, func(h string) bool { return h == id })
	s.Queue = slices.DeleteFunc(s.Queue, func(q QueuedRun) bool { return q.ID == id })
	delete(s.Runs, id)
}

// GiveBack takes generation run of id out of the holders and the queue,
// and any earlier generation of the run with it (a redriven run admitted
// by the place of the generation before, or a stale enqueue of one, holds
// its slot in that generation's name; once run is over, so is it): a slot
// or place its id holds for a later generation, or for another run of the
// id, is left be.
func (s *Slots) GiveBack(id string, run SlotRun) {
	if held, holds, known := s.Holder(id); holds && (!known || held == run || later(run, held)) {
		s.Holders = slices.DeleteFunc(s.Holders, func(h string) bool { return h == id })
		delete(s.Runs, id)
	}
	s.Queue = slices.DeleteFunc(s.Queue, func(q QueuedRun) bool { return q.ID == id && (q.run() == run || later(run, q.run())) })
}

// later reports whether generation a is a later generation of the same
// run as b: started at the same time, redriven more often.
func later(a, b SlotRun) bool { return a.Created == b.Created && a.Retries > b.Retries }

// slotKey maps a definition and a concurrency key one-to-one onto a KV key.
func slotKey(def, key string) string { return flowKey("s", def, key) }

// openSlots creates or updates the slots bucket.
func (s *Store) openSlots(ctx context.Context) (err error) {
	s.slots, s.slotsTTL, err = s.ensureTTLBucket(ctx, jetstream.KeyValueConfig{
		Bucket:      SlotsBucket,
		Description: "Weft definition-level concurrency: per definition and key, the runs holding a slot and those queued",
		Storage:     s.cfg.Storage,
		Replicas:    s.cfg.Replicas,
	}, true)
	if err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", SlotsBucket, err)
	}
	return nil
}

// ReadSlots returns the slots of definition def's key (empty when none
// was ever taken).
func (s *Store) ReadSlots(ctx context.Context, def, key string) (Slots, error) {
	var cur Slots
	if s.slots == nil {
		return cur, nil
	}
	_, err := s.readKV(ctx, s.slots, slotKey(def, key), &cur)
	return cur, err
}

// KeySlots is one concurrency key's slots entry, as SlotEntries lists it.
type KeySlots struct {
	// Definition and Key name the entry; each is "sha256:" and the base64
	// of its hash when the entry names it so (too long to name as it is).
	Definition, Key string
	Slots           Slots
}

// SlotEntries returns every concurrency key's slots entry that holds or
// queues a run, read in one pass over the slots bucket, by definition and
// key; none when there is no slots bucket (a Weft from before
// definition-level concurrency, opened by OpenExisting).
func (s *Store) SlotEntries(ctx context.Context) ([]KeySlots, error) {
	if s.slots == nil {
		return nil, nil
	}
	var out []KeySlots
	err := eachStored(ctx, s.slots, "s.>", func(e jetstream.KeyValueEntry) {
		var sl Slots
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 || msgpack.Unmarshal(e.Value(), &sl) != nil || len(sl.Holders)+len(sl.Queue) == 0 {
			return // not an entry this version wrote, or one with nobody in it
		}
		out = append(out, KeySlots{Definition: tokenKey(parts[1]), Key: tokenKey(parts[2]), Slots: sl})
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: list %s: %w", SlotsBucket, err)
	}
	slices.SortFunc(out, func(a, b KeySlots) int {
		return cmp.Or(cmp.Compare(a.Definition, b.Definition), cmp.Compare(a.Key, b.Key))
	})
	return out, nil
}

// UpdateSlots changes the slots of definition def's key: change edits the
// entry as read (it may be called again when another writer came first),
// then queued runs take free slots, first come first, up to limit. It
// returns the entry as stored and the runs that took a slot in this
// update. An entry change leaves unchanged is not written.
func (s *Store) UpdateSlots(ctx context.Context, def, key string, limit int, change func(*Slots)) (Slots, []string, error) {
	var cur, next Slots
	var took []string
	err := s.updateKV(ctx, s.slots, slotKey(def, key), &cur, func() { cur, next, took = Slots{}, Slots{}, nil }, func() bool {
		next = Slots{Holders: slices.Clone(cur.Holders), Queue: slices.Clone(cur.Queue), Runs: maps.Clone(cur.Runs)}
		change(&next)
		for len(next.Holders) < limit && len(next.Queue) > 0 {
			q := next.Queue[0]
			took = append(took, q.ID)
			next.Holders, next.Queue = append(next.Holders, q.ID), next.Queue[1:]
			if next.Runs == nil {
				next.Runs = map[string]SlotRun{}
			}
			next.Runs[q.ID] = q.run()
		}
		// Only holders have a run.
		maps.DeleteFunc(next.Runs, func(id string, _ SlotRun) bool { return !slices.Contains(next.Holders, id) })
		if len(next.Runs) == 0 {
			next.Runs = nil
		}
		if slices.Equal(next.Holders, cur.Holders) && slices.Equal(next.Queue, cur.Queue) && maps.Equal(next.Runs, cur.Runs) {
			next, took = cur, nil
			return false
		}
		cur = next
		return true
	}, func() time.Duration {
		// An entry with nobody holding or queued is the same as none: it
		// goes once unused for MarkerTTL.
		if len(next.Holders)+len(next.Queue) == 0 {
			return s.cfg.MarkerTTL
		}
		return 0
	})
	if err != nil {
		return Slots{}, nil, err
	}
	return next, took, nil
}
