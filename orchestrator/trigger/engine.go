package trigger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/internal/config"
	"github.com/weftworks/weft/internal/lifecycle"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
)

// Config tunes an Engine.
type Config struct {
	// Workers handle trigger events in parallel. Default 8.
	Workers int
	// MaxPayloadBytes bounds a trigger event's payload. Default 1 MiB.
	MaxPayloadBytes int
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for cron ticks. Default time.Now.
	Now func() time.Time
	// Definitions is the node's cache of compiled definitions. Default: one
	// of the engine's own.
	Definitions *runs.Definitions
	// Metrics is the registry the engine records its trigger events and the
	// runs they start on (see docs/operations.md). Default nil: none.
	Metrics *prometheus.Registry
}

// Validate checks the configuration.
func (c Config) Validate() error {
	return config.NonNegative("trigger", config.Int("Workers", c.Workers), config.Int("MaxPayloadBytes", c.MaxPayloadBytes))
}

// Engine starts workflows from trigger events: messages captured on
// trigger subjects and cron ticks. Any number of engines may run: each
// event is delivered to one, and the workflow id derived from the event
// makes a repeated delivery find the workflow already started.
type Engine struct {
	store *eventstore.Store
	defs  *runs.Definitions
	reg   *Registry
	cfg   Config
	log   *slog.Logger
	// triggers and workflows record the events handled and the runs
	// started (nil: not recorded).
	triggers  *metrics.Triggers
	workflows *metrics.Workflows

	// seen is when this engine first had each tick delivery (by stream
	// sequence) it has not handled yet: a tick late then is late when it
	// is redelivered too.
	seenMu sync.Mutex
	seen   map[uint64]time.Time
	// started is when the engine started: a tick stored since came while
	// it ran.
	started time.Time

	life   lifecycle.Guard
	cancel context.CancelFunc
	feeds  []*eventstore.Feed
	wg     sync.WaitGroup
	kick   chan struct{}
}

// New returns an engine over store.
func New(store *eventstore.Store, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	config.Default(&cfg.Workers, 8)
	config.Default(&cfg.MaxPayloadBytes, 1<<20)
	config.Default(&cfg.Logger, slog.Default())
	config.DefaultClock(&cfg.Now)
	if cfg.Definitions == nil {
		cfg.Definitions = runs.NewDefinitions(store)
	}
	log := cfg.Logger.With("component", "trigger")
	return &Engine{store: store, defs: cfg.Definitions, reg: NewRegistry(store, cfg.Definitions, log), cfg: cfg, log: log,
		kick: make(chan struct{}, 1), seen: map[uint64]time.Time{}, triggers: metrics.NewTriggers(cfg.Metrics), workflows: metrics.NewWorkflows(cfg.Metrics)}, nil
}

// Registry returns the engine's view of the triggers.
func (e *Engine) Registry() *Registry { return e.reg }

// Start follows the definitions, captures their trigger subjects, keeps
// their cron ticks scheduled and handles trigger events.
func (e *Engine) Start(ctx context.Context) error {
	return e.life.Start("trigger", func() error {
		e.seenMu.Lock()
		e.started = e.cfg.Now()
		e.seenMu.Unlock()
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if err := e.reg.Start(runCtx, e.kickReconcile); err != nil {
			cancel()
			return err
		}
		if err := e.reconcile(ctx); err != nil {
			e.log.Warn("trigger setup incomplete; retrying", "err", err)
		}
		e.wg.Go(func() { e.keepReconciled(runCtx) })
		events, err := e.store.TriggerFeed(ctx, 256)
		if err != nil {
			cancel()
			return err
		}
		ticks, err := e.store.CronFeed(ctx, 64)
		if err != nil {
			events.Stop()
			cancel()
			return err
		}
		e.feeds = []*eventstore.Feed{events, ticks}
		for range e.cfg.Workers {
			e.wg.Go(func() { e.consume(runCtx, events, e.handleEvent) })
		}
		e.wg.Go(func() { e.consume(runCtx, ticks, e.handleTick) })
		e.cancel = cancel
		return nil
	})
}

