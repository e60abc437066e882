package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
)

// Match is a trigger with the definition revision it belongs to.
type Match struct {
	Definition string
	Revision   int
	Trigger    *definition.Trigger
}

// Registry knows the triggers of the latest revision of every definition
// and follows new revisions as they are put, so trigger changes take
// effect without a restart.
type Registry struct {
	store *eventstore.Store
	defs  *runs.Definitions
	log   *slog.Logger

	mu       sync.RWMutex
	latest   map[string]Match // by definition name; Trigger unused
	triggers map[string][]*definition.Trigger
	failed   map[string]uncompiled // latest revisions that do not compile here
	onChange func()

	storedMu      sync.Mutex
	stored        *Registry // what Stored read last
	storedVersion uint64    // the definitions' version it read
	storedAt      time.Time // when the look that gave it began
}

// NewRegistry returns a registry over store that compiles definitions
// through defs (nil: a cache of its own).
func NewRegistry(store *eventstore.Store, defs *runs.Definitions, log *slog.Logger) *Registry {
	if defs == nil {
		defs = runs.NewDefinitions(store)
	}
	return &Registry{store: store, defs: defs, log: log, latest: map[string]Match{}, triggers: map[string][]*definition.Trigger{},
		failed: map[string]uncompiled{}}
}

// uncompiled is what is known of a definition whose latest revision does
// not compile here: the subjects its triggers declare, when they could be
// read (definition.DeclaredSubjects).
type uncompiled struct {
	subjects []string
	known    bool
}

// Stored returns a registry of the latest revisions stored now, read
// afresh: what an engine looks at before it drops a trigger event, a tick
// or a subject its own registry does not know, as that registry follows
// the definitions with a lag (and a part of an older version cannot
// compile a newer one's definitions).
//
// The definitions are listed again only when one was put since the last
// look (one request tells), so events that match no trigger, however
// many, cost a request each, not a read of every definition.
func (r *Registry) Stored(ctx context.Context) (*Registry, error) {
	return r.StoredSince(ctx, time.Time{})
}

// StoredSince is Stored, answered by a look that began after t if there
// was one: callers that wait for one look at once share it. A look the
// clock says began at t may have begun before it (a clock coarser than
// the time between the two readings): it does not answer.
func (r *Registry) StoredSince(ctx context.Context, t time.Time) (*Registry, error) {
	r.storedMu.Lock()
	defer r.storedMu.Unlock()
	if r.stored != nil && !t.IsZero() && r.storedAt.After(t) {
		return r.stored, nil
	}
	began := time.Now()
	version, err := r.store.DefinitionsVersion(ctx)
	if err != nil {
		return nil, err
	}
	if r.stored != nil && r.storedVersion == version {
		r.storedAt = began
		return r.stored, nil
	}
	// From the leader: kept until the next put, a list with a revision a
	// lagging replica answered would drop what the newer one set up.
	recs, err := r.store.ListDefinitionsFromLeader(ctx)
	if err != nil {
		return nil, err
	}
	fresh := NewRegistry(r.store, r.defs, slog.New(slog.DiscardHandler))
	for _, rec := range recs {
		fresh.update(rec)
	}
	r.stored, r.storedVersion, r.storedAt = fresh, version, began
	return fresh, nil
}

// Unsure reports whether the latest revision of definition def, or of any
// definition when def is "", does not compile here: what its triggers
// want is not known.
func (r *Registry) Unsure(def string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if def == "" {
		return len(r.failed) > 0
	}
	_, ok := r.failed[def]
	return ok
}

// UnsureOf reports whether a definition whose latest revision does not
// compile here may have a trigger on subject: one that declares a subject
// matching it, or one whose triggers could not be read. Another's
// (no trigger on it, or none at all) leaves the event to what is known.
func (r *Registry) UnsureOf(subject string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, u := range r.failed {
		if !u.known || slices.ContainsFunc(u.subjects, func(s string) bool { return eventstore.SubjectMatches(s, subject) }) {
			return true
		}
	}
	return false
}

// Start loads the current definitions and follows changes until ctx
// ends; onChange (if set) runs after each change, on the watch goroutine.
func (r *Registry) Start(ctx context.Context, onChange func()) error {
	r.mu.Lock()
	r.onChange = onChange
	r.mu.Unlock()
	return r.store.WatchDefinitions(ctx, r.update)
}

