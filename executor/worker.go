package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
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
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/internal/telemetry"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Error types the worker assigns itself, for handler authors to match: the
// names Weft defines in orchestrator/workflow.
const (
	// ErrTypePanic fails an attempt whose handler panicked.
	ErrTypePanic = workflow.ErrTypePanic
	// ErrTypeTimeout fails an attempt that ran out of time.
	ErrTypeTimeout = workflow.ErrTypeTimeout
	// ErrTypeExhausted is a step whose history records every attempt its
	// policy allows (left by an earlier version).
	ErrTypeExhausted = workflow.ErrTypeExhausted
	// ErrTypeOutput fails a step whose output cannot be recorded.
	ErrTypeOutput = workflow.ErrTypeInvalidOutput
	// ErrTypeWrongTaskType fails a step whose command reached the executor
	// of another task type (a consumer whose filter was changed under it).
	ErrTypeWrongTaskType = workflow.ErrTypeWrongTaskType
)

// Config tunes a Worker.
type Config struct {
	// Concurrency bounds handlers running at once, per task type. Default 64.
	Concurrency int
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics is the registry the worker records its attempts on (see
	// docs/operations.md). Default nil: none.
	Metrics *prometheus.Registry
	// TracerProvider makes a span of every attempt, in the trace its run
	// recorded (the command carries it); handlers get it in their context.
	// Default: the process-wide provider (see internal/telemetry).
	TracerProvider trace.TracerProvider
	// Now is the clock of flow control: the ends of concurrency slots'
	// leases and rate-limit periods, which every executor compares. A
	// node gives its clock bounded by JetStream's (eventstore.Clock), so
	// one that runs ahead cannot take slots others still hold. Default
	// time.Now.
	Now func() time.Time
}

// Validate checks the configuration.
func (c Config) Validate() error {
	return config.NonNegative("executor", config.Int("Concurrency", c.Concurrency))
}

// Worker runs task handlers for the step commands of the task types
// registered with it. It keeps no state of its own: attempts, backoff and
// redelivery after a crash are JetStream's (nak with delay, ack wait,
// in-progress heartbeats), so any number of workers can share the work.
// (It keeps a copy of the definitions' pauses, which JetStream holds.)
type Worker struct {
	store    *eventstore.Store
	cfg      Config
	log      *slog.Logger
	handlers map[string]Handler
	// steps records attempts (nil: not recorded).
	steps *metrics.Steps
	// tracer makes the attempts' spans.
	tracer trace.Tracer

	// pauses is the watched copy of the definitions' pauses.
	pauses    *eventstore.Pauses
	stopWatch context.CancelFunc
	// pauseReads are the definitions' pauses as last read from the
	// bucket itself (pauseInBucket).
	pmu        sync.Mutex
	pauseReads map[string]pauseRead

	// inflight holds, by command sequence, the commands this worker runs
	// a delivery of (claim).
	imu      sync.Mutex
	inflight map[uint64]bool

	life        lifecycle.Guard
	stopPulling context.CancelFunc
	cancel      context.CancelFunc
	pulling     sync.WaitGroup // the fetch loops
	// running counts the handlers, and the slots given back in the
	// background. Added to only by the fetch loops (which end before
	// Stop waits) or by a goroutine it counts: never from none while
	// Stop's Wait may be returning.
	running sync.WaitGroup
}

// New returns a worker over store.
func New(store *eventstore.Store, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	config.Default(&cfg.Concurrency, 64)
	config.Default(&cfg.Logger, slog.Default())
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Worker{store: store, cfg: cfg, log: cfg.Logger.With("component", "executor"), handlers: map[string]Handler{},
		steps: metrics.NewSteps(cfg.Metrics), tracer: telemetry.Tracer(cfg.TracerProvider)}, nil
}

// now is the clock of flow control (Config.Now).
func (w *Worker) now() time.Time { return w.cfg.Now() }

// Register sets the handler of taskType. Call it before Start.
func (w *Worker) Register(taskType string, h Handler) error {
	return w.life.Locked(func(running bool) error {
		if running {
			return errors.New("executor: Register after Start")
		}
		if taskType == "" || h == nil {
			return errors.New("executor: Register needs a task type and a handler")
		}
		if !eventstore.ValidTaskType(taskType) {
			return fmt.Errorf("executor: invalid task type %q: use letters, digits, _ and -, in parts separated by single dots, at most %d bytes", taskType, events.MaxTaskType)
		}
		w.handlers[taskType] = h
		return nil
	})
}

// Start subscribes to the registered task types and runs handlers.
func (w *Worker) Start(ctx context.Context) error {
	return w.life.Start("executor", func() error {
		// The pauses are known before the first command is taken.
		watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
		pauses, err := w.store.WatchPauses(watchCtx)
		if err != nil {
			stopWatch()
			return err
		}
		w.pauses, w.stopWatch = pauses, stopWatch
		pullers := map[string]*eventstore.Puller{}
		for typ := range w.handlers {
			p, err := w.store.TaskPuller(ctx, typ)
			if err != nil {
				stopWatch()
				return err
			}
			pullers[typ] = p
		}
		// pulling ends the fetch loops; running ends the handlers (later, on Stop).
		pullCtx, stopPulling := context.WithCancel(context.WithoutCancel(ctx))
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		for typ, p := range pullers {
			w.pulling.Go(func() { w.consume(pullCtx, runCtx, p, typ, w.handlers[typ]) })
		}
		w.stopPulling, w.cancel = stopPulling, cancel
		return nil
	})
}

// Stop stops taking commands and waits for running handlers to finish
// and report; when ctx ends first, it cancels them: the commands of those
// that then return an error are redelivered, and an output one returns
// all the same, or an outcome being reported, is reported (within
// reportAfterStop of the cancel). Calling Stop twice is fine.
//
// The fetches end before any handler is canceled: a command given back
// while a fetch of this worker was still open could be redelivered into
// that fetch and wait out the ack wait instead of going to another worker.
func (w *Worker) Stop(ctx context.Context) error {
	return w.life.Stop(func() error {
		w.stopPulling()
		w.pulling.Wait()
		w.stopWatch()
		if testHookDrain != nil {
			testHookDrain()
		}
		return lifecycle.Drain(ctx, w.running.Wait, w.cancel)
	})
}

// testHookDrain, when set, is called as Stop begins to wait for the
// running handlers.
var testHookDrain func()

// consume pulls commands while pullCtx lasts, never more than there are
// free handler slots, and runs each under runCtx.
func (w *Worker) consume(pullCtx, runCtx context.Context, p *eventstore.Puller, typ string, h Handler) {
	slots := make(chan struct{}, w.cfg.Concurrency)
	for pullCtx.Err() == nil {
		// Wait for at least one free slot, then ask for as many as are free.
		select {
		case slots <- struct{}{}:
		case <-pullCtx.Done():
			return
		}
		<-slots
		free := w.cfg.Concurrency - len(slots)
		err := p.Fetch(pullCtx, free, 5*time.Second, func(d *eventstore.Delivery) {
			slots <- struct{}{}
			w.running.Go(func() {
				defer func() { <-slots }()
				w.run(runCtx, typ, h, d)
			})
		})
		if err != nil && pullCtx.Err() == nil {
			w.log.Warn("task fetch failed", "task", typ, "err", err)
			select {
			case <-time.After(500 * time.Millisecond):
			case <-pullCtx.Done():
			}
		}
	}
}

// undecodableDelay is how long a step command this worker cannot read
// waits before it is delivered again.
const undecodableDelay = time.Minute

// givenBackDelay is how long a command given back by a stopping worker
// waits before it is delivered again.
const givenBackDelay = 100 * time.Millisecond

// run executes one delivery of a step command and settles it.
//
// Attempts are counted from history, not from deliveries: the attempt a
// delivery runs is the one after the last recorded for the step (the
// command's first attempt when none is). A delivery that ends without a
// recorded result (its worker stopped or died, history could not be read,
// the result could not be reported) does not use up an attempt.
func (w *Worker) run(ctx context.Context, typ string, h Handler, d *eventstore.Delivery) {
	if d.Err != nil {
		// Written by a newer version, say, during a rolling upgrade: one
		// that can read it takes it. Dropped, its step would wait for ever.
		w.log.With("workflow_id", d.WorkflowID, "task", typ).Error("cannot read a step command; giving it back for an executor that can (a newer version?)",
			"seq", d.Seq, "in", undecodableDelay, "err", d.Err)
		_ = d.Nak(undecodableDelay)
		return
	}
	cmd := d.Task
	if cmd.Task != typ {
		w.refuse(ctx, typ, d)
		return
	}
	// A command redelivered while this worker still runs it (its claim
	// lapsed: NATS out of reach for longer than the ack wait) is given
	// back to come again later, rather than run beside the delivery
	// before it; it then finds the step settled or its result reported.
	// It takes no handler's place while it waits.
	done, ok := w.claim(d.Seq)
	if !ok {
		_ = d.Nak(runningDelay)
		return
	}
	defer done()
	if w.hold(ctx, typ, d) {
		return
	}
	// Keep the command ours from here on: through the history check, the
	// handler and the report.
	stopBeat := w.keepClaimed(d)
	defer stopBeat()

	first := max(cmd.FirstAttempt, 1)
	attempt, ok := w.attemptOf(ctx, typ, d)
	if !ok {
		return
	}
	// Loggers are made only when there is something to say.
	log := func() *slog.Logger {
		return w.log.With("workflow_id", d.WorkflowID, "task", typ, "step", cmd.Path, "attempt", attempt)
	}
	res := events.Result{WorkflowID: d.WorkflowID, Path: cmd.Path, Gen: cmd.Gen, Attempt: attempt, Cmd: d.Seq}
	ctx, span := telemetry.Start(ctx, w.tracer, cmd.Trace, "weft.attempt", telemetry.WorkflowID.String(d.WorkflowID),
		telemetry.Definition.String(cmd.Definition), telemetry.StepPath.String(cmd.Path), telemetry.Attempt.Int(attempt),
		attribute.String("weft.task", typ))
	defer span.End()
	// tries counts this scheduling's recorded attempts, this one included:
	// the policy's budget. (A redriven step starts a fresh budget with
	// attempt numbers continuing.)
	tries := attempt - first + 1
	maxAttempts := max(cmd.Retry.MaxAttempts, 1)
	if tries > maxAttempts {
		// History records every allowed attempt as failed and retried.
		res.Outcome = events.OutcomeFailed
		res.Error = &events.Error{Type: ErrTypeExhausted,
			Message: fmt.Sprintf("attempts %d to %d are recorded as failed; the policy allows %d", first, attempt-1, maxAttempts)}
		// A slot an earlier attempt still holds is given back first.
		drop := func(ctx context.Context) error { return w.dropSlots(ctx, d, 0) }
		w.settle(ctx, d, res, 0, log, slotRelease{
			now:   func(ctx context.Context) error { return keepTrying(ctx, time.Now().Add(slotLease(d)), drop) },
			later: func() {},
		})
		return
	}
	release, renew, ok := w.admitFlow(ctx, typ, d, attempt, log)
	if !ok {
		return
	}
	settled := false
	defer func() {
		if !settled {
			release.later()
		}
	}()
	began := time.Now()
	if attempt == first && d.NumDelivered == 1 && d.Message != nil {
		w.steps.Waited(typ, began.Sub(d.Message.Time))
	}
	out, running, err := w.call(ctx, h, d, cmd, attempt, renew)
	if running != nil {
		// Given up on, the handler may run on: its slot is given back
		// once it returns, or left to its lease (no longer renewed), so
		// the key's other attempts do not run beside it. It is given back
		// on the goroutine that waits for the handler, under the worker's
		// context (this attempt's report context ends with this call).
		// That goroutine is not one of w.running (a stop does not wait for
		// a handler given up on), so it adds none to them: by the time the
		// handler returns, those counted may all have returned, and an Add
		// from none could race the stop's Wait as it returns.
		held := release
		whenReturned := func() {
			go func() {
				<-running
				if err := held.now(ctx); err != nil && ctx.Err() == nil {
					log().Warn("could not give a concurrency slot back; it is freed when its lease ends", "err", err)
				}
			}()
		}
		release = slotRelease{now: func(context.Context) error { whenReturned(); return nil }, later: whenReturned}
	}
	if err != nil && ctx.Err() != nil {
		// The worker is stopping: let another worker take the command. This
		// was no attempt: nothing is recorded, so the next runs it again.
		// The short delay lets this worker's closed fetches reach the
		// server first, so the command goes to a worker that is listening.
		_ = d.Nak(givenBackDelay)
		return
	}
	// The handler returned its outcome: its effect is made. A stop that
	// cuts the handler short, or cancels the report on its way, leaves it
	// time of its own (reportAfterStop) to be reported, rather than
	// handing it back to be made again.
	reportCtx, cancelReport := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReport()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(reportAfterStop, cancelReport) })()
	res.Time = time.Now().UTC()
	w.steps.Ran(typ, res.Time.Sub(began))
	delay := outcome(&res, cmd.Retry, out, err, tries, maxAttempts)
	if res.Error != nil {
		span.SetStatus(codes.Error, res.Error.Type+": "+res.Error.Message)
	}
	settled = true
	if outcome, ok := w.settle(reportCtx, d, res, delay, log, release); ok {
		w.steps.Attempt(typ, attemptOutcome(outcome))
	}
}

