package orchestrator

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/internal/config"
	"github.com/weftworks/weft/internal/lifecycle"
	"github.com/weftworks/weft/internal/telemetry"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Config tunes an Orchestrator.
type Config struct {
	// Shards is how many workflows are decided in parallel; each workflow
	// always goes to the same shard, so its inputs are handled in order.
	// Default 16.
	Shards int
	// CacheSize bounds folded states kept per shard. Default 4096.
	CacheSize int
	// CacheBytes bounds the folded states kept, all shards together, by
	// the size of the records (or snapshot) each was folded from
	// (State.Bytes): each shard keeps at most its share, and besides it
	// one state larger than the share (see fit). Default 256 MiB.
	CacheBytes int
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock used to stamp fired timers. Default time.Now.
	Now func() time.Time
	// MaxHistoryEvents bounds a workflow's history: a workflow that would
	// grow past it fails with error type "limit". Default 100,000.
	MaxHistoryEvents int
	// MaxChildDepth bounds a chain of child workflows (a run's child's
	// child ...): a workflow step whose child would be deeper fails with
	// error type "limit", so a definition that starts itself without a
	// case that stops it ends instead of starting runs for ever.
	// Default 100.
	MaxChildDepth int
	// SnapshotEvery is how many events a running workflow's history grows
	// by between snapshots of its state, from which it is loaded again
	// instead of folding its whole history. A long history waits for a
	// tenth of its length too, so writing snapshots costs O(1) per event.
	// Default 1,000; negative: never.
	SnapshotEvery int
	// Definitions is the node's cache of compiled definitions. Default: one
	// of the orchestrator's own.
	Definitions *runs.Definitions
	// Retention is how long a closed run is kept before it is deleted
	// (history, snapshot, timers, listing entry), for runs whose
	// definition revision does not set its own retention. Default 0:
	// keep runs for ever.
	Retention time.Duration
	// Metrics is the registry the orchestrator records its metrics on, the
	// task types' backlog among them (see docs/operations.md). Default nil:
	// none.
	Metrics *prometheus.Registry
	// TracerProvider makes a span of every decision, in the trace its run
	// recorded at its start. Default: the process-wide provider (see
	// internal/telemetry).
	TracerProvider trace.TracerProvider
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Retention < 0 {
		return fmt.Errorf("orchestrator: Retention must not be negative, got %v", c.Retention)
	}
	return config.NonNegative("orchestrator",
		config.Int("Shards", c.Shards),
		config.Int("MaxHistoryEvents", c.MaxHistoryEvents),
		config.Int("MaxChildDepth", c.MaxChildDepth),
		config.Int("CacheSize", c.CacheSize),
		config.Int("CacheBytes", c.CacheBytes))
}

// Orchestrator consumes starts, signals, cancels, task results and fired
// timers, folds each into its workflow's state and appends what follows.
// Any number of orchestrators may run against the same streams: appends
// are conditional on the workflow's last sequence, so exactly one decision
// is recorded per state.
type Orchestrator struct {
	store *eventstore.Store
	defs  *runs.Definitions
	cfg   Config
	log   *slog.Logger
	// id names this orchestrator on the records it appends: executors send
	// the results of its step commands to it first (it has their workflow
	// cached).
	id string

	life   lifecycle.Guard
	cancel context.CancelFunc
	wg     sync.WaitGroup
	feeds  []*eventstore.Feed
	direct []*eventstore.DirectSub
	ix     *indexer
	// metrics record what this orchestrator decides and records.
	metrics *orchMetrics
	// tracer makes the decisions' spans.
	tracer trace.Tracer
	// holdersLooked is when each concurrency key's slot holders were last
	// looked at (freeClosedHolders), by slot key.
	holdersMu     sync.Mutex
	holdersLooked map[string]time.Time
	// beforeGiveBack, when set (tests), runs just before a closed run's
	// slot is given back, once reconcileSlot has looked at the run (or
	// admit found a run it handed a slot closed).
	beforeGiveBack func(wf string)
	// expireRead, when set (tests), runs in expire once it has read a run
	// due for deletion, before it deletes it.
	expireRead func(wf string)
}

// New returns an orchestrator over store.
func New(store *eventstore.Store, cfg Config) (*Orchestrator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	config.Default(&cfg.Shards, 16)
	config.Default(&cfg.CacheSize, 4096)
	config.Default(&cfg.CacheBytes, 256<<20)
	config.Default(&cfg.Logger, slog.Default())
	config.DefaultClock(&cfg.Now)
	config.Default(&cfg.MaxHistoryEvents, 100000)
	config.Default(&cfg.MaxChildDepth, 100)
	config.Default(&cfg.SnapshotEvery, 1000)
	return &Orchestrator{store: store, defs: cmp.Or(cfg.Definitions, runs.NewDefinitions(store)), cfg: cfg, id: runs.RandomID(),
		log: cfg.Logger.With("component", "orchestrator"), metrics: newOrchMetrics(cfg.Metrics, store),
		tracer: telemetry.Tracer(cfg.TracerProvider)}, nil
}

// Start begins consuming. It returns once subscribed.
func (o *Orchestrator) Start(ctx context.Context) error {
	return o.life.Start("orchestrator", func() error {
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		o.ix = newIndexer(o.store, o.log)
		r := o.startShards(runCtx)
		var feedWG sync.WaitGroup
		o.feeds, o.direct = nil, nil
		if err := o.subscribe(ctx, r, &feedWG); err != nil {
			// Undo the half-made start.
			cancel()
			o.stopIntake()
			feedWG.Wait()
			r.close()
			o.wg.Wait()
			o.ix.close()
			return err
		}
		// The shards end once no feed can hand them more.
		o.wg.Go(func() {
			feedWG.Wait()
			r.close()
		})
		o.cancel = cancel
		o.metrics.reportBacklog(o)
		return nil
	})
}

// startShards runs the shards, each deciding until its channel closes.
func (o *Orchestrator) startShards(runCtx context.Context) *router {
	r := &router{ctx: runCtx, shards: make([]chan *eventstore.Delivery, o.cfg.Shards)}
	for i := range r.shards {
		in := make(chan *eventstore.Delivery, 64)
		r.shards[i] = in
		sh := &shard{o: o, cache: map[string]*entry{}}
		o.wg.Go(func() { sh.run(runCtx, in) })
	}
	return r
}

// subscribe starts the feeds (external inputs, results, timers), which
// block on a full shard, and the direct subscriptions (results to this
// orchestrator, results and starts to any), which never do: a direct
// input that finds its shard full goes back to its sender, who uses the
// streams instead (an executor the results stream, the API the history
// stream). feedWG counts the feeds' loops.
func (o *Orchestrator) subscribe(ctx context.Context, r *router, feedWG *sync.WaitGroup) error {
	for _, src := range []eventstore.Source{eventstore.SourceExternal, eventstore.SourceResults, eventstore.SourceTimers, eventstore.SourceRetention} {
		f, err := o.store.Feed(ctx, src, 256)
		if err != nil {
			return err
		}
		o.feeds = append(o.feeds, f)
		feedWG.Go(func() { r.pump(f, src, o.log) })
	}
	own := func(fn func(*eventstore.Delivery)) (*eventstore.DirectSub, error) {
		return o.store.OwnResults(o.id, fn)
	}
	for _, sub := range []func(func(*eventstore.Delivery)) (*eventstore.DirectSub, error){own, o.store.DirectResults, o.store.DirectStarts} {
		direct, err := sub(r.offer)
		if err != nil {
			return err
		}
		o.direct = append(o.direct, direct)
	}
	return nil
}

// stopIntake stops the direct subscriptions and the feeds.
func (o *Orchestrator) stopIntake() {
	for _, d := range o.direct {
		d.Stop()
	}
	for _, f := range o.feeds {
		f.Stop()
	}
}

// Stop stops consuming and waits for in-flight work. Unsettled messages
// are redelivered to another orchestrator. Calling Stop twice is fine.
func (o *Orchestrator) Stop(ctx context.Context) error {
	return o.life.Stop(func() error {
		o.metrics.stopBacklog()
		o.stopIntake()
		return lifecycle.Drain(ctx, func() { o.wg.Wait(); o.ix.close() }, o.cancel)
	})
}

// router hands each input to its workflow's shard, so one workflow's
// inputs are decided one at a time, in order.
type router struct {
	ctx    context.Context // the orchestrator's run
	shards []chan *eventstore.Delivery
	// mu guards closed: direct inputs join a shard until it is set.
	mu     sync.RWMutex
	closed bool
}

func (r *router) shardOf(wf string) chan *eventstore.Delivery {
	return r.shards[shardOf(wf, len(r.shards))]
}

// pump hands f's deliveries to their shards, waiting for room, until f
// stops or the run ends.
func (r *router) pump(f *eventstore.Feed, src eventstore.Source, log *slog.Logger) {
	for {
		d, err := f.Next()
		if err != nil {
			if errors.Is(err, eventstore.ErrFeedClosed) || r.ctx.Err() != nil {
				return
			}
			log.Warn("feed error", "source", src, "err", err)
			continue
		}
		select {
		case r.shardOf(d.WorkflowID) <- d:
		case <-r.ctx.Done():
			_ = d.Nak(0)
			return
		}
	}
}

// offer hands a direct delivery to its shard if it has room, and sends
// it back otherwise.
func (r *router) offer(d *eventstore.Delivery) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed || r.ctx.Err() != nil {
		_ = d.Nak(0)
		return
	}
	select {
	case r.shardOf(d.WorkflowID) <- d:
	default:
		_ = d.Nak(0)
	}
}

