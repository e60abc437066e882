package eventstore

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// FlowBucket holds task steps' flow control across runs: per step and key,
// the attempts holding a concurrency slot (each until its lease ends) and
// the attempts started in the current rate-limit period.
const FlowBucket = "weft-flow"

// openFlow creates or updates the flow bucket.
func (s *Store) openFlow(ctx context.Context) (err error) {
	s.flow, s.flowTTL, err = s.ensureTTLBucket(ctx, jetstream.KeyValueConfig{
		Bucket:      FlowBucket,
		Description: "Weft task steps' concurrency slots and rate-limit counts, per step and key",
		Storage:     s.cfg.Storage,
		Replicas:    s.cfg.Replicas,
	}, true)
	if err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", FlowBucket, err)
	}
	return nil
}

// flowKey maps a kind of count, a scope and a key one-to-one onto a KV key.
// A token too long to name a subject well (a key is an expression's value,
// as long as a run's input allows) is named by its SHA-256 instead: a NATS
// subject longer than the server's control line closes the connection.
func flowKey(kind, scope, key string) string {
	return kind + "." + keyToken(scope) + "." + keyToken(key)
}

// maxKeyToken bounds a KV key's token written as it is: well within the
// server's 4 KiB control line with the rest of the subject, and past all
// but the longest keys an earlier version could store (it wrote every key
// as it is, up to about 3,900 encoded characters), so entries stored
// before keep their names.
const maxKeyToken = 3000

// keyToken encodes s as one KV key token: "v" and its base64 (an empty
// token would make no valid key), or "h" and the base64 of its SHA-256
// when that is longer than maxKeyToken.
func keyToken(s string) string {
	enc := base64.RawURLEncoding
	if enc.EncodedLen(len(s)) < maxKeyToken {
		return "v" + enc.EncodeToString([]byte(s))
	}
	sum := sha256.Sum256([]byte(s))
	return "h" + enc.EncodeToString(sum[:])
}