// attemptOutcome is the attempt metric's outcome label of o.
func attemptOutcome(o events.Outcome) string {
	switch o {
	case events.OutcomeCompleted:
		return metrics.AttemptCompleted
	case events.OutcomeAttemptFailed:
		return metrics.AttemptRetrying
	}
	return metrics.AttemptFailed
}

// queuedCheck is how long a command may have been stored before its
// first delivery runs it without a look at its run's close first: one
// that waited longer may be of a run canceled meanwhile, which must not
// run it. One handed over at once is not looked at (that would cost a
// request for every command): a cancel so close behind it is like one
// that comes just after the attempt began.
const queuedCheck = 250 * time.Millisecond

// retryEarly is how much sooner than its recorded due time a retry runs
// rather than being given back until then: the clocks of the executor and
// of whoever recorded the failure may differ by that much.
const retryEarly = time.Second

// reportAfterStop bounds the report of an outcome a handler returned,
// from the worker's stop's cancel on (the stop waits for it).
const reportAfterStop = 10 * time.Second

// reportedWait is how long a command whose last attempt's outcome waits
// to be recorded is given back for before it looks again.
const reportedWait = time.Second

// runningDelay is how long a command delivered again while this worker
// still runs it waits before it comes again.
const runningDelay = 2 * time.Second