// close closes the shards' channels once no feed sends on them: direct
// inputs are sent back from then on.
func (r *router) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, ch := range r.shards {
		close(ch)
	}
}

func shardOf(wf string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(wf))
	return int(h.Sum32() % uint32(n))
}

// entry is a cached folded state, and what this orchestrator knows the
// world already has for it (so follow-ups are not repeated on every input).
// What it knows is forgotten with the entry: a state loaded afresh makes
// sure of everything again.
type entry struct {
	st *workflow.State
	// indexed holds what the listing index is known to hold (a written:
	// its indexKey and revision, set by the indexer once its write
	// landed; cleared when another writer may have changed the entry);
	// queued is the last indexKey handed to the indexer.
	indexed *atomic.Value
	queued  indexKey
	// started holds the child workflows known to exist; settled the
	// abandoned ones known to need no cancel while this state is cached
	// (closed, or unable to start). Those asked to cancel are the
	// shard's to remember (shard.asked): a fact their histories keep,
	// which outlives the entry.
	started map[string]bool
	settled map[string]bool
	// slotFreed is the generation of the run that gave its slot up once
	// closed (reconcileSlot; zero: none did): a redrive is another
	// generation, which gives its own up when it closes.
	slotFreed eventstore.SlotRun
	// snapSeq is the history sequence of the workflow's latest snapshot
	// known here (0: none), snapEvents the number of events it holds.
	snapSeq    uint64
	snapEvents int
	// counted is what the entry counts for in its shard's bytes: its
	// state's Bytes when last fitted.
	counted int64
}

// shard decides the workflows hashed to it, one input at a time.
type shard struct {
	o     *Orchestrator
	cache map[string]*entry
	// bytes is the cached states' size, as counted (entry.counted); large
	// is the workflow whose cached state alone is larger than the shard's
	// share (fit), if any, which does not count against the share.
	bytes int64
	large string
	// held says the input just processed is settled by the indexer.
	held bool
	// asked holds the children this shard asked to cancel, or started
	// with their cancel (cancelChild), by parent run: facts their
	// histories keep, remembered here only (not also with the parent's
	// cached state). It outlives the parent's cached state
	// (a closed one leaves the cache at once), so the outcome each such
	// child sends its closed parent, read afresh, does not look them all
	// up again. At most maxAsked; emptied when full, which only costs
	// those looks.
	asked map[[16]byte]struct{}
}

// maxAsked bounds a shard's asked children.
const maxAsked = 1 << 15

// askedKey names the child of step s of the run st in shard.asked.
func askedKey(st *workflow.State, s *workflow.Step) [16]byte {
	// Cheap, for it is computed for every abandoned child at every input
	// of its parent: the run's creation in 8 bytes, then the child's id.
	h := fnv.New128a()
	var created [8]byte
	binary.LittleEndian.PutUint64(created[:], uint64(st.Created.UnixNano()))
	_, _ = h.Write(created[:])
	_, _ = io.WriteString(h, s.ChildID)
	var k [16]byte
	h.Sum(k[:0])
	return k
}

// askedOnce records that the child of step s of the run st was asked to
// cancel: see shard.asked.
func (sh *shard) askedOnce(st *workflow.State, s *workflow.Step) {
	if sh.asked == nil || len(sh.asked) >= maxAsked {
		sh.asked = map[[16]byte]struct{}{}
	}
	sh.asked[askedKey(st, s)] = struct{}{}
}

func (sh *shard) run(ctx context.Context, in chan *eventstore.Delivery) {
	for d := range in {
		if ctx.Err() != nil {
			_ = d.Nak(0)
			continue
		}
		sh.handle(ctx, d)
	}
}

// timerRecordWait is how long after its due time a fired timer waits for
// the record that set it to show in history before it is dropped.
const timerRecordWait = time.Minute

// errNotDue asks for a timer delivery to come back when due.
type errNotDue struct{ wait time.Duration }

func (e errNotDue) Error() string { return "timer not due yet" }

// minTimerWait is the least a timer delivered early waits to come back.
const minTimerWait = 100 * time.Millisecond

// timerDue returns when st expects timer t to fire (zero if it does not).
func timerDue(st *workflow.State, t events.TimerDue) time.Time {
	if t.Path == "" && workflow.IsAdmissionTimer(t.TimerID) {
		return st.AdmitAt
	}
	if t.Path == "" {
		return st.TimeoutAt
	}
	if s := st.Steps[t.Path]; s != nil {
		return s.TimeoutAt
	}
	return time.Time{}
}

// errBroken marks a workflow that cannot go on (a corrupt history, a
// decision too large to store): it is failed with error type typ.
type errBroken struct {
	typ string
	err error
}

func (e errBroken) Error() string { return e.err.Error() }

// closed returns wf's last sequence and whether wf is closed: its last
// record closes it, or, as a failed run still records late results and
// timers after its close, no redrive came after its last close. It reads
// the last record, and the records after the last close when that is not
// the last record: a handful, not the history.
//
// Errors: eventstore.ErrNotFound when wf has no history.
func (sh *shard) closed(ctx context.Context, wf string) (uint64, bool, error) {
	last, err := sh.o.store.LastSeq(ctx, wf)
	if err != nil {
		return 0, false, err
	}
	msgs, err := sh.o.store.Read(ctx, wf, last-1)
	if err != nil || len(msgs) != 1 || msgs[0].Err != nil {
		return last, false, err
	}
	if evs := msgs[0].Record.Events; evs[len(evs)-1].Terminal() {
		return last, true, nil
	}
	end, err := sh.o.store.LastClose(ctx, wf)
	if errors.Is(err, eventstore.ErrNotFound) {
		return last, false, nil
	}
	if err != nil {
		return last, false, err
	}
	since, err := sh.o.store.Read(ctx, wf, end)
	if err != nil {
		return last, false, err
	}
	for _, m := range since {
		if m.Err != nil || slices.ContainsFunc(m.Record.Events, func(ev events.Event) bool { return ev.Type == events.TypeWorkflowRetried }) {
			return last, false, nil
		}
	}
	return last, true, nil
}

// failWorkflow appends WorkflowFailed to a workflow that cannot go on,
// without folding its history, unless its last record already says so.
func (sh *shard) failWorkflow(ctx context.Context, wf string, b errBroken) error {
	for range 5 {
		last, closed, err := sh.closed(ctx, wf)
		if err != nil || closed {
			return err
		}
		_, err = sh.o.store.Append(ctx, wf, last, events.Event{Type: events.TypeWorkflowFailed, Time: sh.o.cfg.Now().UTC(),
			WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: b.typ, Message: b.err.Error()}.FitRun()}})
		if err == nil {
			sh.countBrokenClose(ctx, wf)
		}
		if !errors.Is(err, eventstore.ErrConflict) {
			return err
		}
	}
	return errors.New("history kept changing")
}

// errNoneRead: a read of a history found none, where the input it was
// read for refers to a record of it. A read behind the record (a replica
// that applied it first handed it out) finds it when asked again; a run
// deleted since finds none for good, from a stream that has reached it.
type errNoneRead struct{ err error }

func (e errNoneRead) Error() string { return e.err.Error() }
func (e errNoneRead) Unwrap() error { return e.err }

// errNewer: a run's history holds a record a newer version of Weft
// wrote (a rolling upgrade under way). This orchestrator cannot judge the
// run by it, and leaves the input to one that can.
type errNewer struct{ err error }

func (e errNewer) Error() string { return e.err.Error() }
func (e errNewer) Unwrap() error { return e.err }

// errPermanent marks inputs that can never be processed.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }

// handle settles one input: it is processed (again, on the history read
// afresh, when another writer appended first), then acked, left to the
// indexer, redelivered later or dropped.
func (sh *shard) handle(ctx context.Context, d *eventstore.Delivery) {
	// The logger is made only when there is something to say: the hot path
	// does not pay for formatting its attributes.
	log := func() *slog.Logger {
		return sh.o.log.With("workflow_id", d.WorkflowID, "source", d.Source, "seq", d.Seq)
	}
	if d.Err != nil {
		if d.Source == eventstore.SourceResults || d.Source == eventstore.SourceTimers || d.Source == eventstore.SourceExternal {
			// Written by a newer executor, orchestrator or API, say,
			// during a rolling upgrade: an orchestrator that can read it
			// takes it. Dropped (or, a result sent directly, confirmed to
			// its executor, which then acks its command), the step or the
			// sleep would wait for ever, and a start, signal, cancel,
			// resume or retry the API accepted would never be applied.
			log().Error("cannot read a result, a fired timer or an outside record; giving it back for an orchestrator that can (a newer version?)",
				"in", unreadableDelay, "err", d.Err)
			_ = d.Nak(unreadableDelay)
			return
		}
		log().Error("dropping undecodable message", "err", d.Err)
		_ = d.Term(d.Err.Error())
		return
	}
	// Whatever the input did to its run's state, the cache counts it at
	// its new size after, and keeps within its bound.
	defer sh.fit(d.WorkflowID)
	if err := sh.processUntilSettled(ctx, d); err != nil {
		sh.forget(d.WorkflowID)
		sh.settleFailed(ctx, d, err, log)
		return
	}
	if sh.takeHeld() {
		return
	}
	if err := d.Ack(); err != nil {
		log().Warn("ack failed; the input will be redelivered and found already applied", "err", err)
	}
}

// unreadableDelay is how long a result or fired timer this orchestrator
// cannot read waits before it is delivered again.
const unreadableDelay = time.Minute

