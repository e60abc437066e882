package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// run is the client side's record of one workflow.
type run struct {
	plan *plan

	started  bool
	startErr error
	// signalErr and actionErr are a signal, and a cancel or redrive, that
	// could not be done.
	signalErr, actionErr error
	// final is the workflow as last read, closed unless the run timed out.
	final *weftv1.Workflow
	// redriven is set once the harness asked for the redrive, and
	// firstFailure is the failure it answered.
	redriven     bool
	firstFailure *weftv1.Failure
	// children are the runs of the workflow's children, by step path.
	children map[string]*run
	// deleted is set when a retained run was gone (deleted by its
	// retention) before the harness read its close.
	deleted bool
	// suspendedView is what GetWorkflow showed wrong of a run when it was
	// first suspended ("" when it showed it as it must), and resumes
	// counts the harness's resumes of it.
	suspendedView string
	resumes       int
	// pausedView is what went otherwise than planned while the run's
	// definition was paused ("" when nothing did), and downWhilePaused
	// the parts seen down meanwhile; seenQueued is set when the run was
	// read QUEUED right after its start.
	pausedView      string
	downWhilePaused []string
	seenQueued      bool
}

// errClosedEarly marks a workflow that closed before the harness could do
// what its plan says (signal it, cancel it).
var errClosedEarly = errors.New("workflow closed early")

// counters are the client side's observations during a run.
type counters struct {
	startRetries   atomic.Int64
	signalRetries  atomic.Int64
	notFoundStarts atomic.Int64 // NotFound for a workflow whose start had succeeded
}

// plans returns the n workflows the harness starts, of the enabled shapes
// in the order of shapeCycle.
func (h *Harness) plans(n int) []*plan {
	var cycle []int
	for _, s := range shapeCycle {
		if h.enabled(s) {
			cycle = append(cycle, s)
		}
	}
	if len(cycle) == 0 {
		return nil
	}
	seen := make([]int, numShapes)
	out := make([]*plan, n)
	for i := range out {
		s := cycle[i%len(cycle)]
		out[i] = newPlan(i, seen[s], s, h.ledger.URL())
		seen[s]++
	}
	return out
}

// enabled reports whether the run includes shape s.
func (h *Harness) enabled(s int) bool { return h.shapes[s] }