// claim marks the command at seq as run by this worker and returns how
// to unmark it; false when the worker runs a delivery of it already.
func (w *Worker) claim(seq uint64) (func(), bool) {
	w.imu.Lock()
	defer w.imu.Unlock()
	if w.inflight[seq] {
		return nil, false
	}
	if w.inflight == nil {
		w.inflight = map[uint64]bool{}
	}
	w.inflight[seq] = true
	return func() {
		w.imu.Lock()
		delete(w.inflight, seq)
		w.imu.Unlock()
	}, true
}

// attemptOf returns the attempt a delivery of a step command runs, or
// false when it has settled the delivery itself: history could not be
// read (redelivered), or the step's result is recorded already.
func (w *Worker) attemptOf(ctx context.Context, typ string, d *eventstore.Delivery) (int, bool) {
	cmd := d.Task
	first := max(cmd.FirstAttempt, 1)
	attempt := first
	log := func() *slog.Logger {
		return w.log.With("workflow_id", d.WorkflowID, "task", typ, "step", cmd.Path, "attempt", attempt)
	}
	seenBefore := d.NumDelivered > 1
	if !seenBefore {
		// A command older than this connection may have been delivered
		// before a server restart that lost the delivery count.
		var err error
		if seenBefore, err = w.store.StoredBeforeSession(ctx, d.Seq); err != nil {
			log().Warn("could not check the history stream before an attempt; the command will be redelivered", "err", err)
			_ = d.Nak(time.Second)
			return 0, false
		}
	}
	if !seenBefore {
		if time.Since(d.Message.Time) < queuedCheck {
			return attempt, true
		}
		// It waited in the queue (executors busy, a backlog): a run
		// canceled meanwhile does not run it.
		settled, err := w.settleIfClosed(ctx, d, log)
		if err != nil {
			log().Warn("could not check whether a command's run closed before it ran; the command will be redelivered", "err", err)
			_ = d.Nak(time.Second)
			return 0, false
		}
		return attempt, !settled
	}
	// Delivered before: the previous delivery may have finished and been
	// recorded before its ack was lost, and history says which attempt
	// this one is.
	prog, err := w.store.StepProgressAfter(ctx, d.WorkflowID, cmd.Path, cmd.Gen, d.Seq)
	if err != nil {
		log().Warn("could not check history before a redelivered command; it will be redelivered", "err", err)
		_ = d.Nak(time.Second)
		return 0, false
	}
	attempt = max(first, prog.Attempts+1)
	if prog.Settled {
		w.resettle(ctx, d, attempt, log)
		return 0, false
	}
	if d.NumDelivered > attempt-first+1 {
		// More deliveries than recorded attempts: one may have reported
		// its outcome to the results stream (no orchestrator answered in
		// time) that is not recorded yet. Were the attempt run again now,
		// it would be repeated at every retry delay for as long as the
		// orchestrators lag, past max_attempts and the backoff.
		reported, err := w.store.AttemptReported(ctx, d.WorkflowID, d.Seq, cmd.Path, cmd.Gen, attempt)
		if err != nil {
			log().Warn("could not check for a reported outcome not yet recorded; the command will be redelivered", "err", err)
			_ = d.Nak(time.Second)
			return 0, false
		}
		if reported {
			log().Info("the last attempt's outcome is reported and not yet recorded; giving the command back until it is", "attempt", attempt)
			_ = d.Nak(reportedWait)
			return 0, false
		}
	}
	// The last failed attempt's retry delay holds, though the delivery
	// that would have waited it out was lost (its executor died before
	// giving the command back with the delay).
	if wait := time.Until(prog.RetryAt); wait > retryEarly {
		log().Info("the next attempt is not due yet; giving the command back until it is", "in", wait.Round(time.Millisecond))
		_ = d.Nak(wait)
		return 0, false
	}
	// (Deliveries held for flow control, or while the definition was
	// paused, ran nothing either.)
	if lost := d.NumDelivered - (attempt - first + 1); lost >= 3 && cmd.Flow == nil && !w.pauses.LiftedAfter(d.Definition, d.Message.Time) {
		log().Warn("earlier deliveries of this command ended without a result (executors stopped or died, or NATS was unreachable); running the attempt again",
			"deliveries", d.NumDelivered, "unrecorded", lost)
	}
	return attempt, true
}