func (r *Registry) update(rec eventstore.DefinitionRecord) {
	plan, err := r.defs.Compile(rec)
	if err != nil {
		r.log.Error("stored definition does not compile; its triggers are off", "definition", rec.Name, "revision", rec.Revision, "err", err)
		plan = &definition.Definition{Name: rec.Name}
	}
	r.mu.Lock()
	if err != nil {
		subjects, known := definition.DeclaredSubjects([]byte(rec.Source))
		r.failed[rec.Name] = uncompiled{subjects: subjects, known: known}
	} else {
		delete(r.failed, rec.Name)
	}
	r.latest[rec.Name] = Match{Definition: rec.Name, Revision: rec.Revision}
	r.triggers[rec.Name] = plan.Triggers
	fn := r.onChange
	r.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (r *Registry) all(kind definition.TriggerKind) []Match {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Match
	for name, ts := range r.triggers {
		for _, t := range ts {
			if t.Kind == kind {
				out = append(out, Match{Definition: name, Revision: r.latest[name].Revision, Trigger: t})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Definition != out[j].Definition {
			return out[i].Definition < out[j].Definition
		}
		return out[i].Trigger.Key < out[j].Trigger.Key
	})
	return out
}

// Subjects returns every subject trigger's subject.
func (r *Registry) Subjects() []string {
	var out []string
	for _, m := range r.all(definition.TriggerSubject) {
		out = append(out, m.Trigger.Subject)
	}
	return out
}

// ForSubject returns the subject triggers matching a message's subject.
func (r *Registry) ForSubject(subject string) []Match {
	var out []Match
	for _, m := range r.all(definition.TriggerSubject) {
		if eventstore.SubjectMatches(m.Trigger.Subject, subject) {
			out = append(out, m)
		}
	}
	return out
}

// Crons returns every cron trigger.
func (r *Registry) Crons() []Match { return r.all(definition.TriggerCron) }

// Cron returns cron trigger key of definition def.
func (r *Registry) Cron(def, key string) (Match, bool) {
	for _, m := range r.all(definition.TriggerCron) {
		if m.Definition == def && m.Trigger.Key == key {
			return m, true
		}
	}
	return Match{}, false
}

// Webhooks returns every webhook trigger.
func (r *Registry) Webhooks() []Match { return r.all(definition.TriggerWebhook) }

// webhooks returns the webhook triggers named name, normally one.
func (r *Registry) webhooks(name string) []Match {
	var out []Match
	for _, m := range r.all(definition.TriggerWebhook) {
		if m.Trigger.Webhook == name {
			out = append(out, m)
		}
	}
	return out
}

// ErrWebhookAmbiguous: more than one definition declares a webhook and
// none of them owns its name, so no delivery is started.
var ErrWebhookAmbiguous = errors.New("trigger: more than one definition declares the webhook and none owns it")

// ErrWebhookUnsure: no definition this part can compile declares the
// webhook, and a stored one it cannot compile may (a newer version's,
// during a rolling upgrade): the delivery is to be tried again.
var ErrWebhookUnsure = errors.New("trigger: a stored definition this part cannot compile may declare the webhook")

// Webhook returns the trigger of webhook name, as the definitions stored
// when the delivery came declare it (StoredSince: one request while nothing
// was put since the last look), not as this registry has followed them:
// a put that answered (a secret added, the trigger removed, a new filter,
// a webhook just declared through another process) is served as it stored
// it. ok is false when no definition declares it. Should more than one
// declare it (definitions stored before names had owners), the one that
// owns the name answers, and none does (ErrWebhookAmbiguous) when it is
// not among them. A name no definition here declares but one claimed
// whose latest revision this part cannot compile is ErrWebhookUnsure.
func (r *Registry) Webhook(ctx context.Context, name string) (m Match, ok bool, err error) {
	st, err := r.StoredSince(ctx, time.Now())
	if err != nil {
		return Match{}, true, err
	}
	if len(st.webhooks(name)) > 0 {
		return st.webhook(ctx, name)
	}
	c, err := r.store.WebhookClaim(ctx, name)
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		return Match{}, false, nil
	case err != nil:
		return Match{}, true, err
	}
	if st.Unsure(c.Definition) {
		// Its claimer may declare it, in a revision this part cannot
		// compile (a newer version's): to be tried again.
		return Match{}, true, fmt.Errorf("webhook %q: %w", name, ErrWebhookUnsure)
	}
	return Match{}, false, nil
}

// webhook is Webhook within what r knows.
func (r *Registry) webhook(ctx context.Context, name string) (m Match, ok bool, err error) {
	ms := r.webhooks(name)
	switch len(ms) {
	case 0:
		return Match{}, false, nil
	case 1:
		return ms[0], true, nil
	}
	c, err := r.store.WebhookClaim(ctx, name)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		return Match{}, true, err
	}
	for _, m := range ms {
		if m.Definition == c.Definition {
			return m, true, nil
		}
	}
	return Match{}, true, fmt.Errorf("webhook %q (%s and %s): %w", name, ms[0].Definition, ms[1].Definition, ErrWebhookAmbiguous)
}
