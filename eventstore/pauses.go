package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// PausesBucket holds the pauses of definitions: one key per paused
// definition, its name (definition names are letters, digits, '_' and
// '-', which a key takes as they are, so the key is one-to-one with the
// name). A definition is paused while its key is there.
const PausesBucket = "weft-pauses"

// Pause is a definition's pause: since when, by whom and why.
type Pause struct {
	// Time the pause began.
	Time time.Time `msgpack:"t"`
	// By is who paused it (an identity as in events.Event).
	By string `msgpack:"by"`
	// Reason is why, as given; may be empty.
	Reason string `msgpack:"why,omitempty"`
}

func (s *Store) openPauses(ctx context.Context) (err error) {
	if s.pauses, err = s.ensureBucket(ctx, jetstream.KeyValueConfig{
		Bucket: PausesBucket, Description: "Weft paused definitions: one key per definition name",
		Storage: s.cfg.Storage, Replicas: s.cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", PausesBucket, err)
	}
	return nil
}

// PauseDefinition records p as definition name's pause, replacing the one
// it has.
func (s *Store) PauseDefinition(ctx context.Context, name string, p Pause) error {
	if !validKeyPart(name) {
		return fmt.Errorf("definition %q: %w", name, ErrNotFound)
	}
	if s.pauses == nil {
		return errors.New("eventstore: this store has no pauses bucket (opened with OpenExisting)")
	}
	p.Time = p.Time.UTC()
	data, err := msgpack.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := s.pauses.Put(ctx, name, data); err != nil {
		return fmt.Errorf("eventstore: pause definition %s: %w", name, err)
	}
	return nil
}

// ResumeDefinition ends definition name's pause; one that is not paused
// is left as it is.
func (s *Store) ResumeDefinition(ctx context.Context, name string) error {
	if _, ok, err := s.DefinitionPause(ctx, name); err != nil || !ok {
		return err
	}
	if err := s.pauses.Delete(ctx, name); err != nil {
		return fmt.Errorf("eventstore: resume definition %s: %w", name, err)
	}
	return nil
}

// DefinitionPause returns definition name's pause, and whether it is
// paused.
func (s *Store) DefinitionPause(ctx context.Context, name string) (Pause, bool, error) {
	if !validKeyPart(name) || s.pauses == nil {
		return Pause{}, false, nil
	}
	e, err := s.getKV(ctx, s.pauses, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Pause{}, false, nil
	}
	if err != nil {
		return Pause{}, false, fmt.Errorf("eventstore: pause of %s: %w", name, err)
	}
	var p Pause
	if err := msgpack.Unmarshal(e.value, &p); err != nil {
		return Pause{}, false, fmt.Errorf("eventstore: pause of %s: %w", name, err)
	}
	return p, true, nil
}

// DefinitionPauses returns the pause of every paused definition, by name.
func (s *Store) DefinitionPauses(ctx context.Context) (map[string]Pause, error) {
	if s.pauses == nil {
		return map[string]Pause{}, nil // OpenExisting on a Weft from before pauses
	}
	out := map[string]Pause{}
	err := eachStored(ctx, s.pauses, ">", func(e jetstream.KeyValueEntry) {
		var p Pause
		if msgpack.Unmarshal(e.Value(), &p) == nil {
			out[e.Key()] = p
		}
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: list pauses: %w", err)
	}
	return out, nil
}

// Pauses is an in-memory copy of the pauses bucket that a watcher keeps
// current (WatchPauses). Reading it costs one atomic load and, while any
// definition is paused, one map lookup.
type Pauses struct {
	// paused maps definition names to their pauses; it is replaced, never
	// changed, so readers need no lock.
	paused atomic.Pointer[map[string]Pause]
	// lifted is when each definition's last pause ended, as far as the
	// bucket's delete markers tell.
	mu     sync.Mutex
	lifted map[string]time.Time
	// ended is closed once the watch has ended and the copy changes no more.
	ended <-chan struct{}
}

// Ended returns a channel closed once the copy is no longer kept current
// (its watch ended with the context WatchPauses was given) and changes no
// more.
func (p *Pauses) Ended() <-chan struct{} { return p.ended }

// Paused returns definition def's pause, and whether it is paused.
func (p *Pauses) Paused(def string) (Pause, bool) {
	m := *p.paused.Load()
	if len(m) == 0 {
		return Pause{}, false
	}
	pause, ok := m[def]
	return pause, ok
}

// Any reports whether any definition is paused.
func (p *Pauses) Any() bool { return len(*p.paused.Load()) > 0 }

// LiftedAfter reports whether a pause of definition def ended after t.
func (p *Pauses) LiftedAfter(def string, t time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lifted[def].After(t)
}

// set records name's pause, or its end (ok false, at t).
func (p *Pauses) set(name string, pause Pause, ok bool, t time.Time) {
	old := *p.paused.Load()
	m := make(map[string]Pause, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if ok {
		m[name] = pause
	} else {
		delete(m, name)
		p.mu.Lock()
		p.lifted[name] = t
		p.mu.Unlock()
	}
	p.paused.Store(&m)
}

// WatchPauses returns a copy of the pauses bucket kept current until ctx
// ends. It returns once the copy holds every pause stored when it began
// (or fails when that takes longer than retryFor). While NATS cannot be
// reached the copy keeps the last state it saw.
func (s *Store) WatchPauses(ctx context.Context) (*Pauses, error) {
	p := &Pauses{lifted: map[string]time.Time{}}
	p.paused.Store(&map[string]Pause{})
	w, err := s.pauses.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: watch pauses: %w", err)
	}
	ready, ended := watchEntries(w, func(e jetstream.KeyValueEntry) {
		var pause Pause
		ok := e.Operation() == jetstream.KeyValuePut && msgpack.Unmarshal(e.Value(), &pause) == nil
		p.set(e.Key(), pause, ok, e.Created())
	})
	p.ended = ended
	select {
	case <-ready:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(retryFor):
		_ = w.Stop()
		return nil, fmt.Errorf("eventstore: watch pauses: no answer within %s", retryFor)
	}
}