// processUntilSettled processes d, and again on the history read afresh
// when an append conflicts, up to 20 times.
func (sh *shard) processUntilSettled(ctx context.Context, d *eventstore.Delivery) error {
	defer sh.o.metrics.orch.Decided(time.Now())
	for try := 0; ; try++ {
		err := sh.process(ctx, d, try == 0)
		var broken errBroken
		switch {
		case try == 0 && errors.As(err, &broken):
			// Judged on a state that may be cached behind the history (a
			// cancel recorded since, say): "cannot go on" is recorded
			// only as judged on the history read afresh.
		case !errors.Is(err, eventstore.ErrConflict) || try >= 20:
			return err
		default:
			sh.o.metrics.orch.Conflict()
		}
		sh.forget(d.WorkflowID)
	}
}

// takeHeld reports whether the input just processed is left to the
// indexer to settle, and forgets it.
func (sh *shard) takeHeld() bool {
	held := sh.held
	sh.held = false
	return held
}

// settleFailed settles an input whose processing failed with err: a
// workflow that cannot go on is failed, an early timer comes back when
// due, an input that can never apply is dropped, and any other is
// redelivered after a backoff.
func (sh *shard) settleFailed(ctx context.Context, d *eventstore.Delivery, err error, log func() *slog.Logger) {
	var nd errNotDue
	var perm errPermanent
	var broken errBroken
	var newer errNewer
	switch {
	case errors.As(err, &newer):
		log().Error("the run's history holds a record of a newer version; giving the input back for an orchestrator that can read it",
			"in", unreadableDelay, "err", err)
		_ = d.Nak(unreadableDelay)
	case errors.As(err, &broken):
		sh.failBroken(ctx, d, broken, log)
	case errors.As(err, &nd):
		_ = d.Nak(nd.wait)
	case errors.As(err, &perm):
		log().Error("dropping input that cannot be applied", "err", err)
		_ = d.Term(err.Error())
	default:
		if ctx.Err() == nil {
			log().Warn("processing failed; retrying", "err", err)
		}
		_ = d.Nak(backoff(d.NumDelivered))
	}
}

// failBroken records that d's workflow cannot go on, and never blocks on
// it. The input then applies to the failed workflow as to any failed one
// (a result is still recorded, so a redrive finds the step where it is),
// and what follows a failure follows: the parent is told, the listing
// written. A history that does not fold gets those follow-ups from what
// does.
func (sh *shard) failBroken(ctx context.Context, d *eventstore.Delivery, broken errBroken, log func() *slog.Logger) {
	log().Error("failing a workflow that cannot go on", "err", broken.err)
	if err := sh.failWorkflow(ctx, d.WorkflowID, broken); err != nil {
		log().Warn("could not record the failure; retrying", "err", err)
		_ = d.Nak(backoff(d.NumDelivered))
		return
	}
	err := sh.process(ctx, d, false)
	if errors.As(err, &broken) {
		sh.forget(d.WorkflowID)
		err = sh.afterBroken(ctx, d)
	}
	if err != nil {
		// The state process loaded may hold the input applied and never
		// stored: the next delivery reads the run afresh.
		sh.forget(d.WorkflowID)
		log().Warn("could not follow up the failure; retrying", "err", err)
		_ = d.Nak(backoff(d.NumDelivered))
		return
	}
	if !sh.takeHeld() {
		_ = d.Ack()
	}
}

func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n, 6)
	return min(d, 5*time.Second)
}

// load returns wf's folded state, read from history when not cached or
// when the cache is behind minSeq. fresh says it was just read.
func (sh *shard) load(ctx context.Context, wf string, minSeq uint64) (*entry, bool, error) {
	e := sh.cache[wf]
	if e != nil && e.st.LastSeq >= minSeq {
		return e, false, nil
	}
	var after uint64
	if e == nil {
		e = &entry{st: &workflow.State{}}
	} else {
		after = e.st.LastSeq
	}
	if err := sh.catchUp(ctx, wf, e, after); err != nil {
		return nil, false, err
	}
	if e.st.LastSeq < minSeq {
		// The read did not reach the record we were handed: never decide
		// on a history that misses it.
		err := fmt.Errorf("history of %s read up to seq %d, behind delivered seq %d", wf, e.st.LastSeq, minSeq)
		if e.st.Events == 0 {
			err = errNoneRead{err}
		}
		return nil, false, err
	}
	if e.st.Events == 0 {
		return nil, true, nil
	}
	sh.remember(wf, e)
	return e, true, nil
}

// afterBroken runs the follow-ups of a workflow just failed because it
// cannot go on, on its history folded as far as it folds.
func (sh *shard) afterBroken(ctx context.Context, d *eventstore.Delivery) error {
	l, err := runs.ReadFromSnapshot(ctx, sh.o.store, d.WorkflowID)
	if err != nil {
		return err
	}
	st := l.State
	runs.FoldMessages(st, l.Msgs)
	if st.Events == 0 {
		return nil // not even a start to follow up
	}
	return sh.reconcile(ctx, d.WorkflowID, &entry{st: st}, d)
}

// catchUp folds into e the records of wf after sequence after. A load
// from scratch (after 0) starts from the snapshot the history names, if
// any; a cached state only ever folds what follows it.
func (sh *shard) catchUp(ctx context.Context, wf string, e *entry, after uint64) error {
	var msgs []eventstore.Message
	if after == 0 {
		l, err := runs.ReadFromSnapshot(ctx, sh.o.store, wf)
		if err != nil {
			return err
		}
		if l.Passed != nil {
			sh.o.log.Warn("passing by an unreadable snapshot", "workflow_id", wf, "err", l.Passed)
		}
		msgs = l.Msgs
		if l.SnapshotSeq > 0 {
			e.st, e.snapSeq, e.snapEvents = l.State, l.SnapshotSeq, l.State.Events
		}
	} else {
		var err error
		if msgs, err = sh.o.store.Read(ctx, wf, after); err != nil {
			return err
		}
		if len(msgs) > 0 && msgs[0].StartsRun() {
			// Deleted (retention) and started again since it was cached:
			// the new run is read afresh, as after a conflict, never
			// folded onto the old one.
			return fmt.Errorf("workflow %s was started again since seq %d: %w", wf, after, eventstore.ErrConflict)
		}
	}
	m, err := runs.Fold(e.st, msgs, func(ev events.Event) {
		switch ev.Type {
		case events.TypeWorkflowCompleted, events.TypeWorkflowFailed, events.TypeWorkflowCanceled, events.TypeWorkflowRetried,
			events.TypeStepSuspended, events.TypeWorkflowResumed, events.TypeWorkflowQueued, events.TypeWorkflowAdmitted:
			// Another writer changed the status (as shown), and may have written
			// the listing entry: what this one knows of it is stale.
			// (A write queued before marks the old value.)
			e.indexed, e.queued = nil, indexKey{}
		}
	})
	switch {
	case m == nil:
		return nil
	case errors.Is(err, events.ErrNewer):
		return errNewer{fmt.Errorf("workflow %s at seq %d: %w", wf, m.Seq, err)}
	case m.Err != nil:
		return errBroken{workflow.ErrTypeCorruptHistory, fmt.Errorf("workflow %s: %w", wf, err)}
	}
	return errBroken{workflow.ErrTypeCorruptHistory, fmt.Errorf("workflow %s at seq %d: %w", wf, m.Seq, err)}
}

// remember caches e as wf's state, within the cache's bounds.
func (sh *shard) remember(wf string, e *entry) {
	switch old := sh.cache[wf]; {
	case old == e:
	case old != nil:
		sh.forget(wf)
	case len(sh.cache) >= sh.o.cfg.CacheSize:
		for k := range sh.cache { // evict an arbitrary entry
			sh.forget(k)
			break
		}
	}
	if sh.cache[wf] == nil {
		sh.o.metrics.orch.Cached(1, 0)
	}
	sh.cache[wf] = e
	sh.fit(wf)
}

// forget drops wf's state from the cache.
func (sh *shard) forget(wf string) {
	if e := sh.cache[wf]; e != nil {
		sh.bytes -= e.counted
		sh.o.metrics.orch.Cached(-1, -e.counted)
		e.counted = 0
		delete(sh.cache, wf)
	}
	if sh.large == wf {
		sh.large = ""
	}
}

// fit counts wf's cached state (if any) at its size now, then pushes
// arbitrary other states out until the cache is within its share of
// CacheBytes. A state larger than the whole share is kept besides it, one
// at a time: a shard holds its share and at most one such state (the
// last one an input came for), so a run that large is not read afresh at
// each of its inputs (with each of its children looked up again), unless
// another that large on the same shard has inputs in between.
func (sh *shard) fit(wf string) {
	limit := max(int64(sh.o.cfg.CacheBytes/sh.o.cfg.Shards), 1)
	if e := sh.cache[wf]; e != nil {
		sh.bytes += e.st.Bytes - e.counted
		sh.o.metrics.orch.Cached(0, e.st.Bytes-e.counted)
		e.counted = e.st.Bytes
		switch {
		case e.counted > limit && sh.large != wf:
			if sh.large != "" {
				sh.forget(sh.large)
			}
			sh.large = wf
		case e.counted <= limit && sh.large == wf:
			sh.large = ""
		}
	}
	over := func() bool {
		n := sh.bytes
		if e := sh.cache[sh.large]; e != nil {
			n -= e.counted
		}
		return n > limit
	}
	if !over() {
		return
	}
	for k := range sh.cache {
		if k != wf && k != sh.large {
			sh.forget(k)
			if !over() {
				return
			}
		}
	}
}