// runWorkload starts the workflows at a steady rate while the chaos loop
// runs (and publishes trigger events, and lets the cron schedule fire),
// waits for all of them to close, and checks them.
func (h *Harness) runWorkload(ctx context.Context) (*Result, error) {
	plans := h.plans(h.cfg.Workflows)
	n := len(plans)
	runs := make([]*run, n)
	for i, p := range plans {
		runs[i] = &run{plan: p}
	}
	rng := rand.New(rand.NewPCG(uint64(h.cfg.Seed), 0x63686173))
	var kills Kills
	var killMu sync.Mutex
	chaosCtx, stopChaos := context.WithCancel(ctx)
	defer stopChaos()
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		h.chaos(chaosCtx, rng, &kills, &killMu)
	}()

	t0 := time.Now()
	deadline := t0.Add(h.cfg.Duration + h.cfg.Settle)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var c counters
	polls := make(chan struct{}, 16) // GetWorkflow calls in flight
	var wg sync.WaitGroup
	var closed atomic.Int64
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	report := func() {
		killMu.Lock()
		k := kills
		killMu.Unlock()
		h.logf("progress: %s elapsed, %d/%d closed, %d kills", time.Since(t0).Round(time.Second), closed.Load(), n, k.Total())
	}
	var events *eventPublisher
	if h.enabled(shapeTrigger) {
		events = h.publishEvents(wctx, triggerEvents(h.cfg.Workflows), h.cfg.Duration)
	}
	h.logf("starting %d workflows over %s, a kill every ~%s", n, h.cfg.Duration, h.cfg.KillEvery)
	interval := h.cfg.Duration / time.Duration(max(n, 1))
	for i, r := range runs {
		wait := time.Until(t0.Add(time.Duration(i) * interval))
		for wait > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				stopChaos()
				<-chaosDone
				return nil, ctx.Err()
			case <-progress.C:
				report()
			case <-time.After(wait):
			}
			wait = time.Until(t0.Add(time.Duration(i) * interval))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.drive(wctx, r, &c, polls)
			closed.Add(1)
		}()
	}
	// The chaos goes on for the whole start window.
	for end := t0.Add(h.cfg.Duration); time.Now().Before(end) && ctx.Err() == nil; {
		select {
		case <-ctx.Done():
		case <-progress.C:
			report()
		case <-time.After(time.Until(end)):
		}
	}
	stopChaos()
	<-chaosDone
	h.logf("chaos over after %s; waiting for the workflows to close (until %s)", time.Since(t0).Round(time.Second), deadline.Format(time.TimeOnly))
	for _, p := range h.sup.all() {
		if !p.running() {
			h.logf("%s is down after the chaos; starting it", p.name)
			_ = p.start()
		}
	}
	var cronStop error
	if h.enabled(shapeCron) {
		cronStop = h.stopCron(wctx)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-progress.C:
			report()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	killMu.Lock()
	res := &Result{Kills: kills}
	killMu.Unlock()
	// Collecting gets a minute past the deadline, so that what is left
	// after workflows that never closed is still read.
	cctx, ccancel := context.WithDeadline(ctx, deadline.Add(time.Minute))
	defer ccancel()
	d := &driver{h: h, c: &c, polls: polls}
	if events != nil {
		runs = append(runs, h.collectTriggered(cctx, d, events, res)...)
	}
	if h.enabled(shapeCron) {
		if cronStop != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("cron: the schedule could not be removed: %v", cronStop))
		}
		runs = append(runs, h.collectCron(cctx, d, t0, res)...)
	}
	for _, r := range runs[:n] {
		runs = r.appendDescendants(runs)
	}
	res.Problems = append(res.Problems, h.leftRunning(cctx)...)
	h.logf("all workflows closed or given up on after %s; checking histories and the ledger", time.Since(t0).Round(time.Second))
	if err := h.verify(ctx, runs, res); err != nil {
		return res, err
	}
	res.StartupExits = h.startupExits
	res.UnexpectedExits = h.sup.unexpectedExits() - h.startupExits
	res.StartRetries, res.SignalRetries = int(c.startRetries.Load()), int(c.signalRetries.Load())
	res.NotFoundAfterStart = int(c.notFoundStarts.Load())
	if res.NotFoundAfterStart > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d reads or signals of a workflow whose start had succeeded answered NotFound (retried)", res.NotFoundAfterStart))
	}
	if res.StartupExits > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d exits of weft parts while the deployment started (restarted; see the logs)", res.StartupExits))
	}
	if res.UnexpectedExits > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d process exits nobody asked for during the run (restarted; see the logs)", res.UnexpectedExits))
	}
	if n, err := h.snapshotted(ctx); err != nil {
		h.logf("count snapshots: %v", err)
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("%d workflows had a snapshot of their state stored", n))
	}
	if err := h.writeReport(res); err != nil {
		h.logf("write report: %v", err)
	}
	return res, res.Err()
}

// drive starts one workflow (retrying with the same request id), sends its
// signals, does its cancel and its redrive, and awaits it until it closes
// or ctx ends; then it awaits its children until they close.
func (h *Harness) drive(ctx context.Context, r *run, c *counters, polls chan struct{}) {
	p := r.plan
	for path, status := range p.refuse {
		h.ledger.Refuse(p.key(path), status)
	}
	for path, calls := range p.hold {
		h.ledger.Hold(p.key(path), calls)
	}
	d := &driver{h: h, c: c, polls: polls}
	siblings := d.siblings(r)
	if p.paused {
		r.actionErr = d.startPaused(ctx, r, siblings)
	}
	if !r.started && !h.start(ctx, r, c) {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, s := range siblings {
		wg.Go(func() { h.drive(ctx, s, c, polls) })
	}
	if p.shape == shapeQueued {
		d.seeQueued(ctx, r)
	}
	if p.retained {
		// NotFound once every effect succeeded: the run closed and its
		// retention deleted it before it was read.
		d.deleted = func() bool { return len(p.unsucceeded(h.ledger.Snapshot())) == 0 }
	}

	if p.suspend != nil {
		r.actionErr = d.resume(ctx, r)
	} else {
		for _, s := range p.signals {
			if r.signalErr = d.signal(ctx, r, s); r.signalErr != nil {
				break
			}
		}
	}
	if p.cancel != nil && r.signalErr == nil {
		r.actionErr = d.cancel(ctx, r)
	}
	for {
		wf, err := d.await(ctx, p.id, true)
		if wf != nil {
			r.final = wf
		}
		if errors.Is(err, errDeleted) {
			r.deleted = true
			break
		}
		if err != nil {
			if !errors.Is(err, errNotClosed) && ctx.Err() == nil {
				h.logf("%v", err)
			}
			return // not closed (or not read) before ctx ended; the checks report it
		}
		if r.redriven && !d.redriveClosed(ctx, p.id) {
			// The state read may be the failure from before the redrive,
			// or the history may not show the close yet: look again in a
			// moment.
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		if wf.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED && p.redrive != nil && !r.redriven {
			r.firstFailure = wf.Error
			if wf.Error.GetType() != p.redrive.errType || wf.Error.GetStepPath() != p.redrive.errStep {
				break // not the failure the redrive is for; the checks report it
			}
			r.redriven = true
			if r.actionErr = d.redrive(ctx, r); r.actionErr != nil {
				break
			}
			continue
		}
		break
	}
	d.followChildren(ctx, r)
}

// start starts r's workflow, retrying with the same request id, and
// reports whether it started; r records the outcome.
func (h *Harness) start(ctx context.Context, r *run, c *counters) bool {
	p := r.plan
	input, err := structpb.NewValue(p.input)
	if err != nil {
		r.startErr = err
		return false
	}
	var revision int32
	if p.slowRate {
		revision = h.slowRateRevision
	}
	if p.longDeadline {
		revision = h.longDeadlineRevision
	}
	r.startErr = retryWhile(ctx, retryable, func(ctx context.Context) error {
		_, err := h.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: p.definition, Revision: revision, WorkflowId: p.id, RequestId: "start-" + p.id, Input: input}))
		if err != nil {
			c.startRetries.Add(1)
		}
		return err
	})
	r.started = r.startErr == nil
	return r.started
}