// Holds reports whether the worker holds the commands of definition def:
// it is paused, as far as the worker's copy of the pauses says (false
// before Start).
func (w *Worker) Holds(def string) bool {
	if w.pauses == nil {
		return false
	}
	_, paused := w.pauses.Paused(def)
	return paused
}

// pauseRead is a definition's pause as read from the bucket: when the read
// began, what the watched copy showed then, and whether the read answered
// and said paused.
type pauseRead struct {
	at     time.Time
	during shown
	ok     bool
	paused bool
	// pending, while the read is on its way, is where it answers:
	// callers meanwhile wait for it.
	pending *pendingRead
}

// pendingRead is a read of a definition's pause on its way: r is set
// before done is closed.
type pendingRead struct {
	done chan struct{}
	r    pauseRead
}

// shown is what the watched copy shows of a definition's pause: whether it
// is paused, and since when.
type shown struct {
	paused bool
	since  time.Time
}

// pauseReadEvery is how often a worker reads a definition's pause from the
// bucket itself, besides its watched copy: a pause, and the end of one,
// reaches every command within it, whatever the watch's state.
const pauseReadEvery = time.Second

// pauseInBucket returns definition def's pause as the pauses bucket itself
// says, read at most once every pauseReadEvery while the watched copy
// shows the same (during). While a read is on its way, callers wait for
// it (at most the read's second): the read before it, a second old or
// more, would miss a pause put since, which the copy may not show. A read
// that does not answer has ok false, leaving the decision to the copy.
func (w *Worker) pauseInBucket(ctx context.Context, def string, during shown) pauseRead {
	w.pmu.Lock()
	last, ok := w.pauseReads[def]
	same := ok && last.during.paused == during.paused && last.during.since.Equal(during.since)
	if same && time.Since(last.at) < pauseReadEvery {
		w.pmu.Unlock()
		if p := last.pending; p != nil {
			select {
			case <-p.done:
				return p.r
			case <-ctx.Done():
				return pauseRead{}
			}
		}
		return last
	}
	if w.pauseReads == nil {
		w.pauseReads = map[string]pauseRead{}
	}
	began := time.Now()
	p := &pendingRead{done: make(chan struct{})}
	w.pauseReads[def] = pauseRead{at: began, during: during, pending: p}
	w.pmu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, paused, err := w.store.DefinitionPause(rctx, def)
	r := pauseRead{at: began, during: during, ok: err == nil, paused: err == nil && paused}
	w.pmu.Lock()
	if cur := w.pauseReads[def]; cur.pending == p {
		w.pauseReads[def] = r
	}
	w.pmu.Unlock()
	p.r = r
	close(p.done)
	return r
}

// Held commands are given back for heldDelay times their delivery count,
// up to heldMaxDelay: a command released by a resume runs within
// heldMaxDelay, and a long pause costs one delivery per held command every
// heldMaxDelay.
const (
	heldDelay    = time.Second
	heldMaxDelay = 5 * time.Second
)

// hold gives back, unstarted, a delivery of a command whose definition is
// paused, and reports whether it did. Nothing is recorded: the attempt it
// would have run is run by the first delivery after the pause ends, its
// timeout counted from then. Each command costs a lookup of its
// definition's last read of the bucket (pauseInBucket; a read once a
// second).
func (w *Worker) hold(ctx context.Context, typ string, d *eventstore.Delivery) bool {
	def := d.Definition
	if def == "" {
		if !w.pauses.Any() {
			return false
		}
		// A command stored by an earlier version: its run's first record
		// names the definition.
		var err error
		if def, err = w.store.DefinitionOf(ctx, d.WorkflowID); errors.Is(err, eventstore.ErrNotFound) {
			return false
		} else if err != nil {
			w.log.With("workflow_id", d.WorkflowID, "task", typ, "step", d.Task.Path).Warn(
				"could not read which definition a command belongs to; it will be redelivered", "err", err)
			_ = d.Nak(time.Second)
			return true
		}
	}
	// The watched copy may lag the bucket (its watch being made again
	// after the NATS node under it went down, or ended): the bucket itself
	// is read too, at most once every pauseReadEvery. A pause either shows
	// holds the command; a pause the copy shows is over when a read begun
	// while the copy showed it finds none.
	pause, paused := w.pauses.Paused(def)
	r := w.pauseInBucket(ctx, def, shown{paused: paused, since: pause.Time})
	if paused && r.ok && !r.paused || !paused && !r.paused {
		return false
	}
	if n := d.NumDelivered; n&(n-1) == 0 {
		// A run closed during the pause is settled now, not at the
		// resume: a read a command ever more seldom.
		log := func() *slog.Logger {
			return w.log.With("workflow_id", d.WorkflowID, "task", typ, "step", d.Task.Path)
		}
		if settled, err := w.settleIfClosed(ctx, d, log); err == nil && settled {
			return true
		}
	}
	_ = d.Nak(min(time.Duration(max(d.NumDelivered, 1))*heldDelay, heldMaxDelay))
	w.steps.Held(typ, metrics.HeldPaused)
	return true
}