// process applies one input to its workflow and appends what follows:
// it loads the state the input applies to, accepts the input, decides,
// commits the input and the decision, and runs the state's follow-ups.
// seed allows starting a new workflow's state from the delivered record
// (first tries only: after a conflict the history is read).
func (sh *shard) process(ctx context.Context, d *eventstore.Delivery, seed bool) (err error) {
	if d.Start != nil {
		// Settled here: recorded, or declined to the API.
		sh.held = true
		if !sh.startDirect(ctx, d) {
			_ = d.Nak(0)
		}
		return nil
	}
	if d.Deletion != nil {
		return sh.expire(ctx, d.WorkflowID)
	}
	e, fresh, err := sh.loadFor(ctx, d, seed)
	if err != nil {
		return err
	}
	ctx, span := sh.o.startSpan(ctx, "weft.decide", e.st, d.Source.String())
	defer func() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}()
	if r := d.Result; r != nil {
		span.SetAttributes(telemetry.StepPath.String(r.Path), telemetry.Attempt.Int(r.Attempt))
	}
	input, err := sh.accept(ctx, d, e, fresh)
	if err != nil {
		return err
	}
	if err := apply(e.st, input); err != nil {
		return err
	}
	def, err := sh.definition(ctx, e.st)
	if err != nil {
		return err
	}
	decided, err := decide(e.st, def, sh.o.cfg.MaxHistoryEvents)
	if err != nil {
		return err
	}
	if err := sh.commit(ctx, d.WorkflowID, e, append(input, decided...)); err != nil {
		return err
	}
	if testHookAfterCommit != nil {
		if err := testHookAfterCommit(d.WorkflowID); err != nil {
			return err
		}
	}
	return sh.reconcile(ctx, d.WorkflowID, e, d)
}

// testHookAfterCommit, when set by a test, is called after an input's
// decision is recorded and before its follow-ups; an error it returns
// cuts the handling short there, as a crash would.
var testHookAfterCommit func(wf string) error

// testHookCancelCheck, when set by a test, is called each time
// cancelChild looks a child up (it is not known asked to cancel).
var testHookCancelCheck func(child string)

// loadFor returns the state d applies to, and whether it was just read.
// It never judges an input on a history that does not reach the record
// it refers to: the delivered record itself, or the command a result is
// for. A new workflow's state is seeded from its first record when seed
// allows.
func (sh *shard) loadFor(ctx context.Context, d *eventstore.Delivery, seed bool) (*entry, bool, error) {
	wf := d.WorkflowID
	if m := d.Message; seed && d.Source == eventstore.SourceExternal && sh.cache[wf] == nil && m != nil && m.Err == nil &&
		m.Record.Events[0].Type == events.TypeWorkflowStarted {
		e, err := sh.seed(wf, m)
		return e, false, err
	}
	minSeq := uint64(0)
	switch {
	case d.Source == eventstore.SourceExternal:
		minSeq = d.Seq
	case d.Result != nil:
		minSeq = d.Result.Cmd
	case d.Timer != nil:
		minSeq = d.Timer.After // the run's last record when the timer was set
	}
	e, fresh, err := sh.load(ctx, wf, minSeq)
	if none := (errNoneRead{}); errors.As(err, &none) && d.Source != eventstore.SourceExternal {
		// None, and the record the input refers to is gone from a stream
		// that reached it: not a read behind, but a run deleted
		// (retention) since. An outside input is that record itself:
		// it is tried again, and the stream hands out no record deleted
		// since.
		if gone, rerr := sh.o.store.HistoryRecordGone(ctx, wf, minSeq); rerr == nil && gone {
			return nil, false, errPermanent{fmt.Errorf("workflow %s has no history (deleted since): %w", wf, err)}
		}
	}
	if err != nil {
		return nil, false, err
	}
	if e == nil {
		// A result or timer for a workflow with no history: nothing to apply it to.
		return nil, false, errPermanent{fmt.Errorf("workflow %s has no history", wf)}
	}
	return e, fresh, nil
}

// seed starts a new workflow's state from its first record, in hand,
// without reading the history. If more was appended since, the
// conditional append conflicts and the workflow is read in full.
func (sh *shard) seed(wf string, m *eventstore.Message) (*entry, error) {
	e := &entry{st: &workflow.State{}}
	for _, ev := range m.Record.Events {
		if err := e.st.Apply(ev); err != nil {
			return nil, errBroken{workflow.ErrTypeCorruptHistory, err}
		}
	}
	e.st.LastSeq, e.st.FirstSeq, e.st.Bytes = m.Seq, m.Seq, int64(m.Size)
	sh.remember(wf, e)
	return e, nil
}

// accept returns the events a result or fired timer adds to e's state
// (none when it no longer applies). An input external to the workflow
// (a start, signal or cancel) is in its history already: loading it
// applied it.
func (sh *shard) accept(ctx context.Context, d *eventstore.Delivery, e *entry, fresh bool) ([]events.Event, error) {
	switch d.Source {
	case eventstore.SourceResults:
		return sh.acceptResult(ctx, d, e, fresh)
	case eventstore.SourceTimers:
		return sh.acceptTimer(ctx, d, e, fresh)
	}
	return nil, nil
}

// acceptResult returns the event a task or child result adds to e's
// state, made fit to record.
func (sh *shard) acceptResult(ctx context.Context, d *eventstore.Delivery, e *entry, fresh bool) ([]events.Event, error) {
	st := e.st
	if r := d.Result; r.Cmd > 0 && r.Cmd < st.FirstSeq {
		// A command of an earlier run of this id, deleted since.
		return nil, nil
	}
	ev, ok := workflow.AcceptResult(st, *d.Result)
	if !ok && !fresh {
		// The cache may be behind another orchestrator: look again before dropping.
		if err := sh.catchUp(ctx, d.WorkflowID, e, st.LastSeq); err != nil {
			return nil, err
		}
		ev, ok = workflow.AcceptResult(st, *d.Result)
	}
	if !ok {
		sh.o.log.Debug("result no longer applies; ignoring it", "workflow_id", d.WorkflowID, "step", d.Result.Path,
			"gen", d.Result.Gen, "attempt", d.Result.Attempt, "cmd", d.Result.Cmd, "history", st.LastSeq)
		return nil, nil
	}
	return []events.Event{sh.fitResult(ev)}, nil
}

// fitResult makes an accepted result's event fit to record. An
// executor's clock that runs ahead must not move the workflow's time
// (workflow.now, the due times of its timers); an output too large to
// record, or one that could not be read back, fails its step (which a
// catch can handle), never the workflow; failures, and why an attempt is
// held, are shown as text, so they are kept valid UTF-8 and cut to a
// bound (events.Error.Fit).
func (sh *shard) fitResult(ev events.Event) events.Event {
	if now := sh.o.cfg.Now().UTC(); ev.Time.After(now) {
		ev.Time = now
	}
	if c := ev.StepCompleted; c != nil {
		msg := ""
		if err := value.Check("output", c.Output, value.Limits{MaxDepth: value.MaxStoredDepth}); err != nil {
			msg = err.Error()
		} else if n, big := sh.oversized(ev); big {
			msg = fmt.Sprintf("the output is %d bytes encoded; the limit is %d bytes", n, sh.o.store.MaxPayload()-recordHeadroom)
		}
		if msg != "" {
			ev = events.Event{Type: events.TypeStepFailed, Time: ev.Time, StepFailed: &events.StepFailed{Path: c.Path, Gen: c.Gen,
				Attempt: c.Attempt, Error: events.Error{Type: workflow.ErrTypeInvalidOutput, Message: msg}}}
		}
	}
	if ev.StepFailed != nil {
		ev.StepFailed.Error = ev.StepFailed.Error.Fit()
	}
	if ev.StepAttemptFailed != nil {
		ev.StepAttemptFailed.Error = ev.StepAttemptFailed.Error.Fit()
	}
	if ev.StepSuspended != nil {
		ev.StepSuspended.Error = ev.StepSuspended.Error.Fit()
	}
	if h := ev.StepHeld; h != nil {
		// Why an attempt waits is shown as text too (the step's
		// waiting_for, the event's reason and detail).
		fit := events.Error{Type: h.Reason, Message: h.Detail}.Fit()
		h.Reason, h.Detail = fit.Type, fit.Message
	}
	return ev
}

// acceptTimer returns the event a fired timer adds to e's state. A timer
// delivered before the workflow expects it comes back when it does.
func (sh *shard) acceptTimer(ctx context.Context, d *eventstore.Delivery, e *entry, fresh bool) ([]events.Event, error) {
	st := e.st
	now := sh.o.cfg.Now().UTC()
	ev, ok, due := workflow.AcceptTimer(st, *d.Timer, now)
	if !ok && due && !fresh {
		// A cached state may not know the timer yet (another orchestrator
		// set it): caught up, it may also expect it later.
		if err := sh.catchUp(ctx, d.WorkflowID, e, st.LastSeq); err != nil {
			return nil, err
		}
		ev, ok, due = workflow.AcceptTimer(st, *d.Timer, now)
	}
	if !due {
		// Come back when the workflow expects the timer: the delivered
		// due time may be earlier (a timer scheduled again later, or this
		// clock behind the timers stream's).
		return nil, errNotDue{max(timerDue(st, *d.Timer).Sub(now), minTimerWait)}
	}
	if !ok && st.LastSeq <= d.Timer.After && now.Sub(d.Timer.Due) < timerRecordWait {
		// The record that set the timer is not in the history read: its
		// append may still be on its way (across a NATS leader election,
		// say). Ask again rather than drop the timer.
		return nil, errNotDue{time.Second}
	}
	if !ok {
		return nil, nil
	}
	return []events.Event{ev}, nil
}

// apply folds the accepted input into st.
func apply(st *workflow.State, input []events.Event) error {
	for _, ev := range input {
		if err := st.Apply(ev); err != nil {
			return errPermanent{err}
		}
	}
	return nil
}