// updateKV reads kv's entry k into v (after reset, which clears what an
// earlier try read), lets change edit it (returning whether to write), and
// writes it if nobody wrote since; it tries again when somebody did. When
// ttl is set and returns more than 0, the entry as written goes after that
// long unless written again (the server removes that message, and a write
// since is left be): ttl is how long the entry, as changed, still means
// something.
func (s *Store) updateKV(ctx context.Context, kv jetstream.KeyValue, k string, v any, reset func(), change func() bool, ttl func() time.Duration) error {
	if !s.ttlAllowed(kv) {
		ttl = nil
	}
	leader := false
	for {
		reset()
		get := s.getKV
		if leader {
			get = s.leaderKV
		}
		rev, err := s.readKVWith(ctx, get, kv, k, v)
		if err != nil {
			return err
		}
		if !change() {
			if leader {
				return nil
			}
			// A replica behind may have answered (getKV): an entry older
			// than a write answered before this call, even the caller's
			// own. A write is checked against the revision it read, but a
			// change that writes nothing is checked by nothing: it is
			// judged again on the leader's entry, or a give-back judged
			// on the older entry would be dropped unseen.
			leader = true
			continue
		}
		b, err := msgpack.Marshal(v)
		if err != nil {
			return err
		}
		var keep time.Duration
		if ttl != nil {
			keep = ttl()
		}
		switch {
		case keep > 0:
			msg := nats.NewMsg("$KV." + kv.Bucket() + "." + k)
			msg.Data = b
			// Whole seconds, rounded up: the server counts in seconds.
			keep = (keep + time.Second - 1).Truncate(time.Second)
			_, err = s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(keep))
		case rev == 0:
			_, err = kv.Create(ctx, k, b)
		default:
			_, err = kv.Update(ctx, k, b, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !isConflict(err) {
			return fmt.Errorf("eventstore: write %s: %w", k, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// readKV reads kv's entry k into v and returns its revision: v untouched,
// and the revision of the entry's marker or 0, when there is none.
func (s *Store) readKV(ctx context.Context, kv jetstream.KeyValue, k string, v any) (uint64, error) {
	return s.readKVWith(ctx, s.getKV, kv, k, v)
}

// readKVWith is readKV reading with get (getKV, or leaderKV).
func (s *Store) readKVWith(ctx context.Context, get func(context.Context, jetstream.KeyValue, string) (kvEntry, error),
	kv jetstream.KeyValue, k string, v any) (uint64, error) {
	e, err := get(ctx, kv, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return e.rev, nil
	case err != nil:
		return 0, fmt.Errorf("eventstore: read %s: %w", k, err)
	}
	if err := msgpack.Unmarshal(e.value, v); err != nil {
		return 0, fmt.Errorf("eventstore: %s: %w", k, err)
	}
	return e.rev, nil
}

// ttlAllowed reports whether kv's messages may carry a TTL.
func (s *Store) ttlAllowed(kv jetstream.KeyValue) bool {
	switch kv {
	case s.slots:
		return s.slotsTTL
	case s.flow:
		return s.flowTTL
	}
	return false
}

// updateFlow is updateKV on the flow bucket.
func (s *Store) updateFlow(ctx context.Context, k string, v any, reset func(), change func() bool, ttl func() time.Duration) error {
	return s.updateKV(ctx, s.flow, k, v, reset, change, ttl)
}

// leasesTTL is how long a concurrency entry holding held still means
// something: until its last lease ends, and MarkerTTL after.
func (s *Store) leasesTTL(held *map[string]int64) func() time.Duration {
	return func() time.Duration {
		last := int64(0)
		for _, end := range *held {
			last = max(last, end)
		}
		return max(time.Until(time.Unix(0, last)), 0) + s.cfg.MarkerTTL
	}
}

// AcquireSlot takes one of limit concurrency slots of scope's key for
// holder (an attempt) until now+lease, or renews the one it holds. When all
// are taken it returns false and how long until the first lease ends. A
// holder that dies without releasing its slot loses it when its lease
// ends; the same attempt delivered again takes its own slot back.
func (s *Store) AcquireSlot(ctx context.Context, scope, key string, limit int, holder string, now time.Time, lease time.Duration) (bool, time.Duration, error) {
	return s.AcquireSlotReplacing(ctx, scope, key, limit, holder, nil, now, lease)
}

// AcquireSlotReplacing is AcquireSlot for a holder that other names may
// stand for (nil: none): the slots of the holders replaces picks are
// given back in the same write, before the free slots are counted, so
// the holder takes one of them back as its own, and a slot it finds free
// beside one of them does not leave that one held until its lease ends.
func (s *Store) AcquireSlotReplacing(ctx context.Context, scope, key string, limit int, holder string, replaces func(holder string) bool, now time.Time, lease time.Duration) (bool, time.Duration, error) {
	var held map[string]int64 // holder → lease end, Unix nanoseconds
	var ok bool
	var wait time.Duration
	err := s.updateFlow(ctx, flowKey("c", scope, key), &held, func() { held, ok, wait = nil, false, 0 }, func() bool {
		if held == nil {
			held = map[string]int64{}
		}
		first, replaced := int64(0), false
		for h, end := range held {
			switch {
			case h != holder && replaces != nil && replaces(h):
				delete(held, h)
				replaced = true
			case end <= now.UnixNano():
				delete(held, h)
			case first == 0 || end < first:
				first = end
			}
		}
		if _, mine := held[holder]; !mine && len(held) >= limit {
			wait = time.Duration(first - now.UnixNano())
			return replaced
		}
		held[holder], ok = now.Add(lease).UnixNano(), true
		return true
	}, s.leasesTTL(&held))
	if err != nil {
		return false, 0, err // the slot is not known to be taken
	}
	return ok, wait, nil
}

// SlotHolders returns the attempts that hold a concurrency slot of scope's
// key at now (their leases not ended).
func (s *Store) SlotHolders(ctx context.Context, scope, key string, now time.Time) ([]string, error) {
	if s.flow == nil {
		return nil, nil
	}
	var held map[string]int64
	if _, err := s.readKV(ctx, s.flow, flowKey("c", scope, key), &held); err != nil {
		return nil, err
	}
	var out []string
	for h, end := range held {
		if end > now.UnixNano() {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ReleaseSlot gives holder's concurrency slot of scope's key back, if its
// lease ends by until: the lease the caller took or last renewed. A later
// take of the slot by the same holder (its attempt delivered again) ends
// later, and is left be.
func (s *Store) ReleaseSlot(ctx context.Context, scope, key, holder string, until time.Time) error {
	var held map[string]int64
	return s.updateFlow(ctx, flowKey("c", scope, key), &held, func() { held = nil }, func() bool {
		if end, mine := held[holder]; !mine || end > until.UnixNano() {
			return false
		}
		delete(held, holder)
		return true
	}, s.leasesTTL(&held))
}

// DropSlots gives back the concurrency slots of scope's key held by the
// holders drop picks: those of attempts known to be over, whose holder
// died before it gave its slot back.
func (s *Store) DropSlots(ctx context.Context, scope, key string, drop func(holder string) bool) error {
	var held map[string]int64
	return s.updateFlow(ctx, flowKey("c", scope, key), &held, func() { held = nil }, func() bool {
		n := len(held)
		maps.DeleteFunc(held, func(h string, _ int64) bool { return drop(h) })
		return len(held) != n
	}, s.leasesTTL(&held))
}

// rateCount is the attempts started in one period of a rate limit.
type rateCount struct {
	Period int64 `msgpack:"p"` // the period's index: Unix time / per
	Count  int   `msgpack:"n"`
}

// TakeToken counts an attempt started at now against scope's key's rate
// limit of limit per period per (periods are aligned to the Unix epoch).
// When the period's count is used up it returns false and how long until
// the next period.
func (s *Store) TakeToken(ctx context.Context, scope, key string, limit int, per time.Duration, now time.Time) (bool, time.Duration, error) {
	var rc rateCount
	var ok bool
	now0 := now.UnixNano() / int64(per)
	period := now0
	// Counted per period length: a revision that changes per counts apart
	// (an index means nothing with another length), and takers of both
	// revisions never reset each other's count.
	err := s.updateFlow(ctx, flowKey("r", scope, per.String()+"/"+key), &rc, func() { rc, ok, period = rateCount{}, false, now0 }, func() bool {
		switch {
		case rc.Period > period:
			// Another taker is in a later period already (this one's update
			// was slow, or its clock is behind): count in that one, never
			// start it again from zero.
			period = rc.Period
		case rc.Period < period:
			rc = rateCount{Period: period}
		}
		if rc.Count >= limit {
			return false
		}
		rc.Count++
		ok = true
		return true
	}, func() time.Duration {
		// The count means nothing once its period is over.
		return max(time.Until(time.Unix(0, (rc.Period+1)*int64(per))), 0) + s.cfg.MarkerTTL
	})
	return ok, max(time.Duration((period+1)*int64(per)-now.UnixNano()), 0), err
}

// SlotLease is a concurrency slot of a task step's key held by an attempt
// (SlotLeases).
type SlotLease struct {
	// Scope is the step's (its definition and step id), Key its key; each
	// "sha256:" and the base64 of its hash when the entry names it so (too
	// long to name as it is).
	Scope, Key string
	// Holder is the attempt: "<run>/<step path>/<scheduling>/<attempt>/<command's
	// sequence>" (without the sequence, as an earlier version named it).
	Holder string
	// End is when the lease ends unless renewed.
	End time.Time
}

// SlotLeases returns the concurrency slots of every task step's key held
// at now (their leases not ended), read in one pass over the flow bucket;
// none when there is no flow bucket (a Weft from before step flow
// control, opened by OpenExisting).
func (s *Store) SlotLeases(ctx context.Context, now time.Time) ([]SlotLease, error) {
	if s.flow == nil {
		return nil, nil
	}
	var out []SlotLease
	err := eachStored(ctx, s.flow, "c.>", func(e jetstream.KeyValueEntry) {
		var held map[string]int64
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 || msgpack.Unmarshal(e.Value(), &held) != nil {
			return // not a concurrency entry this version wrote
		}
		scope, key := tokenKey(parts[1]), tokenKey(parts[2])
		for h, end := range held {
			if end > now.UnixNano() {
				out = append(out, SlotLease{Scope: scope, Key: key, Holder: h, End: time.Unix(0, end)})
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: list %s: %w", FlowBucket, err)
	}
	slices.SortFunc(out, func(a, b SlotLease) int {
		return cmp.Or(cmp.Compare(a.Scope, b.Scope), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Holder, b.Holder))
	})
	return out, nil
}

// tokenKey reads back what keyToken encoded: the string, or "sha256:" and
// the base64 of its hash.
func tokenKey(tok string) string {
	if rest, ok := strings.CutPrefix(tok, "v"); ok {
		if b, err := base64.RawURLEncoding.DecodeString(rest); err == nil {
			return string(b)
		}
	}
	if rest, ok := strings.CutPrefix(tok, "h"); ok {
		return "sha256:" + rest
	}
	return tok
}