// settleIfClosed settles a delivery, unrun, whose run completed or was
// canceled after its command (ClosedAfter: one read, of the run's close,
// however much was appended since), and reports whether it did: the
// command is acked and any slot an attempt of it holds given back. A
// queued command's first delivery asks it, and a held one's deliveries
// numbered by a power of two.
func (w *Worker) settleIfClosed(ctx context.Context, d *eventstore.Delivery, log func() *slog.Logger) (bool, error) {
	closed, err := w.store.ClosedAfter(ctx, d.WorkflowID, d.Seq)
	if err != nil || !closed {
		return false, err
	}
	w.resettle(ctx, d, max(d.Task.FirstAttempt, 1), log)
	return true, nil
}

// admitFlow applies the step's concurrency and rate limit (FlowLimits) to
// the attempt a delivery is about to run: it takes a concurrency slot of
// the step's key and counts the attempt against the key's rate limit, and
// returns how to give the slot back once the attempt is over.
// When either is used up it gives the delivery back, unstarted, until a
// slot or the next period may be free, and returns false: nothing is
// recorded, so the attempt is not used and its timeout has not begun. A
// slot's lease outlasts the attempt's timeout, so an executor that dies
// holding one loses it; the same attempt delivered again takes its own
// back.
func (w *Worker) admitFlow(ctx context.Context, typ string, d *eventstore.Delivery, attempt int, log func() *slog.Logger) (release slotRelease, renew func(), ok bool) {
	f := d.Task.Flow
	none := slotRelease{now: func(context.Context) error { return nil }, later: func() {}}
	if f == nil {
		return none, func() {}, true
	}
	// shown tells the orchestrator that the attempt waits (outcome held,
	// why: reason and detail), or that it started after waiting: shown as
	// the step's status, not an attempt. The first delivery held says so,
	// and later ones now and then (a power of two), in case an executor
	// died before it did.
	shown := func(outcome events.Outcome, reason, detail string) {
		res := events.Result{WorkflowID: d.WorkflowID, Path: d.Task.Path, Gen: d.Task.Gen, Attempt: attempt, Cmd: d.Seq,
			Outcome: outcome, Time: time.Now().UTC()}
		if outcome == events.OutcomeHeld {
			res.Error = &events.Error{Type: reason, Message: detail}
		}
		if err := w.store.PublishResult(ctx, res); err != nil {
			log().Debug("could not report that the attempt waits for its flow control", "err", err)
		}
	}
	retry := func(reason, detail string, wait time.Duration) (slotRelease, func(), bool) {
		if n := d.NumDelivered; n&(n-1) == 0 {
			shown(events.OutcomeHeld, reason, detail)
		}
		_ = d.Nak(min(max(wait, 20*time.Millisecond), heldMaxDelay))
		w.steps.Held(typ, reason)
		return slotRelease{}, nil, false
	}
	failed := func(err error) (slotRelease, func(), bool) {
		log().Warn("could not apply the step's flow control; the command will be redelivered", "err", err)
		_ = d.Nak(time.Second)
		return slotRelease{}, nil, false
	}
	release, renew = none, func() {}
	if f.ConcurrencyLimit > 0 {
		holder := slotHolder(d, attempt)
		if attempt > max(d.Task.FirstAttempt, 1) {
			// The attempts before this one are recorded: a slot one of
			// them still holds (its executor died before giving it back)
			// is given back now, not when its lease ends.
			if err := w.dropSlots(ctx, d, attempt); err != nil {
				return failed(err)
			}
		}
		lease, took := slotLease(d), w.now()
		var earlier func(string) bool
		if d.NumDelivered > 1 {
			// An executor of an earlier version, delivered this attempt
			// before, may have named its slot without the command (a
			// rolling upgrade; it stopped, or died): that slot is this
			// attempt's, taken back in the same write as the same
			// holder's would be, not waited for until its lease ends,
			// nor left held beside this one when the key has room.
			earlier = unnamedAttempt(d, attempt)
		}
		ok, wait, err := w.store.AcquireSlotReplacing(ctx, f.Scope, f.ConcurrencyKey, f.ConcurrencyLimit, holder, earlier, took, lease)
		if err != nil {
			return failed(err)
		}
		if !ok {
			return retry(metrics.HeldConcurrency, fmt.Sprintf("all %d slots of key %q are taken", f.ConcurrencyLimit, f.ConcurrencyKey),
				min(wait, 250*time.Millisecond))
		}
		// A handler that heartbeats may run past the lease: its
		// heartbeats renew it, a third of a lease and at most 30 s apart.
		// A heartbeat moves the attempt's deadline a timeout on; the
		// lease, a timeout and a minute from its last renewal, then still
		// ends at least 30 s after it.
		var mu sync.Mutex
		renewed := took
		renew = func() {
			mu.Lock()
			defer mu.Unlock()
			if w.now().Sub(renewed) < min(lease/3, 30*time.Second) {
				return
			}
			renewed = w.now()
			if testHookRenew != nil {
				testHookRenew()
			}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if ok, _, err := w.store.AcquireSlot(cctx, f.Scope, f.ConcurrencyKey, f.ConcurrencyLimit, holder, renewed, lease); err != nil || !ok {
				log().Warn("could not renew the attempt's concurrency slot", "renewed", ok, "err", err)
			}
		}
		// The end of the lease this delivery last took: once it has
		// passed the slot is free, and a later take of the same holder
		// (its attempt delivered again) ends after it.
		leaseEnd := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return renewed.Add(lease)
		}
		giveBack := func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return w.store.ReleaseSlot(ctx, f.Scope, f.ConcurrencyKey, holder, leaseEnd())
		}
		release = slotRelease{
			now: func(ctx context.Context) error { return keepTrying(ctx, leaseEnd(), giveBack) },
			later: func() {
				w.running.Go(func() {
					if err := keepTrying(ctx, leaseEnd(), giveBack); err != nil && ctx.Err() == nil {
						log().Warn("could not give a concurrency slot back; it is freed when its lease ends", "err", err)
					}
				})
			},
		}
	}
	if f.RateLimit > 0 {
		ok, wait, err := w.store.TakeToken(ctx, f.Scope, f.RateKey, f.RateLimit, f.RatePer, w.now())
		if err != nil {
			release.later()
			return failed(err)
		}
		if !ok {
			release.later()
			return retry(metrics.HeldRateLimit, fmt.Sprintf("key %q started %d attempts in this period of %s", f.RateKey, f.RateLimit, f.RatePer), wait)
		}
	}
	if d.NumDelivered > 1 {
		shown(events.OutcomeStarted, "", "") // it may have waited
	}
	return release, renew, true
}