// definition returns the definition st runs on, or nil when it no longer
// runs (nothing is decided for it).
func (sh *shard) definition(ctx context.Context, st *workflow.State) (*definition.Definition, error) {
	if st.Status != workflow.StatusRunning {
		return nil, nil
	}
	def, _, err := sh.o.defs.Load(ctx, st.Definition, st.Revision)
	if err != nil {
		return nil, fmt.Errorf("load definition %s revision %d: %w", st.Definition, st.Revision, err)
	}
	return def, nil
}

// decide advances a running st on its definition def and returns the
// events that follow (applied to st), or fails the workflow when its
// history would grow past maxEvents. It reads and writes nothing but st:
// the same state and definition always decide the same.
func decide(st *workflow.State, def *definition.Definition, maxEvents int) ([]events.Event, error) {
	if st.Status != workflow.StatusRunning {
		return nil, nil
	}
	decided, err := workflow.Advance(st, def)
	if err != nil {
		return nil, errBroken{workflow.ErrTypeLimit, err}
	}
	if st.Events > maxEvents && st.Status == workflow.StatusRunning {
		return nil, errBroken{workflow.ErrTypeLimit, fmt.Errorf("history would grow to %d events; the limit is %d (MaxHistoryEvents)", st.Events, maxEvents)}
	}
	return decided, nil
}

// commit appends evs (the accepted input and the decision, applied to
// e's state already) and stores a snapshot of the state when one is due.
func (sh *shard) commit(ctx context.Context, wf string, e *entry, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := sh.append(ctx, wf, e, evs); err != nil {
		return err
	}
	sh.o.metrics.countCloses(e.st, evs)
	sh.snapshot(ctx, wf, e)
	return nil
}

// reconcile makes the world agree with wf's folded state, whatever path
// reached it (a fresh read, a catch-up, a snapshot, a direct start, a
// redelivery, a failure of the "cannot go on" kind): it is the one place
// that runs a state's follow-ups, after every input. Each follow-up is
// idempotent; what e records as done is skipped, and a state loaded
// afresh records nothing, so it makes sure of everything again.
//
// The follow-ups (docs/reliability.md lists them):
//   - a running (or failed) workflow's running child steps have their
//     child started;
//   - child steps that were canceled, or left unfinished by a workflow
//     that completed or was canceled, have their child canceled (started
//     first if it never was, so a late start cannot outrun the cancel);
//   - a closed child tells its parent how it ended;
//   - the listing index holds the workflow's status and search
//     attributes, and who started it (an input that parks or closes the
//     workflow is settled only once it does);
//   - a closed workflow kept for a while (retention) has its deletion
//     scheduled at its close plus its retention;
//   - a run under its definition's concurrency waits in its key's queue
//     until it holds a slot, and is then admitted; a closed one gives its
//     slot or place up, and the runs that take the slots freed are
//     admitted (see reconcileSlot);
//   - a closed workflow leaves the cache.
func (sh *shard) reconcile(ctx context.Context, wf string, e *entry, d *eventstore.Delivery) error {
	if st := e.st; st.Queued && !st.Admitted && !st.Status.Terminal() {
		// A run waiting for a slot is judged from the history read
		// afresh, never from a cached state alone (see reconcileSlot),
		// and so are all its follow-ups: the read may bring records
		// another orchestrator appended and never followed up (it died
		// after recording the run's admission and its children, or its
		// cancel), and the state closed by them leaves the cache below.
		if err := sh.catchUp(ctx, wf, e, st.LastSeq); err != nil {
			return err
		}
	}
	st := e.st
	if err := sh.reconcileChildren(ctx, wf, e); err != nil {
		return err
	}
	// The slot first: a run deleted before it gave its slot back would
	// leave the slot held under an id that may name another run since.
	if err := sh.reconcileSlot(ctx, wf, e); err != nil {
		return err
	}
	if err := sh.scheduleDeletion(ctx, wf, st); err != nil {
		return err
	}
	if st.Status.Terminal() && st.Parent != nil {
		// Repeated whenever a closed child sees an input; the parent takes
		// the first and drops the others.
		if err := sh.tellParent(ctx, st); err != nil {
			return err
		}
	}
	sh.held = sh.index(wf, e, d)
	if st.Status.Terminal() {
		sh.forget(wf)
	}
	return nil
}

// reconcileChildren starts the children st records as running and cancels
// the ones it no longer needs, those of steps a redrive started again
// under a new id too. A failed workflow keeps its children: a redrive may
// still need them.
func (sh *shard) reconcileChildren(ctx context.Context, wf string, e *entry) error {
	st := e.st
	if err := sh.cancelUnneeded(ctx, e); err != nil {
		return err
	}
	for _, path := range st.Order {
		s := st.Steps[path]
		if s.ChildID == "" || workflow.Abandoned(st, s) || s.Status != workflow.StepRunning || e.started[s.ChildID] ||
			st.Status != workflow.StatusRunning && st.Status != workflow.StatusFailed {
			continue
		}
		// A failed parent's running children run on (a redrive takes
		// their results), so one it recorded is started all the same.
		if err := sh.startChild(ctx, st, s, st.Now); err != nil {
			return err
		}
		e.started = mark(e.started, s.ChildID)
	}
	return nil
}