// kickReconcile asks keepReconciled to reconcile now.
func (e *Engine) kickReconcile() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// keepReconciled reconciles when kicked (the definitions changed) and
// every 30 seconds, until ctx ends.
func (e *Engine) keepReconciled(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-t.C:
		}
		if err := e.reconcile(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("trigger setup incomplete; retrying", "err", err)
		}
	}
}

// Stop stops handling events; unsettled ones are redelivered. Calling it
// twice is fine. When ctx ends first, it returns without waiting for the
// handlers, which were told to stop.
func (e *Engine) Stop(ctx context.Context) error {
	return e.life.Stop(func() error {
		for _, f := range e.feeds {
			f.Stop()
		}
		e.cancel()
		return lifecycle.Await(ctx, e.wg.Wait)
	})
}

func (e *Engine) consume(ctx context.Context, f *eventstore.Feed, handle func(context.Context, *eventstore.Delivery) error) {
	for {
		d, err := f.Next()
		if err != nil {
			if errors.Is(err, eventstore.ErrFeedClosed) || ctx.Err() != nil {
				return
			}
			continue
		}
		if errors.Is(d.Err, events.ErrNewer) && d.NumDelivered < unsureTries {
			// A tick this part cannot read may be a newer version's
			// (during a rolling upgrade): a part that can read it starts
			// its run and schedules the next. Dropped here, the tick's run
			// would never start.
			e.log.Warn("cannot read a cron tick; giving it back for a part that can (a newer version?)", "subject", d.Subject, "seq", d.Seq, "err", d.Err)
			_ = d.Nak(5 * time.Second)
			continue
		}
		if d.Err != nil {
			// Recorded like any event that started no workflow, then
			// dropped: it never blocks the ones behind it (a newer
			// version's tick no part has read after unsureTries
			// deliveries too; a reconcile schedules its trigger again).
			def := ""
			if d.Tick != nil {
				def = d.Tick.Definition
			}
			e.log.Error("cannot read a trigger message; recording it as a trigger failure and dropping it", "subject", d.Subject, "seq", d.Seq, "err", d.Err)
			if err := e.fail(ctx, d.Subject, def, "undecodable: "+d.Err.Error(), nil); err != nil {
				_ = d.Nak(time.Second)
				continue
			}
			_ = d.Term(d.Err.Error())
			continue
		}
		if err := handle(ctx, d); errors.Is(err, errNakked) {
			continue
		} else if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("trigger event not handled; retrying", "subject", d.Subject, "err", err)
			}
			_ = d.Nak(time.Second)
			continue
		}
		_ = d.Ack()
	}
}

