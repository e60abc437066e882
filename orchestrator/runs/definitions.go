package runs

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/definition"
)

// ErrNoLongerCompiles marks a stored revision this build cannot compile
// (one a later build's checks refuse, or a newer version's).
var ErrNoLongerCompiles = errors.New("no longer compiles")

// Definitions loads compiled definitions by name and revision, caching
// them: revisions are immutable, so a cached plan never goes stale. It is
// safe for concurrent use; a node builds one and shares it among its parts.
type Definitions struct {
	store *eventstore.Store
	mu    sync.Mutex
	plans map[string]*definition.Definition
}

// NewDefinitions returns a loader over store.
func NewDefinitions(store *eventstore.Store) *Definitions {
	return &Definitions{store: store, plans: map[string]*definition.Definition{}}
}

// Load returns revision rev of definition name compiled, and the stored
// record (rev 0: the latest).
//
// Errors: eventstore.ErrNotFound when there is no such definition or
// revision; ErrNoLongerCompiles when this build cannot compile it.
func (d *Definitions) Load(ctx context.Context, name string, rev int) (*definition.Definition, eventstore.DefinitionRecord, error) {
	if rev > 0 {
		d.mu.Lock()
		p := d.plans[fmt.Sprintf("%s@%d", name, rev)]
		d.mu.Unlock()
		if p != nil {
			return p, eventstore.DefinitionRecord{Name: name, Revision: rev}, nil
		}
	}
	rec, err := d.store.GetDefinition(ctx, name, rev)
	if err != nil {
		return nil, eventstore.DefinitionRecord{}, err
	}
	p, err := d.Compile(rec)
	if err != nil {
		return nil, rec, fmt.Errorf("definition %s revision %d %w: %w", name, rec.Revision, ErrNoLongerCompiles, err)
	}
	return p, rec, nil
}

// Compile returns the stored revision rec compiled, from the cache when
// it was compiled before. Errors are definition.Parse's.
func (d *Definitions) Compile(rec eventstore.DefinitionRecord) (*definition.Definition, error) {
	key := fmt.Sprintf("%s@%d", rec.Name, rec.Revision)
	d.mu.Lock()
	p := d.plans[key]
	d.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := definition.Parse([]byte(rec.Source))
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.plans[key] = p
	d.mu.Unlock()
	return p, nil
}