// cancelUnneeded cancels the children e's workflow no longer needs: those
// of steps canceled, or left unfinished by a workflow that completed or
// was canceled, and those of steps a redrive started again under a new id.
func (sh *shard) cancelUnneeded(ctx context.Context, e *entry) error {
	st := e.st
	for _, s := range st.Superseded {
		if err := sh.cancelChild(ctx, e, s); err != nil {
			return err
		}
	}
	for _, path := range st.Order {
		if s := st.Steps[path]; s.ChildID != "" && workflow.Abandoned(st, s) {
			if err := sh.cancelChild(ctx, e, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// cancelChild cancels the child of e's step s, which e's workflow no
// longer needs, unless its shard knows it was asked to (asked) or e knows
// it needs no cancel (settled).
func (sh *shard) cancelChild(ctx context.Context, e *entry, s *workflow.Step) error {
	st := e.st
	if _, ok := sh.asked[askedKey(st, s)]; ok || e.settled[s.ChildID] {
		return nil
	}
	if testHookCancelCheck != nil {
		testHookCancelCheck(s.ChildID)
	}
	// Started first (quietly: a closed parent takes no result), so
	// a late start cannot outrun the cancel; a child that cannot
	// start is left alone.
	at := st.Closed
	if at.IsZero() {
		at = st.Now
	}
	cancel := events.Event{Type: events.TypeCancelRequested, Time: at, Identity: parentIdentity(st.ID),
		CancelRequested: &events.CancelRequested{Reason: fmt.Sprintf("parent workflow %s no longer needs it (step %s is %s, the workflow %s)", st.ID, s.Path, s.Status, st.Status)}}
	// A child not started yet is started with its cancel, in its
	// first record: its first decision is to stop, so none of its
	// steps runs.
	why, created, err := sh.tryStartChild(ctx, st, s, st.Now, cancel)
	if err != nil {
		return err
	}
	if why != nil {
		e.settled = mark(e.settled, s.ChildID)
		return nil
	}
	if created {
		sh.askedOnce(st, s)
		return nil
	}
	// A closed child needs no cancel (and one appended after it
	// closed would only make it tell the parent again).
	_, closed, err := sh.closed(ctx, s.ChildID)
	if err != nil {
		return err
	}
	if closed {
		// Known with the cached state only, not the shard's asked: a
		// failed child may be redriven since.
		e.settled = mark(e.settled, s.ChildID)
		return nil
	}
	_, err = sh.o.store.AppendExternalAtEnd(ctx, s.ChildID, 0, fmt.Sprintf("cancel/%s/parent/%d", s.ChildID, st.Created.UnixNano()), cancel)
	if err != nil && !errors.Is(err, eventstore.ErrDuplicate) && !errors.Is(err, eventstore.ErrNotFound) {
		return fmt.Errorf("cancel child %s: %w", s.ChildID, err)
	}
	sh.askedOnce(st, s)
	return nil
}

func mark(m map[string]bool, k string) map[string]bool {
	if m == nil {
		m = map[string]bool{}
	}
	m[k] = true
	return m
}

// reconcileSlot keeps a run of a definition with concurrency in step with
// its key's slots (eventstore.UpdateSlots): a run waiting for a slot is in
// its key's queue, and once it holds a slot it is admitted; a closed run
// is in neither, and the runs that take the slots it frees are admitted.
// An admission cut short by a crash is made when the run's next timer
// looks at its slot again.
func (sh *shard) reconcileSlot(ctx context.Context, wf string, e *entry) error {
	// A state waiting for a slot is the history's, read afresh by
	// reconcile: one cached from before another orchestrator admitted,
	// ran and closed the run (an input that adds nothing to it, such as
	// its start handed out again, finds no append to conflict) would put
	// the closed run back in its key's queue, where it takes a free slot
	// that only a give-back later in this pass frees; nothing looks at it
	// again if that give-back is lost.
	st := e.st
	closed := st.Status.Terminal()
	// The run's generation: a give-back of an earlier one (a failed state
	// read just before a redrive) or of an earlier run of the id (deleted
	// since) leaves this one's slot be.
	run := eventstore.RunOf(st.Created, st.Retries)
	if !st.Queued || !closed && st.Admitted || closed && e.slotFreed == run {
		return nil
	}
	if closed && st.Status == workflow.StatusFailed {
		// The state may be behind the history: a redrive appended since it
		// was read has queued the run again, and may have admitted it. A
		// give-back now would free the slot of a run that runs, and the
		// next run of its key would be admitted beside it. (A run
		// completed or canceled is never open again.)
		_, still, err := sh.closed(ctx, wf)
		if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			return err
		}
		if err == nil && !still {
			return nil
		}
	}
	def, _, err := sh.o.defs.Load(ctx, st.Definition, st.Revision)
	if err != nil {
		return fmt.Errorf("load definition %s revision %d: %w", st.Definition, st.Revision, err)
	}
	limit := 1
	if def.Concurrency != nil {
		limit = def.Concurrency.Limit
	}
	if closed && sh.o.beforeGiveBack != nil {
		sh.o.beforeGiveBack(wf)
	}
	slots, took, err := sh.o.store.UpdateSlots(ctx, st.Definition, st.QueueKey, limit, func(s *eventstore.Slots) {
		if closed {
			s.GiveBack(wf, run)
		} else {
			s.Enqueue(wf, run)
		}
	})
	if err != nil {
		return err
	}
	if !closed && slots.Holds(wf, run) && !slices.Contains(took, wf) {
		took = append(took, wf) // it held its slot already: its admission was cut short
	}
	if err := sh.admit(ctx, st.Definition, st.QueueKey, limit, took, slots.Runs); err != nil {
		return err
	}
	if !closed && len(slots.Holders) >= limit && !slots.Holds(wf, run) {
		if err := sh.freeClosedHolders(ctx, st.Definition, st.QueueKey, limit, slots); err != nil {
			return err
		}
	}
	e.slotFreed = eventstore.SlotRun{}
	if closed {
		e.slotFreed = run
	}
	return nil
}

// holdersLookEvery is how often an orchestrator looks at the holders of a
// concurrency key whose slots are all held while a run waits.
const holdersLookEvery = 30 * time.Second

// freeClosedHolders gives back the slots of def's key that runs closed or
// gone hold, and admits the runs that take them, looking at most once every
// holdersLookEvery per key. A run's close gives its slot back, and a run
// handed one after it closed gives it straight back (admit); but a give-back
// that failed after the slot was handed on is not tried again by anything
// else, and the key's queue would wait for ever.
func (sh *shard) freeClosedHolders(ctx context.Context, def, key string, limit int, slots eventstore.Slots) error {
	o := sh.o
	id := def + "\x00" + key
	o.holdersMu.Lock()
	if time.Since(o.holdersLooked[id]) < holdersLookEvery {
		o.holdersMu.Unlock()
		return nil
	}
	if o.holdersLooked == nil || len(o.holdersLooked) >= 1<<14 {
		// Forget the keys looked at long enough ago: the map stays small.
		for k, at := range o.holdersLooked {
			if time.Since(at) >= holdersLookEvery {
				delete(o.holdersLooked, k)
			}
		}
		if o.holdersLooked == nil {
			o.holdersLooked = map[string]time.Time{}
		}
	}
	o.holdersLooked[id] = time.Now()
	o.holdersMu.Unlock()
	gone := map[string]eventstore.SlotRun{}
	for _, h := range slots.Holders {
		run, _, known := slots.Holder(h)
		open, err := sh.runOpen(ctx, h, run, known)
		if err != nil {
			return err
		}
		if !open {
			gone[h] = run
		}
	}
	if len(gone) == 0 {
		return nil
	}
	sh.o.log.Info("giving back concurrency slots held by runs that closed", "definition", def, "key", key, "runs", slices.Sorted(maps.Keys(gone)))
	// Each is given back as the run looked at: one its id holds for
	// another run since (a redrive that took it over) keeps it.
	after, took, err := o.store.UpdateSlots(ctx, def, key, limit, func(s *eventstore.Slots) {
		for h, run := range gone {
			s.GiveBack(h, run)
		}
	})
	if err != nil {
		return fmt.Errorf("give back the slots of closed runs %v: %w", slices.Sorted(maps.Keys(gone)), err)
	}
	return sh.admit(ctx, def, key, limit, took, after.Runs)
}

// runOpen reports whether generation run of wf (any, when not known: a
// holder an earlier version stored) is open: wf's history is that run's
// (not one started under its id since it was deleted), and not closed.
func (sh *shard) runOpen(ctx context.Context, wf string, run eventstore.SlotRun, known bool) (bool, error) {
	_, closed, err := sh.closed(ctx, wf)
	if errors.Is(err, eventstore.ErrNotFound) {
		return false, nil
	}
	if err != nil || closed {
		return false, err
	}
	if !known {
		return true, nil
	}
	return sh.sameRun(ctx, wf, run)
}

// sameRun reports whether wf's history is the run of wf started as run
// names: false when another run was started under its id since (or none
// is there); true too when that cannot be told (a first record this
// version cannot read).
func (sh *shard) sameRun(ctx context.Context, wf string, run eventstore.SlotRun) (bool, error) {
	first, err := sh.o.store.First(ctx, wf)
	if errors.Is(err, eventstore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if first.Err != nil || first.Record.Events[0].Type != events.TypeWorkflowStarted {
		return true, nil
	}
	return first.Record.Events[0].Time.UnixNano() == run.Created, nil
}

// admit records that the queued runs in took hold a slot of def's key
// (runs names the run of each, when known). A run that closed meanwhile
// gives the slot back at once, and the runs that take it are admitted in
// turn: a run canceled while it waited, or queued again from a state an
// orchestrator held out of date (deleted since, even), never keeps a slot
// it was handed; nor is a run started under the id of one deleted since
// (of another definition, even) admitted by the deleted run's slot.
func (sh *shard) admit(ctx context.Context, def, key string, limit int, took []string, runs map[string]eventstore.SlotRun) error {
	runs = maps.Clone(runs)
	for len(took) > 0 {
		wf := took[0]
		took = took[1:]
		run, known := runs[wf]
		closed, err := sh.admitOne(ctx, wf, run, known)
		if err != nil {
			return err
		}
		if !closed {
			continue
		}
		if sh.o.beforeGiveBack != nil {
			sh.o.beforeGiveBack(wf)
		}
		after, more, err := sh.o.store.UpdateSlots(ctx, def, key, limit, func(s *eventstore.Slots) { s.GiveBack(wf, run) })
		if err != nil {
			return fmt.Errorf("give back the slot of closed run %s: %w", wf, err)
		}
		for _, id := range more {
			if r, ok := after.Runs[id]; ok {
				if runs == nil {
					runs = map[string]eventstore.SlotRun{}
				}
				runs[id] = r
			}
		}
		took = append(took, more...)
	}
	return nil
}

// admitOne appends WorkflowAdmitted to wf's history unless wf closed (or
// was deleted, or is another run than run, when known), which it
// reports; each try after a conflict looks again, so nothing is appended
// after a close.
func (sh *shard) admitOne(ctx context.Context, wf string, run eventstore.SlotRun, known bool) (closed bool, err error) {
	if known {
		same, err := sh.sameRun(ctx, wf, run)
		if err != nil || !same {
			return !same, err
		}
	}
	msgID := ""
	for try := 0; ; try++ {
		last, closed, err := sh.closed(ctx, wf)
		if errors.Is(err, eventstore.ErrNotFound) {
			return true, nil // deleted since: it holds nothing either
		}
		if err != nil || closed {
			return closed, err
		}
		if msgID == "" {
			// Named by the history first read, and kept through conflicts:
			// an orchestrator admitting the run at the same time appends
			// it once between them.
			msgID = "admit/" + wf + "/" + strconv.FormatUint(last, 10)
		}
		_, err = sh.o.store.AppendExternal(ctx, wf, &last, msgID,
			events.Event{Type: events.TypeWorkflowAdmitted, Time: sh.o.cfg.Now().UTC(), WorkflowAdmitted: &events.WorkflowAdmitted{}})
		switch {
		case errors.Is(err, eventstore.ErrConflict) && try < 50:
			continue
		case err != nil && !errors.Is(err, eventstore.ErrDuplicate):
			return false, fmt.Errorf("admit %s: %w", wf, err)
		}
		return false, nil
	}
}

// startDirect records a start sent directly as the workflow's first
// record, together with what follows it, when that is one step command:
// the command's result then comes back to an orchestrator, whatever
// happens to this one, and with it everything a start's input must cause
// (see index). Anything else (children, several records, no command, a
// workflow that exists) is declined and goes the history stream's way.
func (sh *shard) startDirect(ctx context.Context, d *eventstore.Delivery) bool {
	wf := d.WorkflowID
	if sh.cache[wf] != nil {
		return false
	}
	e := &entry{st: &workflow.State{}}
	st := e.st
	if err := st.Apply(d.Start.Event); err != nil {
		return false
	}
	ctx, span := sh.o.startSpan(ctx, "weft.decide", st, "start")
	defer span.End()
	def, _, err := sh.o.defs.Load(ctx, st.Definition, st.Revision)
	if err != nil {
		return false
	}
	decided, err := workflow.Advance(st, def)
	if err != nil || st.Status != workflow.StatusRunning || len(decided) == 0 || decided[len(decided)-1].StepScheduled == nil {
		return false
	}
	for _, ev := range decided[:len(decided)-1] {
		// Timers are scheduled before the record and replace a pending one
		// of the same id: a start of an id that turns out taken must not
		// touch that workflow's timers.
		if ev.StepScheduled != nil || ev.ChildStarted != nil || ev.TimerScheduled != nil || ev.WaitStarted != nil {
			return false
		}
	}
	evs := append([]events.Event{d.Start.Event}, decided...)
	if err := sh.prepare(ctx, wf, 0, evs); err != nil {
		return false
	}
	seq, err := sh.o.store.AppendStart(ctx, wf, d.Start.MsgID, eventstore.AppendOpts{Owner: sh.o.id, Stored: &st.Bytes}, evs)
	if err != nil {
		// Taken, made another way, or not stored: the API's own append
		// finds out which.
		return false
	}
	st.LastSeq, st.FirstSeq = seq, seq
	sh.remember(wf, e)
	if !sh.index(wf, e, d) {
		_ = d.Ack()
	}
	return true
}

// startSpan starts a span about st's run in the trace the run recorded.
func (o *Orchestrator) startSpan(ctx context.Context, name string, st *workflow.State, source string) (context.Context, trace.Span) {
	return telemetry.Start(ctx, o.tracer, st.Trace, name, telemetry.WorkflowID.String(st.ID),
		telemetry.Definition.String(st.Definition), attribute.String("weft.input", source))
}

// startChild starts the child workflow of step s (as its ChildStarted
// event recorded it) on the latest revision of its definition. Starting it
// again finds it started. A child that cannot start fails its step
// (through the results stream, like any step outcome).
func (sh *shard) startChild(ctx context.Context, parent *workflow.State, s *workflow.Step, at time.Time) error {
	why, _, err := sh.tryStartChild(ctx, parent, s, at)
	if err != nil || why == nil {
		return err
	}
	// It names the parent's run, as a child's own result does: a parent
	// started again under the id keeps its own.
	return sh.o.store.PublishResult(ctx, events.Result{WorkflowID: parent.ID, Path: s.Path, Gen: s.Gen, Attempt: 1,
		Outcome: events.OutcomeFailed, Time: at, Error: why, ParentCreated: parent.Created, Cmd: parent.LastSeq})
}

// tryStartChild starts the child workflow of step s unless it exists, with
// also in the start's record, and says why when it cannot be started: its
// definition is not there, or its id is another workflow's
// (child_failed), or its input does not match the definition's
// input_schema (invalid_input). created reports whether this call
// started it. With also (a cancel), a definition that no longer compiles
// is no error: a child that exists is taken as started, and one that
// does not as one that cannot start.
func (sh *shard) tryStartChild(ctx context.Context, parent *workflow.State, s *workflow.Step, at time.Time, also ...events.Event) (why *events.Error, created bool, err error) {
	depth := 1
	if parent.Parent != nil {
		depth = parent.Parent.Depth + 1
	}
	ref := &events.ParentRef{WorkflowID: parent.ID, Path: s.Path, Gen: s.Gen, Created: parent.Created, Seq: parent.LastSeq, Depth: depth}
	// earlier is set when the child's id is taken by the child of an
	// earlier run of the parent's id (deleted by retention; its child kept).
	var earlier bool
	ours := func() (bool, error) {
		first, err := sh.o.store.First(ctx, s.ChildID)
		if err != nil {
			return false, err
		}
		if errors.Is(first.Err, events.ErrNewer) {
			return false, errNewer{fmt.Errorf("child %s: %w", s.ChildID, first.Err)}
		}
		if first.Err != nil {
			return false, nil
		}
		ws := first.Record.Events[0].WorkflowStarted
		if ws == nil || ws.Parent == nil {
			return false, nil
		}
		same := ws.Parent.Same(*ref)
		earlier = !same && ws.Parent.Same(events.ParentRef{WorkflowID: ref.WorkflowID, Path: ref.Path, Gen: ref.Gen})
		return same, nil
	}
	childFailed := func(format string, args ...any) *events.Error {
		return &events.Error{Type: workflow.ErrTypeChild, Message: fmt.Sprintf(format, args...)}
	}
	def, rec, err := sh.o.defs.Load(ctx, s.Task, s.ChildRevision)
	if errors.Is(err, eventstore.ErrNotFound) {
		return childFailed("child definition %q not found: put it first", s.Task), false, nil
	}
	if errors.Is(err, runs.ErrNoLongerCompiles) && len(also) > 0 {
		// Started only to be canceled (cancelChild): one that runs is
		// canceled all the same, which needs no definition, and one not
		// started stays so. Failing, the cancel would fail for as long as
		// the revision stays, and the deletion of its parent with it.
		switch ok, ferr := ours(); {
		case ok:
			return nil, false, nil
		case ferr != nil && !errors.Is(ferr, eventstore.ErrNotFound):
			return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, ferr)
		}
		return childFailed("child workflow %s cannot start: %v", s.ChildID, err), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, err)
	}
	if err := def.CheckInput(s.ChildInput); err != nil {
		// A child started before its definition took this schema runs on.
		switch ok, ferr := ours(); {
		case ok:
			return nil, false, nil
		case ferr != nil && !errors.Is(ferr, eventstore.ErrNotFound):
			return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, ferr)
		}
		return &events.Error{Type: workflow.ErrTypeInvalidInput, Message: fmt.Sprintf("child definition %q: %v", rec.Name, err)}, false, nil
	}
	if depth > sh.o.cfg.MaxChildDepth {
		// A child started before the limit was set runs on.
		switch ok, ferr := ours(); {
		case ok:
			return nil, false, nil
		case ferr != nil && !errors.Is(ferr, eventstore.ErrNotFound):
			return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, ferr)
		}
		return &events.Error{Type: workflow.ErrTypeLimit, Message: fmt.Sprintf(
			"child workflow %s of definition %q would be %d deep in a chain of child workflows; the limit is %d (MaxChildDepth): a definition that starts itself, directly or through others, needs a case that stops it",
			s.ChildID, rec.Name, depth, sh.o.cfg.MaxChildDepth)}, false, nil
	}
	// The start's message id names the parent's run: a parent started
	// under the id of a deleted one starts its child at once, not as a
	// duplicate of the deleted parent's child start.
	var zero uint64
	msgID := fmt.Sprintf("start/%s/parent/%d", s.ChildID, parent.Created.UnixNano())
	_, err = sh.o.store.AppendExternal(ctx, s.ChildID, &zero, msgID, events.Event{
		Type: events.TypeWorkflowStarted, Time: at, Identity: parentIdentity(parent.ID),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: s.ChildID, Definition: rec.Name, Revision: rec.Revision,
			Input: s.ChildInput, RequestID: "parent", Parent: ref, Trace: telemetry.TraceParent(ctx)}}, also...)
	switch {
	case err == nil:
		sh.o.metrics.workflows.Started(rec.Name)
		return nil, true, nil
	case errors.Is(err, eventstore.ErrTooLarge):
		// Refused before it reached the server: the child may exist all the same.
		switch ok, ferr := ours(); {
		case ok:
			return nil, false, nil
		case ferr != nil && !errors.Is(ferr, eventstore.ErrNotFound):
			return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, ferr)
		}
		return &events.Error{Type: workflow.ErrTypeLimit, Message: fmt.Sprintf(
			"child workflow %s cannot start: its first record is larger than the NATS server accepts (%v); give it a smaller input", s.ChildID, err)}, false, nil
	case errors.Is(err, eventstore.ErrDuplicate), errors.Is(err, eventstore.ErrConflict):
		// Already started: by us, or the id is someone else's (a
		// duplicate too: an earlier run of this id started it moments
		// ago).
		if ok, err := ours(); err != nil || ok {
			return nil, false, err
		}
		if earlier {
			return childFailed("child workflow id %q is taken by the child of an earlier run of %s, kept after that run was deleted: start this run under another id", s.ChildID, parent.ID), false, nil
		}
		return childFailed("child workflow id %q is taken by another workflow", s.ChildID), false, nil
	}
	return nil, false, fmt.Errorf("start child %s of %s: %w", s.ChildID, parent.ID, err)
}