// reconcile captures the trigger subjects and schedules the cron ticks of
// the current definitions, and cancels ticks of removed cron triggers.
// What it would undo (a subject no longer captured, a tick canceled) is
// looked up in the definitions stored now first: the engine's registry
// may lag behind a put that another part has acted on.
func (e *Engine) reconcile(ctx context.Context) error {
	var errs []error
	var stored *Registry
	lookStored := func() (*Registry, error) {
		if stored != nil {
			return stored, nil
		}
		var err error
		stored, err = e.reg.Stored(ctx)
		return stored, err
	}
	// Decided again under the subjects lock when it changes anything, with
	// the definitions looked up as stored then: a put that captured a
	// subject since is seen.
	var lookErr error
	decide := func(ctx context.Context, captured []string) []string {
		lookErr = nil
		subjects := e.reg.Subjects()
		if want := eventstore.NormalizeSubjects(subjects); !slices.ContainsFunc(captured, func(s string) bool { return !slices.Contains(want, s) }) {
			return subjects
		}
		st, err := e.reg.Stored(ctx)
		switch {
		case err != nil:
			lookErr = err
			return append(subjects, captured...)
		case st.Unsure(""):
			return append(subjects, captured...)
		}
		stored = st
		return append(subjects, st.Subjects()...)
	}
	if err := e.store.SetTriggerSubjects(ctx, decide); err != nil {
		errs = append(errs, err)
	}
	if lookErr != nil {
		errs = append(errs, lookErr)
	}
	pending, err := e.store.CronSchedules(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	want := map[string]bool{}
	for _, m := range e.reg.Crons() {
		key := m.Definition + "." + m.Trigger.Key
		want[key] = true
		if _, ok := pending[key]; ok {
			continue
		}
		// Scheduled only if stored still: this engine's registry may lag
		// behind the trigger's removal, which another part has acted on.
		st, err := lookStored()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, ok := st.Cron(m.Definition, m.Trigger.Key)
		if !ok {
			continue
		}
		next, err := e.firstTick(ctx, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := e.store.ScheduleCron(ctx, eventstore.CronTick{Definition: m.Definition, Key: m.Trigger.Key, Tick: next}); err != nil {
			errs = append(errs, err)
		}
	}
	for key := range pending {
		if want[key] {
			continue
		}
		def, k, _ := strings.Cut(key, ".")
		st, err := lookStored()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, ok := st.Cron(def, k); ok || st.Unsure(def) {
			continue // put since this engine's registry was
		}
		if err := e.cancelCron(ctx, def, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// firstTick is where a cron trigger with nothing scheduled resumes: after
// its last handled tick when it catches up, else after now.
func (e *Engine) firstTick(ctx context.Context, m Match) (time.Time, error) {
	from := e.cfg.Now()
	if m.Trigger.Catchup {
		last, err := e.store.LastCronTick(ctx, m.Definition, m.Trigger.Key)
		if err != nil {
			return time.Time{}, err
		}
		if !last.IsZero() {
			from = last
			// Not from before the trigger was last added: removed and put
			// back while no engine ran, its last tick is from before.
			added, err := e.addedSince(ctx, m, last)
			if err != nil {
				return time.Time{}, err
			}
			if last.Before(added) {
				from = added
			}
		}
	}
	return m.Trigger.Schedule.Next(from.In(m.Trigger.Location)).UTC(), nil
}

// addedSince returns when cron trigger m was last added to its
// definition: the time of the oldest revision, in the unbroken run of
// revisions up to m.Revision that have the trigger, walking back no
// further than the first one put at or before t (whose time it returns,
// then: the trigger existed at t). A revision this part cannot compile
// does not break the run. Zero when it cannot tell.
func (e *Engine) addedSince(ctx context.Context, m Match, t time.Time) (time.Time, error) {
	var added time.Time
	for rev := m.Revision; rev >= 1; rev-- {
		rec, err := e.store.GetDefinition(ctx, m.Definition, rev)
		if errors.Is(err, eventstore.ErrNotFound) {
			break
		}
		if err != nil {
			return time.Time{}, err
		}
		// A revision this part cannot compile (a newer version's, say) is
		// not known to lack the trigger: taken as one that has it.
		if plan, err := e.defs.Compile(rec); err == nil &&
			!slices.ContainsFunc(plan.Triggers, func(tr *definition.Trigger) bool { return tr.Key == m.Trigger.Key }) {
			break
		}
		added = rec.Created
		if !added.After(t) {
			break
		}
	}
	return added, nil
}

// fail records a trigger event that started no workflow (its subject and
// reason made valid UTF-8 by the store, so the failure reads back).
func (e *Engine) fail(ctx context.Context, subject, def, reason string, payload []byte) error {
	e.log.Info("trigger event started no workflow", "subject", subject, "definition", def, "reason", reason)
	return e.store.RecordTriggerFailure(ctx, eventstore.TriggerFailure{Subject: subject, Time: e.cfg.Now().UTC(),
		Reason: reason, Definition: def, Payload: payload})
}

// headerMap returns a message's headers as its trigger's expressions see
// them, without the Nats- ones; a header set more than once is its values
// joined with ", ", as HTTP joins them, so that none is dropped.
func headerMap(h eventstore.Header) map[string]any {
	out := map[string]any{}
	for k, v := range h {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// handleEvent starts a workflow for each trigger the message matches.
// Bad input is recorded as a failure and the message acked; only
// infrastructure errors ask for a redelivery.
func (e *Engine) handleEvent(ctx context.Context, d *eventstore.Delivery) error {
	ev := d.Event
	// The triggers are those of the definitions stored once the event was
	// here, not this engine's registry's: that follows the definitions with
	// a lag, and a definition put (its subject captured, the put answered)
	// just before the event would miss it whenever another's trigger
	// matches the subject too (a wildcard). The events handled at once
	// share one look (a request, and a read of the definitions after a
	// put).
	st, err := e.reg.StoredSince(ctx, time.Now())
	if err != nil {
		return err
	}
	matches := st.ForSubject(ev.Subject)
	if len(matches) == 0 && st.UnsureOf(ev.Subject) && d.NumDelivered < unsureTries {
		// A part that can compile every definition handles it.
		_ = d.Nak(5 * time.Second)
		return errNakked
	}
	if len(matches) == 0 {
		e.triggers.Event("", string(definition.TriggerSubject), metrics.TriggerRefused)
		return e.fail(ctx, ev.Subject, "", "no trigger matches the subject (its definition changed or was removed)", ev.Data)
	}
	// refuse records a payload no trigger can take.
	refuse := func(reason string) error {
		for _, m := range matches {
			e.triggers.Event(m.Definition, string(m.Trigger.Kind), metrics.TriggerRefused)
		}
		return e.fail(ctx, ev.Subject, matches[0].Definition, reason, ev.Data)
	}
	if !utf8.ValidString(ev.Subject) {
		// The subject is the event's and its run's (Caller): text, like
		// every value Weft records.
		return refuse("subject is not valid UTF-8: publish on subjects of UTF-8 text")
	}
	if len(ev.Data) > e.cfg.MaxPayloadBytes {
		return refuse(fmt.Sprintf("payload is %d bytes; the limit is %d", len(ev.Data), e.cfg.MaxPayloadBytes))
	}
	var payload any
	if len(ev.Data) > 0 {
		var err error
		if payload, err = value.FromJSON(ev.Data); err != nil {
			return refuse("payload: " + err.Error())
		}
		if err = value.Check("payload", payload, value.Limits{}); err != nil {
			return refuse(err.Error())
		}
	}
	fe := Event{Vars: map[string]any{"event": payload, "headers": headerMap(ev.Headers), "subject": ev.Subject},
		Identity: MessageIdentity(ev)}
	// A stored definition this part cannot compile may have a trigger on
	// the subject too: the runs of the matches it knows are started (a
	// redelivery finds them), and the event is given back for a part that
	// can compile every definition. A refusal is recorded by the delivery
	// that settles the event (again only if another match's error asks for
	// one more).
	giveBack := st.UnsureOf(ev.Subject) && d.NumDelivered < unsureTries
	for _, m := range matches {
		if err := e.fireRecording(ctx, m, fe, ev.Subject, ev.Data, !giveBack); err != nil {
			return err
		}
	}
	if giveBack {
		_ = d.Nak(5 * time.Second)
		return errNakked
	}
	return nil
}

// fire starts m's run for ev, stamped now. An event that can start no run
// is recorded as a trigger failure, with raw (its payload); other errors
// are returned.
func (e *Engine) fire(ctx context.Context, m Match, ev Event, subject string, raw []byte) error {
	return e.fireRecording(ctx, m, ev, subject, raw, true)
}

// fireRecording is fire, recording a refusal only when record is set.
func (e *Engine) fireRecording(ctx context.Context, m Match, ev Event, subject string, raw []byte, record bool) error {
	ev.Time = e.cfg.Now()
	f, err := Fire(ctx, e.store, e.defs, m, ev)
	var ref *RefusedError
	if !record && errors.As(err, &ref) {
		return nil // recorded and counted by the delivery that settles the event
	}
	e.triggers.Event(m.Definition, string(m.Trigger.Kind), Outcome(f, err))
	if err == nil && f.Started {
		e.workflows.Started(m.Definition)
	}
	switch {
	case errors.As(err, &ref):
		return e.fail(ctx, subject, m.Definition, ref.Reason, raw)
	case err != nil:
		return err
	case f.Skipped:
		e.log.Debug("trigger filter skipped the event", "subject", subject, "definition", m.Definition)
	case !f.Started:
		e.log.Debug("trigger event maps to an existing workflow", "workflow_id", f.WorkflowID)
	}
	return nil
}

// handleTick starts the workflow of a due cron tick and schedules the next.
func (e *Engine) handleTick(ctx context.Context, d *eventstore.Delivery) error {
	first, known := e.firstSeen(d)
	err := e.tick(ctx, d, first, known)
	if err == nil {
		e.seenMu.Lock()
		delete(e.seen, d.Seq)
		e.seenMu.Unlock()
	}
	return err
}

// seenFor is how long firstSeen remembers a delivery not handled (one
// redelivered to another engine, say).
const seenFor = time.Hour

// firstSeen returns when delivery d first came to this engine (when its
// stream stored it, if the engine ran then), if it had it first (known
// is false for a redelivery it never had before: when it was first
// delivered is not known).
func (e *Engine) firstSeen(d *eventstore.Delivery) (first time.Time, known bool) {
	now := e.cfg.Now()
	e.seenMu.Lock()
	defer e.seenMu.Unlock()
	if t, ok := e.seen[d.Seq]; ok {
		return t, true
	}
	if d.NumDelivered > 1 {
		return time.Time{}, false
	}
	for seq, t := range e.seen {
		if now.Sub(t) > seenFor {
			delete(e.seen, seq)
		}
	}
	// A tick stored while this engine ran was here then, however long it
	// waited behind others' handling (ticks share one handler); one
	// stored before it started waited for an engine: it is here now.
	first = now
	if st := d.Stored; !st.IsZero() && !e.started.IsZero() && !st.Before(e.started) && st.Before(now) {
		first = st
	}
	e.seen[d.Seq] = first
	return first, true
}

// tick is handleTick for a delivery this engine first had at first
// (known; else a redelivery it never had before).
func (e *Engine) tick(ctx context.Context, d *eventstore.Delivery, first time.Time, known bool) error {
	tk := d.Tick
	if testHookTick != nil {
		testHookTick(tk)
	}
	// The trigger is looked up in the definitions as stored once the tick
	// was here, not in this engine's registry, which follows them with a
	// lag: a trigger removed (another part has seen it) starts no run.
	st, err := e.reg.StoredSince(ctx, time.Now())
	if err != nil {
		return err
	}
	m, ok := st.Cron(tk.Definition, tk.Key)
	if !ok {
		if st.Unsure(tk.Definition) {
			if d.NumDelivered < unsureTries {
				// A part that can compile it handles the tick.
				_ = d.Nak(5 * time.Second)
				return errNakked
			}
			return nil
		}
		// Removed: forgotten as a reconcile forgets it (its tick fired
		// before one could), so put back later it resumes from then.
		return e.cancelCron(ctx, tk.Definition, tk.Key)
	}
	now := e.cfg.Now()
	if now.Before(tk.Tick) {
		_ = d.Nak(tk.Tick.Sub(now)) // schedules have one-second precision
		return errNakked
	}
	t := m.Trigger
	next := t.Schedule.Next(tk.Tick.In(t.Location)).UTC()
	// Only a tick that is late when first delivered was missed: one
	// redelivered (its handler died, or got a NATS error, before it
	// started the run) was on time then, and is late only by the ack wait
	// or the retry delay. Skipping it on the redelivery would lose it. A
	// redelivered tick that was late when this engine first had it (its
	// handler got an error) is skipped still: firing it would start the
	// run of a missed tick. One this engine never had before is taken as
	// on time when first delivered.
	fire := false
	if known && !next.After(first) && !t.Catchup {
		// Weft was down for at least one later tick: skip the missed ones.
		e.log.Info("skipping missed cron ticks", "definition", m.Definition, "tick", tk.Tick)
		next = t.Schedule.Next(now.In(t.Location)).UTC()
	} else if added, err := e.addedSinceIfCatchup(ctx, m, tk.Tick); err != nil {
		return err
	} else if tk.Tick.Before(added) {
		// A tick of a time the trigger did not exist (removed and put back
		// while no engine ran): caught up from when it was put back.
		e.log.Info("skipping cron ticks of before the trigger was put back", "definition", m.Definition, "tick", tk.Tick, "added", added)
		next = t.Schedule.Next(added.In(t.Location)).UTC()
	} else {
		fire = true
	}
	// The next tick is scheduled before this one's run is started: a
	// handler that dies in between leaves this tick to its redelivery (an
	// ack wait later, on time then) and the ticks after it to the engines
	// still up. Scheduled after, nothing came until that redelivery, and
	// the ticks of the time between were skipped as missed although Weft
	// was up. (A redelivery schedules the same tick again: one already
	// handled fires again, and finds its run started.)
	if err := e.store.ScheduleCron(ctx, eventstore.CronTick{Definition: m.Definition, Key: t.Key, Tick: next}); err != nil {
		return err
	}
	if fire {
		ev := Event{Vars: map[string]any{"event": nil, "headers": map[string]any{}, "subject": "cron", "tick": tk.Tick},
			Identity: TickIdentity(tk.Tick)}
		if testHookFireTick != nil {
			testHookFireTick(e, tk)
		}
		if err := e.fire(ctx, m, ev, "cron", nil); err != nil {
			return err
		}
	}
	return e.store.SetLastCronTick(ctx, m.Definition, t.Key, tk.Tick)
}

// cancelCron cancels the pending tick of cron trigger key of definition
// def, which a look at the definitions as stored found removed, and
// forgets its last tick. A put that brought the trigger back since that
// look may have been set up by another engine (its tick scheduled) before
// the cancel: the definitions are looked at again, by a look that began
// after the cancel, and the trigger is scheduled again if it is there.
func (e *Engine) cancelCron(ctx context.Context, def, key string) error {
	if testHookBeforeCancelCron != nil {
		testHookBeforeCancelCron(def, key)
	}
	if err := e.store.CancelCron(ctx, def, key); err != nil {
		return err
	}
	st, err := e.reg.StoredSince(ctx, time.Now())
	if err != nil {
		return err
	}
	m, ok := st.Cron(def, key)
	if !ok {
		return nil
	}
	next, err := e.firstTick(ctx, m)
	if err != nil {
		return err
	}
	return e.store.ScheduleCron(ctx, eventstore.CronTick{Definition: def, Key: key, Tick: next})
}

// testHookTick, when set by a test, is called as a tick's handling begins.
var testHookTick func(tk *eventstore.CronTick)

// testHookFireTick, when set by a test, is called by engine e just before
// it starts the run of tick tk.
var testHookFireTick func(e *Engine, tk *eventstore.CronTick)

// testHookBeforeCancelCron, when set by a test, is called just before a
// cron trigger's pending tick is canceled.
var testHookBeforeCancelCron func(def, key string)

// addedSinceIfCatchup is addedSince for a catchup trigger, zero for
// another (its missed ticks are skipped anyway).
func (e *Engine) addedSinceIfCatchup(ctx context.Context, m Match, t time.Time) (time.Time, error) {
	if !m.Trigger.Catchup {
		return time.Time{}, nil
	}
	return e.addedSince(ctx, m, t)
}

// unsureTries is how many times an engine that cannot compile a stored
// definition (an older version's, during a rolling upgrade) gives back an
// event or tick that definition may own, five seconds apart, before it
// handles it as it can: a definition no part compiles holds nothing up
// for longer.
const unsureTries = 12

// errNakked says the handler settled the delivery itself.
var errNakked = errors.New("nakked")
