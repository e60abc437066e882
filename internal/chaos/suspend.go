package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/joinnext"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// The suspended shape: a step whose calls the ledger refuses runs out of
// attempts under retry { exhausted: suspend }, which suspends it and its
// run; the harness resumes the run once the ledger accepts the calls.

// resume waits until the plan's step is SUSPENDED, and its run with it;
// then it sends the plan's signals, lets the ledger accept the step's
// calls and resumes the run. A step whose fresh attempts all meet the
// ledger's injected failures is suspended anew, and resumed again, until
// the run closes.
func (d *driver) resume(ctx context.Context, r *run) error {
	p, s := r.plan, r.plan.suspend
	seen := 0 // the step's attempts when it was last resumed
	for round := 1; ; round++ {
		wf, err := d.watch(ctx, p.id, true, fmt.Sprintf("step %s of %s to be suspended", s.step, p.id), func(wf *weftv1.Workflow) bool {
			st := stepOf(wf, s.step)
			return wf.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED &&
				st.GetStatus() == weftv1.StepStatus_STEP_STATUS_SUSPENDED && int(st.GetAttempts()) > seen
		})
		switch {
		case err != nil:
			return err
		case closedStatus(wf.Status) && round == 1:
			return fmt.Errorf("%w (%s %s before its step %s was suspended)", errClosedEarly, p.id, wf.Status, s.step)
		case closedStatus(wf.Status):
			return nil
		}
		if round == 1 {
			r.suspendedView = suspendedView(wf, s)
			if why := d.h.doctorWaits(ctx, p.id); why != "" {
				r.suspendedView = strings.TrimPrefix(r.suspendedView+"; doctor: "+why, "; ")
			}
			for _, sig := range p.signals {
				if r.signalErr = d.signal(ctx, r, sig); r.signalErr != nil {
					return nil
				}
			}
			d.h.ledger.Release(p.key(s.step))
		}
		if err := d.resumeOnce(ctx, p.id, round); err != nil {
			return err
		}
		r.resumes = round
		seen = int(stepOf(wf, s.step).GetAttempts())
	}
}

// doctorWait bounds the time the stuck and drift detector has to find a
// suspended run waiting; doctorWaitFailing bounds it while its checks
// fail.
const (
	doctorWait        = 30 * time.Second
	doctorWaitFailing = 3 * doctorWait
)

// doctorWaits runs the stuck and drift detector, without a grace period,
// until it finds run id waiting, with no finding, and returns ""; or,
// when doctorWait passes first, what it found last ("" when it never
// answered). The checks are the harness's shared ones (doctorChecks).
// While the checks fail (NATS in trouble, whose writes the listing waits
// for too), it goes on looking for up to doctorWaitFailing: a finding
// the checks could not look at again is not yet one that stayed.
func (h *Harness) doctorWaits(ctx context.Context, id string) string {
	begun := time.Now()
	ctx, cancel := context.WithTimeout(ctx, doctorWaitFailing)
	defer cancel()
	// What the last check that answered said of the run, and why the
	// checks after it failed, if they did.
	answer, failed := "", ""
	err := poll(ctx, time.Second, func() (bool, error) {
		if failed == "" && time.Since(begun) > doctorWait {
			cancel()
			return false, nil
		}
		rep, err := h.checks.check(ctx)
		if err != nil {
			failed = err.Error()
			return false, nil
		}
		failed = ""
		i := slices.IndexFunc(rep.Runs, func(r doctor.Run) bool { return r.ID == id })
		if i < 0 {
			answer = "it does not list the run"
			return false, nil
		}
		r := rep.Runs[i]
		answer = fmt.Sprintf("verdict %s, findings %v, movers %v", r.Verdict, r.Findings, r.Movers)
		return r.Verdict == doctor.Waiting && len(r.Findings) == 0, nil
	})
	if err == nil || answer == "" {
		// A check that never answered (a long run's thousands of runs
		// under kills) says nothing of this one: the check at the end
		// looks at every run again.
		return ""
	}
	if failed != "" {
		return answer + " (the checks after it failed: " + failed + ")"
	}
	return answer
}

// doctorChecks runs the detector for every driver that asks, one check at
// a time shared by the callers waiting (joinnext), over a store of its
// own. Each check reads every run, thousands under load: a check for each
// suspended run at once, every second, made the cluster too slow to
// answer any of them in time.
type doctorChecks struct {
	open  func(context.Context) (*nats.Conn, *eventstore.Store, error)
	calls joinnext.Calls[*doctor.Report]

	mu     sync.Mutex // guards what follows
	nc     *nats.Conn
	store  *eventstore.Store
	closed bool
}

// init readies the checks, opening their store with open when first run.
func (d *doctorChecks) init(open func(context.Context) (*nats.Conn, *eventstore.Store, error)) {
	d.open = open
	d.calls = joinnext.Calls[*doctor.Report]{Fn: d.run, Timeout: 2 * doctorWait}
}

// check returns the report of a check that began after the call did.
func (d *doctorChecks) check(ctx context.Context) (*doctor.Report, error) {
	return d.calls.Do(ctx)
}

// run makes one check, opening the store first if need be.
func (d *doctorChecks) run(ctx context.Context) (*doctor.Report, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("the harness is closed")
	}
	if d.store == nil {
		nc, store, err := d.open(ctx)
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		d.nc, d.store = nc, store
	}
	store := d.store
	d.mu.Unlock()
	return doctor.Check(ctx, store, doctor.Options{Grace: time.Nanosecond, All: true})
}

// close closes the checks' connection; a check still running fails.
func (d *doctorChecks) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.nc != nil {
		d.nc.Close()
	}
}