// slotHolder names attempt of d's step command as a concurrency slot's
// holder: the run, the step's path, its scheduling, the attempt and the
// command's sequence in the history stream. The sequence tells apart the
// runs of one id: a run deleted by retention and started again under its
// id schedules its steps with the same paths, schedulings and attempt
// numbers, and an attempt of the deleted run may still run (a cancel
// does not stop a handler); named alike, the new run's attempt would take
// that attempt's slot for its own and run beside it.
func slotHolder(d *eventstore.Delivery, attempt int) string {
	return fmt.Sprintf("%s/%d/%d", scheduling(d), attempt, d.Seq)
}

// scheduling names d's step scheduling as slot holders begin with it:
// "<run>/<step path>/<scheduling>".
func scheduling(d *eventstore.Delivery) string {
	return fmt.Sprintf("%s/%s/%d", d.WorkflowID, d.Task.Path, d.Task.Gen)
}

// earlierAttempts picks the slot holders of d's scheduling whose attempt
// is before attempt (all of them, with attempt 0): those named with d's
// command, and those an earlier version named without a command (of the
// run's id, whichever run of it that was). An attempt of another run of
// the id (deleted since) is not d's scheduling's, and keeps its slot.
func earlierAttempts(d *eventstore.Delivery, attempt int) func(string) bool {
	prefix := scheduling(d) + "/"
	return func(h string) bool {
		rest, ok := strings.CutPrefix(h, prefix)
		if !ok {
			return false
		}
		if a, seq, named := strings.Cut(rest, "/"); named {
			if seq != strconv.FormatUint(d.Seq, 10) {
				return false
			}
			rest = a
		}
		n, err := strconv.Atoi(rest)
		return err == nil && (attempt == 0 || n < attempt)
	}
}

// unnamedAttempt picks the slot holder of attempt of d's scheduling as an
// earlier version named it, without the command (of the run's id,
// whichever run of it that was, as earlierAttempts picks those).
func unnamedAttempt(d *eventstore.Delivery, attempt int) func(string) bool {
	name := fmt.Sprintf("%s/%d", scheduling(d), attempt)
	return func(h string) bool { return h == name }
}

// resettle acks a redelivered command whose attempt's result was
// recorded. The orchestrator that recorded it may have died before
// finishing what follows (a child to start, a parent to tell, the
// listing): a result through the results stream makes one load the
// workflow afresh and do it. It is recorded as nothing new (the step is
// settled).
func (w *Worker) resettle(ctx context.Context, d *eventstore.Delivery, attempt int, log func() *slog.Logger) {
	cmd := d.Task
	res := events.Result{WorkflowID: d.WorkflowID, Path: cmd.Path, Gen: cmd.Gen, Attempt: attempt, Cmd: d.Seq,
		Outcome: events.OutcomeCompleted, Time: time.Now().UTC()}
	if err := w.store.PublishResult(ctx, res); err != nil {
		log().Warn("could not report a redelivered command's settled step; retrying", "err", err)
		_ = d.Nak(time.Second)
		return
	}
	// The step is settled: a slot an attempt of it still holds (its
	// executor died or lost NATS before giving it back) is given back
	// before the command is acked, or the command comes back to do it.
	if err := w.dropSlots(ctx, d, 0); err != nil {
		log().Warn("could not give back the slots of a settled step; the command will be redelivered to give them back", "err", err)
		_ = d.Nak(min(time.Duration(max(d.NumDelivered, 1))*time.Second, 30*time.Second))
		return
	}
	log().Debug("step already settled; acking the redelivered command")
	_ = d.Ack()
}

// slotRelease gives back the concurrency slot an attempt took (admitFlow).
type slotRelease struct {
	// now gives it back before the command is acked, tried until it is
	// given back or its lease ends, and fails only when ctx ends first.
	now func(context.Context) error
	// later gives it back in the background, tried the same way while
	// the worker runs: for an attempt whose command is delivered again
	// (a retry, or one whose result could not be reported).
	later func()
}

// slotLease is how long a concurrency slot an attempt of d's step takes is
// held without renewal: the step's timeout, at least a minute, and a
// minute more.
func slotLease(d *eventstore.Delivery) time.Duration {
	return max(d.Task.Timeout, time.Minute) + time.Minute
}

