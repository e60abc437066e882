package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// run is the client side's record of one workflow.
type run struct {
	plan *plan

	started   bool
	startErr  error
	signalErr error
	// final is the workflow as last read, closed unless the run timed out.
	final *weftv1.Workflow
}

// errClosedEarly marks a workflow that closed before its signal was sent.
var errClosedEarly = errors.New("workflow closed before the signal was sent")

// counters are the client side's observations during a run.
type counters struct {
	startRetries   atomic.Int64
	signalRetries  atomic.Int64
	notFoundStarts atomic.Int64 // NotFound for a workflow whose start had succeeded
}

// runWorkload starts the workflows at a steady rate while the chaos loop
// runs, waits for all of them to close, and checks them.
func (h *Harness) runWorkload(ctx context.Context) (*Result, error) {
	n := h.cfg.Workflows
	runs := make([]*run, n)
	for i := range runs {
		runs[i] = &run{plan: newPlan(i, h.ledger.URL())}
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
	h.logf("starting %d workflows over %s, a kill every ~%s", n, h.cfg.Duration, h.cfg.KillEvery)
	interval := h.cfg.Duration / time.Duration(n)
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
	res := &Result{Workflows: n, Kills: kills}
	killMu.Unlock()
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

// drive starts one workflow (retrying with the same request id), signals
// it when it has a wait, and polls it until it closes or ctx ends.
func (h *Harness) drive(ctx context.Context, r *run, c *counters, polls chan struct{}) {
	p := r.plan
	input, err := structpb.NewValue(p.input)
	if err != nil {
		r.startErr = err
		return
	}
	r.startErr = retryWhile(ctx, retryable, func(ctx context.Context) error {
		_, err := h.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: p.definition, WorkflowId: p.id, RequestId: "start-" + p.id, Input: input}))
		if err != nil {
			c.startRetries.Add(1)
		}
		return err
	})
	if r.startErr != nil {
		return
	}
	r.started = true

	// get reads the workflow; NotFound after a successful start counts as
	// a transient answer (noted) and is retried.
	get := func(ctx context.Context) (*weftv1.Workflow, error) {
		select {
		case polls <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-polls }()
		var wf *weftv1.Workflow
		err := retryWhile(ctx, func(err error) bool {
			if connect.CodeOf(err) == connect.CodeNotFound {
				c.notFoundStarts.Add(1)
				return true
			}
			return retryable(err)
		}, func(ctx context.Context) error {
			resp, err := h.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: p.id}))
			if err == nil {
				wf = resp.Msg.Workflow
			}
			return err
		})
		return wf, err
	}

	if p.signal != nil {
		r.signalErr = h.signal(ctx, r, c, get)
	}
	wait := 2 * time.Second
	if p.shape == shapeWait {
		wait = 3 * time.Second
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wf, err := get(ctx)
		if err != nil {
			continue
		}
		r.final = wf
		if closedStatus(wf.Status) {
			return
		}
	}
}

// signal sends the wait shape's signal: at once, or once GetWorkflow shows
// the wait step WAITING.
func (h *Harness) signal(ctx context.Context, r *run, c *counters, get func(context.Context) (*weftv1.Workflow, error)) error {
	p := r.plan
	if !p.signalEarly {
		for waiting := false; !waiting; {
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for step %s to wait: %w", waitStep, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
			wf, err := get(ctx)
			if err != nil {
				continue
			}
			if closedStatus(wf.Status) {
				r.final = wf
				return errClosedEarly
			}
			for _, s := range wf.Steps {
				if s.Path == waitStep && s.Status == weftv1.StepStatus_STEP_STATUS_WAITING {
					waiting = true
				}
			}
		}
	}
	payload, err := structpb.NewValue(p.signal)
	if err != nil {
		return err
	}
	tries := 0
	return retryWhile(ctx, func(err error) bool {
		if connect.CodeOf(err) == connect.CodeNotFound {
			c.notFoundStarts.Add(1)
			return true
		}
		return retryable(err)
	}, func(ctx context.Context) error {
		tries++
		_, err := h.wf.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{
			WorkflowId: p.id, Name: "go", Payload: payload, RequestId: "signal-" + p.id}))
		if err != nil {
			c.signalRetries.Add(1)
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

func closedStatus(s weftv1.WorkflowStatus) bool {
	return s != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING && s != weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED
}