// parentIdentity is the identity (events.Event.Identity) a child run's
// start and cancel request record: "parent:<parent workflow id>".
func parentIdentity(parent string) string { return "parent:" + parent }

// tellParent reports a closed child's outcome to its parent.
func (sh *shard) tellParent(ctx context.Context, st *workflow.State) error {
	p := st.Parent
	// Cmd names the parent's record that started the child: the parent
	// judges the outcome only on a history that reaches it (a read behind
	// it would drop it), and one deleted since drops it.
	r := events.Result{WorkflowID: p.WorkflowID, Path: p.Path, Gen: p.Gen, Attempt: 1, Time: st.Closed, ParentCreated: p.Created, Cmd: p.Seq}
	if r.Time.IsZero() {
		r.Time = st.Now
	}
	switch st.Status {
	case workflow.StatusCompleted:
		r.Outcome, r.Output = events.OutcomeCompleted, st.Output
	case workflow.StatusFailed:
		r.Outcome = events.OutcomeFailed
		r.Error = &events.Error{Type: workflow.ErrTypeChild, Message: fmt.Sprintf("child workflow %s failed: %s", st.ID, st.Error.Error())}
	default:
		r.Outcome = events.OutcomeFailed
		r.Error = &events.Error{Type: workflow.ErrTypeCanceled, Message: fmt.Sprintf("child workflow %s was canceled", st.ID)}
	}
	err := sh.o.store.PublishResult(ctx, r)
	if errors.Is(err, eventstore.ErrTooLarge) && r.Outcome == events.OutcomeCompleted {
		// An output the child's record held, but not a result that names
		// the parent's step too: the step fails (a catch can handle it),
		// as it does for a task's output too large to record.
		r.Outcome, r.Output = events.OutcomeFailed, nil
		r.Error = &events.Error{Type: workflow.ErrTypeInvalidOutput, Message: fmt.Sprintf(
			"child workflow %s completed with an output too large to hand to its parent: %v", st.ID, err)}
		err = sh.o.store.PublishResult(ctx, r)
	}
	return err
}