// driver holds what the calls of one workflow's driver share.
type driver struct {
	h     *Harness
	c     *counters
	polls chan struct{} // GetWorkflow calls in flight
	// deleted, when set, reports whether a NotFound for the run means its
	// retention deleted it.
	deleted func() bool
}

// awaitTimeout is the longest one AwaitWorkflow call waits for a run to
// close. awaitReserve is the time kept at the end of the caller's deadline
// to read a run that did not close, and the slack of each call's own
// deadline over the timeout it asks the server for.
const (
	awaitTimeout = 30 * time.Second
	awaitReserve = 5 * time.Second
)

// errNotClosed marks a workflow that did not close before the caller's
// context ended.
var errNotClosed = errors.New("workflow not closed")

// errDeleted marks a workflow its retention deleted before it was read
// closed.
var errDeleted = errors.New("workflow deleted")

// await waits for workflow id to close and returns it. Each
// AwaitWorkflow call waits at most awaitTimeout; one that ends with the run
// still running (DEADLINE_EXCEEDED once its timeout passed) is made again
// at once, and one that fails while the API is down or restarting (a
// DEADLINE_EXCEEDED before the timeout included), or with NotFound (after a
// successful start (started) a transient answer; for a child the parent
// has just started, the child's start may not be stored yet), again after
// a backoff, until ctx ends. When ctx has a deadline the awaits stop
// awaitReserve before it, and the run is read once more with GetWorkflow:
// a run that did not close is returned as read, with errNotClosed, so the
// checks report the state it was left in. nil comes with the error of a
// run that could not be read, and with errDeleted when d.deleted says a
// NotFound means the run's retention deleted it.
func (d *driver) await(ctx context.Context, id string, started bool) (*weftv1.Workflow, error) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		timeout := awaitTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = min(timeout, time.Until(dl)-awaitReserve)
		}
		if timeout <= 0 {
			break
		}
		called := time.Now()
		wf, err := d.awaitOnce(ctx, id, timeout)
		switch {
		case err == nil && closedStatus(wf.GetStatus()):
			return wf, nil
		case err == nil:
			// An answer without a closed run is no answer: ask again.
		case connect.CodeOf(err) == connect.CodeDeadlineExceeded && time.Since(called) >= timeout:
			delay = 100 * time.Millisecond
			continue // still running when the call's timeout passed
		case connect.CodeOf(err) == connect.CodeNotFound:
			if d.deleted != nil && d.deleted() {
				return nil, fmt.Errorf("await %s: %w", id, errDeleted)
			}
			if started {
				d.c.notFoundStarts.Add(1)
			}
		case !retryable(err):
			return nil, fmt.Errorf("await %s: %w", id, err)
		}
		if sleep(ctx, delay) != nil {
			break
		}
		delay = min(delay*2, 2*time.Second)
	}
	wf, err := d.get(ctx, id, started)
	switch {
	case err != nil:
		return nil, fmt.Errorf("await %s: %w", id, err)
	case !closedStatus(wf.Status):
		return wf, fmt.Errorf("%w: %s is %s", errNotClosed, id, wf.Status)
	}
	return wf, nil
}

