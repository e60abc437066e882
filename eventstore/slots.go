package eventstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SlotsBucket holds, per definition and concurrency key, the runs that
// hold one of the key's slots and those queued for one, in start order
// (definition-level concurrency: docs/language.md, "Flow control").
const SlotsBucket = "weft-slots"

// Slots is one concurrency key's entry: the runs holding its slots and the
// runs queued for one, in start order.
type Slots struct {
	Holders []string    `msgpack:"h"`
	Queue   []QueuedRun `msgpack:"q"`
}

// QueuedRun is a run waiting for a slot, with the time it started.
type QueuedRun struct {
	ID      string    `msgpack:"id"`
	Started time.Time `msgpack:"at"`
}

// Enqueue puts run id, started at started, in the queue in start order
// (ties by id), unless it holds a slot or is queued already.
func (s *Slots) Enqueue(id string, started time.Time) {
	if slices.Contains(s.Holders, id) || slices.ContainsFunc(s.Queue, func(q QueuedRun) bool { return q.ID == id }) {
		return
	}
	i, _ := slices.BinarySearchFunc(s.Queue, QueuedRun{ID: id, Started: started}, func(a, b QueuedRun) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	s.Queue = slices.Insert(s.Queue, i, QueuedRun{ID: id, Started: started})
}

// Remove takes run id out of the holders and the queue.
func (s *Slots) Remove(id string) {
	s.Holders = slices.DeleteFunc(s.Holders, func(h string) bool { return h == id })
	s.Queue = slices.DeleteFunc(s.Queue, func(q QueuedRun) bool { return q.ID == id })
}

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

// UpdateSlots changes the slots of definition def's key: change edits the
// entry as read (it may be called again when another writer came first),
// then queued runs take free slots, first come first, up to limit. It
// returns the entry as stored and the runs that took a slot in this
// update. An entry change leaves unchanged is not written.
func (s *Store) UpdateSlots(ctx context.Context, def, key string, limit int, change func(*Slots)) (Slots, []string, error) {
	var cur, next Slots
	var took []string
	err := s.updateKV(ctx, s.slots, slotKey(def, key), &cur, func() { cur, next, took = Slots{}, Slots{}, nil }, func() bool {
		next = Slots{Holders: slices.Clone(cur.Holders), Queue: slices.Clone(cur.Queue)}
		change(&next)
		for len(next.Holders) < limit && len(next.Queue) > 0 {
			took = append(took, next.Queue[0].ID)
			next.Holders, next.Queue = append(next.Holders, next.Queue[0].ID), next.Queue[1:]
		}
		if slices.Equal(next.Holders, cur.Holders) && slices.Equal(next.Queue, cur.Queue) {
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