// append records evs (already applied to st) after st.LastSeq, as one
// record per step command. Side effects that must exist before a record
// does (timers, task consumers) are made just before it; both are
// idempotent, so a crash in between only repeats them.
func (sh *shard) append(ctx context.Context, wf string, e *entry, evs []events.Event) error {
	st := e.st
	seq := st.LastSeq
	start := 0
	for i, ev := range evs {
		if ev.Type != events.TypeStepScheduled && i != len(evs)-1 {
			continue
		}
		next, err := sh.appendRecord(ctx, wf, e, seq, evs[start:i+1])
		if err != nil {
			return err
		}
		seq, start = next, i+1
	}
	st.LastSeq = seq
	// Timers of waits that ended early are no longer needed.
	for _, ev := range evs {
		if ev.StepCompleted != nil && ev.StepCompleted.SignalSeq > 0 {
			if s := st.Steps[ev.StepCompleted.Path]; s != nil && s.TimerID != "" && !s.TimedOut {
				if err := sh.o.store.CancelTimer(ctx, wf, s.TimerID); err != nil {
					sh.o.log.Warn("cancel timer", "workflow_id", wf, "err", err)
				}
			}
		}
	}
	return nil
}

// appendRecord appends evs as one record after sequence seq, or, when
// that is too large to store, as several in order (any prefix of a
// decision is completed by deciding again, so a crash in between loses
// nothing), and returns the last one's sequence. A single event too large
// to store fails the workflow.
func (sh *shard) appendRecord(ctx context.Context, wf string, e *entry, seq uint64, evs []events.Event) (uint64, error) {
	// Each record's timers carry the sequence it is appended after.
	if err := sh.prepare(ctx, wf, seq, evs); err != nil {
		return 0, err
	}
	pinChildren(e.st, evs)
	next, err := sh.o.store.AppendWith(ctx, wf, seq, eventstore.AppendOpts{Snapshot: e.snapSeq, Owner: sh.o.id, Definition: e.st.Definition, Stored: &e.st.Bytes}, evs...)
	switch {
	case errors.Is(err, eventstore.ErrTooLarge) && len(evs) > 1:
		half := len(evs) / 2
		if seq, err = sh.appendRecord(ctx, wf, e, seq, evs[:half]); err != nil {
			return 0, err
		}
		return sh.appendRecord(ctx, wf, e, seq, evs[half:])
	case errors.Is(err, eventstore.ErrTooLarge):
		return 0, errBroken{workflow.ErrTypeLimit, fmt.Errorf("a %s event is too large to store: %w", evs[0].Type, err)}
	}
	return next, err
}

// oversized reports whether ev cannot be stored as a record of its own,
// and its encoded size. Only an output whose size bound passes the limit
// is encoded to find out.
func (sh *shard) oversized(ev events.Event) (int, bool) {
	limit := int(sh.o.store.MaxPayload() - recordHeadroom)
	if ev.StepCompleted != nil && sizeBound(ev.StepCompleted.Output, limit/2) <= limit/2 {
		return 0, false
	}
	data, err := events.Encode(ev)
	if err != nil {
		return 0, false // Validate's business, later
	}
	return len(data), int64(len(data)) > sh.o.store.MaxPayload()-recordHeadroom
}

// sizeBound returns an upper bound of v's encoded size (a normalized
// value), or a number above stop once the bound passes it.
func sizeBound(v any, stop int) int {
	n := 0
	var walk func(v any)
	walk = func(v any) {
		if n > stop {
			return
		}
		switch v := v.(type) {
		case string:
			n += len(v) + 5
		case map[string]any:
			n += 5
			for k, x := range v {
				n += len(k) + 5
				walk(x)
			}
		case []any:
			n += 5
			for _, x := range v {
				walk(x)
			}
		default:
			n += 9
		}
	}
	walk(v)
	return n
}

// recordHeadroom is what a record's headers may take of the server's
// maximum payload.
const recordHeadroom = 4 << 10

// snapshot stores the state of a running workflow whose history grew by
// SnapshotEvery events (and a tenth) since its last snapshot: the records
// appended after it name it, and loading the workflow again starts there.
// A failure only costs speed, and is tried again as many events later.
func (sh *shard) snapshot(ctx context.Context, wf string, e *entry) {
	st := e.st
	every := sh.o.cfg.SnapshotEvery
	if every < 0 || st.Status != workflow.StatusRunning || st.Events-e.snapEvents < max(every, st.Events/10) {
		return
	}
	e.snapEvents = st.Events
	data, err := workflow.EncodeSnapshot(st)
	if err == nil {
		err = sh.o.store.PutSnapshot(ctx, wf, st.LastSeq, data)
	}
	if err != nil {
		sh.o.log.Warn("could not store a snapshot; the history will be folded instead", "workflow_id", wf, "seq", st.LastSeq, "err", err)
		return
	}
	e.snapSeq = st.LastSeq
}

// prepare makes the side effects that must exist before evs are recorded
// after sequence after (timers, task consumers); both are idempotent, so a
// crash in between only repeats them. It also names in each child start
// the revision the child starts on: the latest, looked up once a
// definition for all the children evs start.
func (sh *shard) prepare(ctx context.Context, wf string, after uint64, evs []events.Event) error {
	for _, t := range timersOf(wf, after, evs) {
		if err := sh.o.store.ScheduleTimer(ctx, t); err != nil {
			return err
		}
	}
	var latest map[string]int // by definition; 0: none stored
	for _, ev := range evs {
		switch {
		case ev.StepScheduled != nil:
			if err := sh.o.store.EnsureTaskConsumer(ctx, ev.StepScheduled.Task); err != nil {
				return err
			}
		case ev.ChildStarted != nil && ev.ChildStarted.Revision == 0:
			// The child starts on the revision that is the latest now,
			// however late its start comes (a crash in between, a parent
			// that failed first): the record says which.
			def := ev.ChildStarted.Definition
			rev, ok := latest[def]
			if !ok {
				rec, err := sh.o.store.GetDefinition(ctx, def, 0)
				switch {
				case errors.Is(err, eventstore.ErrNotFound):
					// The start fails the step, as it finds none either.
				case err != nil:
					return err
				default:
					rev = rec.Revision
				}
				if latest == nil {
					latest = map[string]int{}
				}
				latest[def] = rev
			}
			ev.ChildStarted.Revision = rev
		}
	}
	return nil
}

// timersOf returns the timers evs, to be recorded after sequence after
// in wf's history, set.
func timersOf(wf string, after uint64, evs []events.Event) []events.TimerDue {
	var out []events.TimerDue
	for _, ev := range evs {
		switch {
		case ev.WaitStarted != nil && ev.WaitStarted.TimerID != "":
			w := ev.WaitStarted
			out = append(out, events.TimerDue{WorkflowID: wf, TimerID: w.TimerID, Path: w.Path, Due: w.TimeoutAt, After: after})
		case ev.TimerScheduled != nil:
			ts := ev.TimerScheduled
			out = append(out, events.TimerDue{WorkflowID: wf, TimerID: ts.TimerID, Path: ts.Path, Due: ts.Due, After: after})
		}
	}
	return out
}

// pinChildren sets the revisions prepare gave the children evs start on
// in st, to which evs were applied before: st stays the fold of evs.
func pinChildren(st *workflow.State, evs []events.Event) {
	for _, ev := range evs {
		if cs := ev.ChildStarted; cs != nil {
			if s := st.Steps[cs.Path]; s != nil && s.Gen == cs.Gen && s.ChildID == cs.WorkflowID {
				s.ChildRevision = cs.Revision
			}
		}
	}
}

// indexKey is what a listing entry reflects of a workflow's state: its
// status and how many times its search attributes changed. The entry is
// written again when either moves on.
type indexKey struct {
	status workflow.Status
	search int
}

// keyOf returns the indexKey of st.
func keyOf(st *workflow.State) indexKey {
	return indexKey{status: st.Shown(), search: st.SearchChanges}
}

// index hands the workflow's entry to the indexer when the index is not
// known to hold its status and search attributes (its indexKey), and
// reports whether it took the input with it
// (the input is then settled once the entry is stored). An input that
// parks the workflow (nothing in flight: it waits for a signal or a timer,
// possibly for days) or closes it is held, since no later input is sure
// to come; any other is acked at once, as the result of what is in flight
// will come to an orchestrator that writes the entry if this one died
// first (a state loaded afresh knows nothing of the index). A direct
// start is held too, and its entry written at once: until it is stored
// nothing lists the run, not even `weft doctor`, and the result that
// would write it may be long to come (no executor serves the task type,
// the definition is paused, the task runs for hours).
func (sh *shard) index(wf string, e *entry, d *eventstore.Delivery) bool {
	st := e.st
	if e.indexed == nil {
		e.indexed = new(atomic.Value)
	}
	key := keyOf(st)
	if known, _ := e.indexed.Load().(written); known.key == key {
		return false
	}
	start := d.Source == eventstore.SourceStart
	hold := st.Status.Terminal() || !workflow.InFlight(st) || d.Source == eventstore.SourceExternal || start
	if e.queued == key && !hold {
		return false // on its way
	}
	e.queued = key
	sum := runs.Summary(wf, st)
	if !hold {
		sh.o.ix.put(sum, key, e.indexed, false, func(bool) {})
		return false
	}
	// Held inputs join the pending write: each comes back if it is lost.
	// A parked workflow stays running: nothing is saved by waiting.
	sh.o.ix.put(sum, key, e.indexed, !workflow.InFlight(st) || start, func(ok bool) {
		if ok {
			_ = d.Ack()
		} else {
			_ = d.Nak(backoff(d.NumDelivered))
		}
	})
	return true
}