// resumeOnce calls ResumeWorkflow for the round'th suspension of workflow
// id, retrying transient failures. Every try names the same request: one
// whose answer was lost and that was taken is answered OK, even once the
// run suspended again.
func (d *driver) resumeOnce(ctx context.Context, id string, round int) error {
	return retryWhile(ctx, retryable, func(ctx context.Context) error {
		_, err := d.h.wf.ResumeWorkflow(ctx, connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: id, Reason: "chaos",
			RequestId: fmt.Sprintf("resume-%s-%d", id, round)}))
		return err
	})
}

// suspendedNote says how often the harness resumed the runs of the
// suspended shape, or returns "" when there are none.
func suspendedNote(runs []*run) string {
	n, resumes, again := 0, 0, 0
	for _, r := range runs {
		if r.plan.suspend != nil && r.started {
			n, resumes, again = n+1, resumes+r.resumes, again+btoi(r.resumes > 1)
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("suspended: %d runs resumed %d times (%d suspended again after a resume)", n, resumes, again)
}

// stepOf returns the step of wf at path, or nil.
func stepOf(wf *weftv1.Workflow, path string) *weftv1.StepState {
	for _, s := range wf.GetSteps() {
		if s.Path == path {
			return s
		}
	}
	return nil
}

// suspendedView says what a run first read SUSPENDED shows otherwise than
// it must (its step suspended after the planned attempts, with their last
// error, and no other step started), or returns "".
func suspendedView(wf *weftv1.Workflow, s *suspendSpec) string {
	var wrong []string
	for _, st := range wf.Steps {
		switch {
		case st.Path == s.step && (int(st.Attempts) != s.attempts || st.GetLastError().GetMessage() == ""):
			wrong = append(wrong, fmt.Sprintf("step %s suspended after %d attempts (last error %v), want %d",
				st.Path, st.Attempts, st.GetLastError(), s.attempts))
		case st.Path != s.step && st.Status != weftv1.StepStatus_STEP_STATUS_PENDING:
			wrong = append(wrong, fmt.Sprintf("step %s is %s", st.Path, st.Status))
		}
	}
	return strings.Join(wrong, "; ")
}

// checkSuspended checks the history of a run of the suspended shape: its
// step suspended first after the planned attempts; each StepSuspended
// followed by a WorkflowResumed, with nothing but signals recorded in
// between; after each resume the step scheduled again from the attempt
// after the suspended one, and completed at a later attempt than the last
// suspension; the plan's signals received while it was first suspended;
// and the ledger refused the key at least for the attempts that suspended
// it. It returns a line per problem.
func checkSuspended(p *plan, hist []*weftv1.HistoryEvent, ledger map[string]KeyCount) []string {
	s := p.suspend
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	var suspendedAt []int // the attempt of each StepSuspended
	suspended, resumes, next, completed := false, 0, 0, false
	firstSuspended, firstResumed := -1, -1
	signaled := map[string]int{} // signal name -> index of its SignalReceived
	for i, ev := range hist {
		mine := ev.StepPath == s.step
		switch {
		case ev.Type == "StepSuspended" && mine:
			if n := len(suspendedAt); n == 0 && int(ev.Attempt) != s.attempts {
				bad("step %s first suspended at attempt %d, want %d", s.step, ev.Attempt, s.attempts)
			} else if n > 0 && int(ev.Attempt) <= suspendedAt[n-1] {
				bad("step %s suspended at attempt %d after attempt %d", s.step, ev.Attempt, suspendedAt[n-1])
			}
			if firstSuspended < 0 {
				firstSuspended = i
			}
			suspendedAt, suspended = append(suspendedAt, int(ev.Attempt)), true
		case ev.Type == "WorkflowResumed":
			if !suspended {
				bad("resumed at sequence %d while not suspended", ev.Sequence)
			}
			if firstResumed < 0 {
				firstResumed = i
			}
			suspended, resumes = false, resumes+1
			if n := len(suspendedAt); n > 0 {
				next = suspendedAt[n-1] + 1
			}
		case ev.Type == "SignalReceived":
			name, _ := ev.Data.GetStructValue().AsMap()["name"].(string)
			signaled[name] = i
		case suspended:
			bad("%s of %q at sequence %d while the run was suspended", ev.Type, ev.StepPath, ev.Sequence)
		case ev.Type == "StepScheduled" && mine && next > 0:
			if int(ev.Attempt) != next {
				bad("step %s scheduled after the resume from attempt %d, want %d", s.step, ev.Attempt, next)
			}
			next = 0
		case ev.Type == "StepCompleted" && mine:
			completed = true
			if n := len(suspendedAt); n == 0 || int(ev.Attempt) <= suspendedAt[n-1] {
				bad("step %s completed at attempt %d, after suspensions at attempts %v", s.step, ev.Attempt, suspendedAt)
			}
		}
	}
	switch {
	case len(suspendedAt) == 0:
		bad("step %s never suspended", s.step)
	case resumes != len(suspendedAt):
		bad("step %s suspended %d times and resumed %d times", s.step, len(suspendedAt), resumes)
	case !completed:
		bad("step %s never completed after its resume", s.step)
	}
	for _, sig := range p.signals {
		if i, ok := signaled[sig.name]; !ok || i < firstSuspended || firstResumed >= 0 && i > firstResumed {
			bad("signal %s not received between the step's first suspension and the first resume", sig.name)
		}
	}
	if kc := ledger[p.key(s.step)]; kc.Refused < s.attempts {
		bad("the ledger refused step %s %d times; it was suspended after %d attempts", s.step, kc.Refused, s.attempts)
	}
	return out
}