// awaitOnce makes one AwaitWorkflow call that waits at most timeout.
func (d *driver) awaitOnce(ctx context.Context, id string, timeout time.Duration) (*weftv1.Workflow, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+awaitReserve)
	defer cancel()
	resp, err := d.h.awaits.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{
		WorkflowId: id, Timeout: durationpb.New(timeout)}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Workflow, nil
}

// sleep waits for d, or returns ctx's error when it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// get reads a workflow. NotFound is retried: after a successful start
// (started) it counts as a transient answer; for a child the parent has
// just started, the child's start may not be stored yet.
func (d *driver) get(ctx context.Context, id string, started bool) (*weftv1.Workflow, error) {
	select {
	case d.polls <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.polls }()
	var wf *weftv1.Workflow
	err := retryWhile(ctx, func(err error) bool {
		if connect.CodeOf(err) == connect.CodeNotFound {
			if started {
				d.c.notFoundStarts.Add(1)
			}
			return true
		}
		return retryable(err)
	}, func(ctx context.Context) error {
		resp, err := d.h.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		if err == nil {
			wf = resp.Msg.Workflow
		}
		return err
	})
	return wf, err
}

// waitFor polls workflow id until its step path is WAITING. It returns
// errClosedEarly when the workflow closes first.
func (d *driver) waitFor(ctx context.Context, id, path string, started bool) error {
	wf, err := d.watch(ctx, id, started, fmt.Sprintf("step %s of %s to wait", path, id), func(wf *weftv1.Workflow) bool {
		return stepOf(wf, path).GetStatus() == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	switch {
	case err != nil:
		return err
	case closedStatus(wf.Status):
		return fmt.Errorf("%w (%s %s before its step %s waited)", errClosedEarly, id, wf.Status, path)
	}
	return nil
}

// watch polls workflow id every half second until done holds of it, or
// it closes, and returns it; when ctx ends first, the error says what was
// awaited.
func (d *driver) watch(ctx context.Context, id string, started bool, what string, done func(*weftv1.Workflow) bool) (*weftv1.Workflow, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		if wf, err := d.get(ctx, id, started); err == nil && (closedStatus(wf.Status) || done(wf)) {
			return wf, nil
		}
	}
}

// signal sends one signal: at once, or once its step is WAITING.
func (d *driver) signal(ctx context.Context, r *run, s signalSpec) error {
	p := r.plan
	if s.afterWaiting != "" {
		if err := d.waitFor(ctx, p.id, s.afterWaiting, true); err != nil {
			return err
		}
	}
	payload, err := structpb.NewValue(s.payload)
	if err != nil {
		return err
	}
	tries := 0
	return retryWhile(ctx, func(err error) bool {
		if connect.CodeOf(err) == connect.CodeNotFound {
			d.c.notFoundStarts.Add(1)
			return true
		}
		return retryable(err)
	}, func(ctx context.Context) error {
		tries++
		_, err := d.h.wf.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{
			WorkflowId: p.id, Name: s.name, Payload: payload, RequestId: s.requestID}))
		if err != nil {
			d.c.signalRetries.Add(1)
			if tries > 1 && connect.CodeOf(err) == connect.CodeFailedPrecondition {
				// An earlier try may have been delivered before its answer
				// was lost and the workflow has closed since: the history
				// says whether the signal arrived.
				return nil
			}
		}
		return err
	})
}