// keepTrying calls try until it succeeds, ctx ends (its error) or until
// passes (nil: what try gives back has lapsed by then), waiting 100ms
// doubling to 5s between tries.
func keepTrying(ctx context.Context, until time.Time, try func(context.Context) error) error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := try(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		if time.Now().Add(wait).After(until) {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// dropSlots gives back the concurrency slots that attempts of d's
// scheduling before attempt (all of them, with attempt 0) still hold.
func (w *Worker) dropSlots(ctx context.Context, d *eventstore.Delivery, attempt int) error {
	f := d.Task.Flow
	if f == nil || f.ConcurrencyLimit <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return w.store.DropSlots(ctx, f.Scope, f.ConcurrencyKey, earlierAttempts(d, attempt))
}

// outcome fills in res from what the handler returned, for the tries'th
// attempt of maxAttempts under policy retry, and returns how long to wait
// before the next attempt (when res is an attempt that failed and is
// retried). An output that cannot be recorded fails the step.
func outcome(res *events.Result, retry events.RetryPolicy, out any, err error, tries, maxAttempts int) time.Duration {
	if err == nil {
		if out, err = value.Normalize(out); err != nil {
			err = &Error{Type: ErrTypeOutput, Message: "handler output: " + err.Error(), NonRetryable: true}
		} else if err = value.Check("output", out, value.Limits{}); err != nil {
			// What the orchestrators could not record or read back fails
			// the step here, rather than being lost on the way.
			err = &Error{Type: ErrTypeOutput, Message: err.Error(), NonRetryable: true}
		}
	}
	if err == nil {
		res.Outcome, res.Output = events.OutcomeCompleted, out
		return 0
	}
	var te *Error
	if !errors.As(err, &te) {
		te = &Error{Type: workflow.ErrTypeHandler, Message: err.Error()}
	}
	msg := te.Message
	if msg == "" && te.Err != nil {
		msg = te.Err.Error()
	}
	// Failures are recorded and shown as text: keep them valid UTF-8, and
	// short enough to report whatever the handler returned.
	res.Error = new(events.Error{Type: te.Type, Message: msg}.Fit())
	if te.NonRetryable || retry.IsNonRetryable(te.Type) || tries >= maxAttempts {
		res.Outcome = events.OutcomeFailed
		return 0
	}
	delay := retry.Delay(tries)
	if te.RetryAfter > 0 {
		delay = te.RetryAfter
	}
	res.Outcome, res.RetryDelay = events.OutcomeAttemptFailed, delay
	return delay
}

// keepClaimed heartbeats d (InProgress) every third of the task ack wait
// until the returned stop is called, so the command is not redelivered
// while this worker checks history, runs the handler or reports. It is a
// timer, not a goroutine: most deliveries end long before the first beat.
func (w *Worker) keepClaimed(d *eventstore.Delivery) (stop func()) {
	beat := max(w.store.Config().TaskAckWait/3, 50*time.Millisecond)
	var mu sync.Mutex
	stopped := false
	var beater *time.Timer
	mu.Lock()
	defer mu.Unlock()
	beater = time.AfterFunc(beat, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = d.InProgress()
		beater.Reset(beat)
	})
	return func() {
		mu.Lock()
		stopped = true
		beater.Stop()
		mu.Unlock()
	}
}

// refuse fails the step of a command of another task type than typ, which
// this worker's handler must not run, and terminates the command.
func (w *Worker) refuse(ctx context.Context, typ string, d *eventstore.Delivery) {
	cmd := d.Task
	msg := fmt.Sprintf("a command of task type %q was delivered to the executor of task type %q", cmd.Task, typ)
	log := w.log.With("workflow_id", d.WorkflowID, "task", typ, "step", cmd.Path)
	log.Error("refusing a command of another task type; the step fails", "command_task", cmd.Task, "seq", d.Seq)
	res := events.Result{WorkflowID: d.WorkflowID, Path: cmd.Path, Gen: cmd.Gen, Attempt: max(cmd.FirstAttempt, 1), Cmd: d.Seq,
		Outcome: events.OutcomeFailed, Error: &events.Error{Type: ErrTypeWrongTaskType, Message: msg}}
	if err := w.report(ctx, d, &res); err != nil {
		log.Warn("could not report a refused command; it will be redelivered", "err", err)
		_ = d.Nak(time.Second)
		return
	}
	// Terminated, the command comes back no more: slots its earlier
	// attempts still hold are given back first.
	if err := w.dropSlots(ctx, d, 0); err != nil {
		log.Warn("could not give back the slots of a refused command's step; the command will be redelivered to give them back", "err", err)
		_ = d.Nak(time.Second)
		return
	}
	_ = d.Term(ErrTypeWrongTaskType + ": " + msg)
}

// settle reports res, gives back the attempt's concurrency slot, then
// acks the command (or naks it for a retry after delay), and returns the
// outcome reported (report may turn an output too large into a failure)
// and whether it was. The slot of a settled step is given back before the
// ack, tried while the command stays claimed: a crash or a stop in between
// leaves the command unacked, and its next delivery finds the step settled
// and gives back what is left (resettle); the orchestrator ignores the
// repeated result. A retried attempt's slot is given back in the
// background (the next attempt gives back its predecessors' too).
func (w *Worker) settle(ctx context.Context, d *eventstore.Delivery, res events.Result, delay time.Duration, log func() *slog.Logger, slot slotRelease) (events.Outcome, bool) {
	if err := w.report(ctx, d, &res); err != nil {
		delay := unreportedDelay(d.NumDelivered)
		log().Warn("could not report result; the command will be redelivered", "err", err, "in", delay)
		slot.later()
		_ = d.Nak(delay)
		return res.Outcome, false
	}
	if res.Outcome == events.OutcomeAttemptFailed {
		slot.later()
		_ = d.Nak(delay)
		return res.Outcome, true
	}
	if err := slot.now(ctx); err != nil {
		// The worker stops: the command is delivered again when its ack
		// wait ends, to find the step settled.
		log().Warn("stopped before giving the attempt's concurrency slot back; the command's next delivery will", "err", err)
		return res.Outcome, true
	}
	_ = d.Ack()
	return res.Outcome, true
}

// unreportedDelay is how long a command whose result could not be
// reported waits before its next delivery, on which its handler runs
// again: a second after its first delivery, twice as long after each
// next, up to 15 s. So while NATS is unreachable or out of storage, a
// handler (and the outside system it calls) is not run again every few
// seconds for as long as that lasts.
func unreportedDelay(delivered int) time.Duration {
	return min(time.Second<<min(max(delivered, 1)-1, 4), 15*time.Second)
}

// report hands res to the orchestrators, trying a few times. An output
// too large to record turns res into a failure.
func (w *Worker) report(ctx context.Context, d *eventstore.Delivery, res *events.Result) error {
	if res.Time.IsZero() {
		res.Time = time.Now().UTC()
	}
	var err error
	// Each try may ask two orchestrators directly before it publishes to
	// the results stream: the publish keeps 5 s of its own.
	budget := 5*time.Second + 2*max(w.store.Config().ResultReplyWait, 0)
	for try := 0; try < 5; try++ {
		pctx, cancel := context.WithTimeout(ctx, budget)
		err = w.store.ReportResult(pctx, *res, d.Owner)
		cancel()
		if errors.Is(err, eventstore.ErrTooLarge) && res.Outcome == events.OutcomeCompleted {
			// The output is too large to record: the step fails, not Weft.
			res.Outcome, res.Output = events.OutcomeFailed, nil
			res.Error = &events.Error{Type: ErrTypeOutput, Message: "handler output is larger than the NATS message limit"}
			continue
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(100*(try+1)) * time.Millisecond)
	}
	return err
}

// call runs the handler with the attempt's timeout and panic recovery. A
// handler that does not return once its context ends is given up on (see
// abandonGrace): running is then closed when it returns, and nil
// otherwise.
func (w *Worker) call(ctx context.Context, h Handler, d *eventstore.Delivery, cmd *events.StepScheduled, attempt int, renew func()) (out any, running <-chan struct{}, err error) {
	timeout := cmd.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errTimeout := &Error{Type: ErrTypeTimeout, Message: fmt.Sprintf("attempt did not finish within %s", timeout)}
	deadline := time.AfterFunc(timeout, func() { cancel(errTimeout) })
	defer deadline.Stop()

	// gone is set once the call returned or stopped waiting for the
	// handler: its heartbeats then claim nothing (hb makes a heartbeat and
	// the end of the call one after the other, so none renews a slot
	// after it is given back).
	var hb sync.Mutex
	var gone, renewing atomic.Bool
	var renewals sync.WaitGroup
	defer func() {
		hb.Lock()
		gone.Store(true)
		hb.Unlock()
		renewals.Wait() // none renews the slot once it may be given back
	}()
	task := &Task{WorkflowID: d.WorkflowID, Path: cmd.Path, Type: cmd.Task, Attempt: attempt,
		IdempotencyKey: cmd.IdempotencyKey, Input: cmd.Input,
		heartbeat: func() {
			hb.Lock()
			defer hb.Unlock()
			if gone.Load() {
				return
			}
			deadline.Reset(timeout)
			_ = d.InProgress()
			// The slot's lease is renewed beside the handler: a renewal
			// NATS is slow to answer (a node lost) must not hold up the
			// heartbeats after it, whose resets of the deadline the
			// attempt's timeout waits for.
			if renewing.CompareAndSwap(false, true) {
				renewals.Add(1)
				go func() {
					defer renewals.Done()
					defer renewing.Store(false)
					renew()
				}()
			}
		}}
	type answer struct {
		out any
		err error
	}
	done := make(chan answer, 1)
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		exited := true
		defer func() {
			if r := recover(); r != nil {
				w.log.Error("task handler panicked", "workflow_id", d.WorkflowID, "step", cmd.Path, "panic", r, "stack", string(debug.Stack()))
				done <- answer{nil, &Error{Type: ErrTypePanic, Message: fmt.Sprintf("handler panicked: %v", r)}}
			} else if exited {
				// runtime.Goexit: no answer would come.
				done <- answer{nil, &Error{Type: ErrTypePanic, Message: "handler exited its goroutine without returning (runtime.Goexit)"}}
			}
		}()
		out, err := h(hctx, task)
		exited = false
		done <- answer{out, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-hctx.Done():
		// Timed out, or the worker stops: a handler that honours its
		// context returns at once. One that does not is given up on
		// after abandonGrace, so its step times out (or its command goes
		// back) all the same, and its late outcome is dropped.
		grace := time.NewTimer(abandonGrace)
		select {
		case a = <-done:
		case <-grace.C:
			gone.Store(true)
			w.log.Warn("task handler did not return after its context ended; giving it up", "workflow_id", d.WorkflowID,
				"step", cmd.Path, "attempt", attempt, "cause", context.Cause(hctx))
			a = answer{nil, context.Cause(hctx)}
			running = returned
		}
		grace.Stop()
	}
	if a.err != nil && errors.Is(context.Cause(hctx), errTimeout) {
		return nil, running, errTimeout
	}
	return a.out, running, a.err
}

// testHookRenew, when set, is called as a heartbeat renews its attempt's
// concurrency slot, before the renewal is written.
var testHookRenew func()

// abandonGrace is how long a handler whose context ended (its attempt
// timed out, or the worker stops) has to return before it is given up on.
const abandonGrace = 5 * time.Second