// childID polls the parent's history until it records the start of the
// child of the step at path, and returns the child's id.
func (d *driver) childID(ctx context.Context, parent, path string) (string, error) {
	for {
		hist, err := d.h.history(ctx, parent)
		if err == nil {
			closed := false
			for _, ev := range hist {
				if ev.Type == "ChildStarted" && ev.StepPath == path {
					id, _ := ev.Data.GetStructValue().AsMap()["workflow_id"].(string)
					return id, nil
				}
				closed = closed || closingEvent(ev.Type)
			}
			if closed {
				return "", fmt.Errorf("%w (%s closed before step %s started a child)", errClosedEarly, parent, path)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for step %s of %s to start a child: %w", path, parent, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// cancel sends the plan's cancel to the workflow or to its child, once the
// step it names is WAITING.
func (d *driver) cancel(ctx context.Context, r *run) error {
	p, cs := r.plan, r.plan.cancel
	target, waitIn, started := p.id, p.id, true
	if cs.inChild != "" {
		id, err := d.childID(ctx, p.id, cs.inChild)
		if err != nil {
			return err
		}
		waitIn, started = id, false
		if cs.child {
			target = id
		}
	}
	if cs.afterWaiting != "" {
		if err := d.waitFor(ctx, waitIn, cs.afterWaiting, started); err != nil {
			return err
		}
	}
	// Every try names the same request: one whose answer was lost and
	// that was taken is answered OK, even once the run closed CANCELED.
	return retryWhile(ctx, func(err error) bool {
		return connect.CodeOf(err) == connect.CodeNotFound || retryable(err)
	}, func(ctx context.Context) error {
		_, err := d.h.wf.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: target, Reason: "chaos",
			RequestId: "cancel-" + target}))
		return err
	})
}

// redrive releases the plan's refused and held paths, waits for those to
// settle to complete in the failed run, and redrives the workflow.
func (d *driver) redrive(ctx context.Context, r *run) error {
	p := r.plan
	for _, path := range append(slices.Clone(p.redrive.release), p.redrive.settle...) {
		d.h.ledger.Release(p.key(path))
	}
	for _, path := range p.redrive.settle {
		if err := d.completedAfterFailure(ctx, p.id, path); err != nil {
			return err
		}
	}
	// Every try names the same request: one whose answer was lost and
	// that was taken is answered OK, whatever the run did since.
	return retryWhile(ctx, retryable, func(ctx context.Context) error {
		_, err := d.h.wf.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: p.id, Reason: "chaos",
			RequestId: "redrive-" + p.id}))
		return err
	})
}

// completedAfterFailure polls the history of failed workflow id until it
// records the completion of step path.
func (d *driver) completedAfterFailure(ctx context.Context, id, path string) error {
	for {
		hist, err := d.h.history(ctx, id)
		if err == nil {
			for _, ev := range hist {
				if ev.Type == "StepCompleted" && ev.StepPath == path {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for step %s of the failed %s to complete: %w", path, id, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// redriveClosed reports whether the history of a redriven workflow closes
// after its WorkflowRetried event.
func (d *driver) redriveClosed(ctx context.Context, id string) bool {
	hist, err := d.h.history(ctx, id)
	if err != nil {
		return false
	}
	retried := false
	for _, ev := range hist {
		switch {
		case ev.Type == "WorkflowRetried":
			retried = true
		case retried && closingEvent(ev.Type):
			return true
		}
	}
	return false
}

// appendDescendants appends r's children, each followed by its own, to runs.
func (r *run) appendDescendants(runs []*run) []*run {
	for _, path := range sortedKeys(r.children) {
		runs = r.children[path].appendDescendants(append(runs, r.children[path]))
	}
	return runs
}

// followChildren finds the children of a closed workflow in its history
// and awaits each until it closes or ctx ends, then follows theirs.
func (d *driver) followChildren(ctx context.Context, r *run) {
	p := r.plan
	if len(p.children) == 0 {
		return
	}
	hist, err := d.h.history(ctx, p.id)
	ids := map[string]string{}
	for _, ev := range hist {
		if ev.Type == "ChildStarted" {
			id, _ := ev.Data.GetStructValue().AsMap()["workflow_id"].(string)
			ids[ev.StepPath] = id
		}
	}
	r.children = map[string]*run{}
	for path, cp := range p.children {
		cr := &run{plan: cp}
		r.children[path] = cr
		id := ids[path]
		if id == "" && p.retained {
			id = cp.id // known from the start; the parent's history may be deleted
		}
		if id == "" {
			cr.startErr = fmt.Errorf("the parent %s never started the child of step %s (history: %v)", p.id, path, err)
			if err == nil && !closedStatus(r.final.GetStatus()) {
				cr.startErr = fmt.Errorf("the parent %s did not close", p.id)
			}
			continue
		}
		p.childStarted(path, id)
		wf, err := d.await(ctx, id, false)
		if wf != nil {
			cr.started, cr.final = true, wf
			d.followChildren(ctx, cr)
		} else {
			cr.startErr = fmt.Errorf("child %s never found: %w", id, err)
		}
	}
}

// closedStatus reports whether a run of status s has closed: a SUSPENDED
// run is open.
func closedStatus(s weftv1.WorkflowStatus) bool {
	switch s {
	case weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED, weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED,
		weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED:
		return true
	}
	return false
}

func closingEvent(t string) bool {
	return t == "WorkflowCompleted" || t == "WorkflowFailed" || t == "WorkflowCanceled"
}
