package workflow

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// Status is a workflow's lifecycle state.
type Status string

// Workflow statuses.
const (
	StatusRunning   Status = "RUNNING"
	StatusCompleted Status = "COMPLETED"
	StatusFailed    Status = "FAILED"
	StatusCanceled  Status = "CANCELED"
)

// StatusSuspended is how a running workflow with a suspended step is shown
// (State.Shown); State.Status stays StatusRunning.
const StatusSuspended Status = "SUSPENDED"

// StatusQueued is how a running workflow that waits for a slot of its
// definition's concurrency is shown (State.Shown); State.Status stays
// StatusRunning.
const StatusQueued Status = "QUEUED"

// Terminal reports whether the status is final.
func (s Status) Terminal() bool {
	return s != StatusRunning && s != StatusSuspended && s != StatusQueued && s != ""
}

// StepStatus is a step's lifecycle state. A step that has not started has
// no entry in State.Steps (or, in histories redriven by earlier releases,
// an entry with StepPending).
type StepStatus string

// Step statuses.
const (
	StepPending   StepStatus = ""
	StepRunning   StepStatus = "RUNNING"
	StepWaiting   StepStatus = "WAITING"
	StepCompleted StepStatus = "COMPLETED"
	StepFailed    StepStatus = "FAILED"
	StepCanceled  StepStatus = "CANCELED"
	StepSkipped   StepStatus = "SKIPPED"
	// StepSuspended: a task that ran out of attempts under a retry policy
	// that says suspend; it runs again, with fresh attempts, on a resume.
	StepSuspended StepStatus = "SUSPENDED"
)

// Step is the folded state of one step, addressed by its path: its id,
// prefixed by the iterations of enclosing loops, e.g. "lines[3].charge".
type Step struct {
	Path   string
	Kind   string
	Task   string
	Status StepStatus
	// Gen counts the step's schedulings; results must name the current one.
	Gen int
	// Attempts is the highest attempt number recorded.
	Attempts  int
	LastError *events.Error
	Output    any
	Started   time.Time
	Closed    time.Time

	// Wait and sleep steps.
	Signal    string
	TimerID   string
	TimeoutAt time.Time
	TimedOut  bool
	// TimedOutAt is the history index of the TimerFired event that timed
	// the step out (0: none): a wait takes no signal received after it.
	TimedOutAt int

	// Containers: the chosen switch case, a foreach's items, a repeat's iteration.
	Case      int
	Items     []any
	Iteration int
	// IterBase is a repeat's first iteration that counts against its
	// max_iterations (a redrive gives it a fresh budget).
	IterBase int
	// ChildID is a workflow step's child workflow; Task holds its
	// definition, ChildRevision the revision it starts on (0: the latest
	// when it starts) and ChildInput its input.
	ChildID       string
	ChildRevision int
	ChildInput    any

	// Searched: the step's search attributes were recorded since it last
	// completed (a step whose definition has none never is).
	Searched bool

	// Suspend: the task's retry policy suspends it when it runs out of
	// attempts, instead of failing it, unless a catch of it handles the
	// error: one of type in Caught, or any with CatchAll.
	Suspend  bool
	Caught   []string
	CatchAll bool
	// HeldFor says why the running task's attempt waits, unstarted, for
	// its flow control (concurrency or rate_limit), HeldDetail how; empty
	// when it does not.
	HeldFor    string
	HeldDetail string

	// Rerun marks a step that was failed or canceled when the workflow was
	// last redriven: when a decision reaches it, it runs again from its
	// start, or resumes if it is a container. A decision that never
	// reaches it (its failure was handled by a catch or on_error: continue
	// of a step that completed) leaves it as it is.
	Rerun bool
	// Late marks a failed step whose failure was recorded after the
	// workflow had closed (a child or task that ended after a workflow
	// timeout): no catch had a chance to take it, so a redrive hands it to
	// its catch, if one matches, rather than running it again.
	Late bool
}

// container reports whether the step holds steps that it resumes when
// reopened, rather than running again from its start.
func (s *Step) container() bool {
	switch s.Kind {
	case "switch", "foreach", "parallel", "repeat", "timeout_steps":
		return true
	}
	return false
}

// Done reports whether the step finished (completed or skipped).
func (s *Step) Done() bool { return s.Status == StepCompleted || s.Status == StepSkipped }

// Signal is a received signal; Consumed once a wait took it.
type Signal struct {
	// Seq is the history index of its SignalReceived event.
	Seq      int
	Name     string
	Payload  any
	Consumed bool
}

// State is a workflow folded from its history. Only Apply changes it.
type State struct {
	ID         string
	Definition string
	Revision   int
	Input      any
	RequestID  string
	Parent     *events.ParentRef
	// StartedBy is who started the workflow: its WorkflowStarted event's
	// Identity (empty in histories recorded before identities were).
	StartedBy string
	// Trace is the run's recorded trace context (WorkflowStarted.Trace).
	Trace string
	// Suspended counts the steps suspended since the last resume: while
	// there are any, nothing but a cancel or the workflow's timeout is
	// decided (see Shown).
	Suspended int

	Status    Status
	Output    any
	Error     *events.Error
	ErrorPath string

	// Steps by path; Order lists paths in the order they started.
	Steps map[string]*Step
	Order []string
	// outputs holds finished steps' outputs by path prefix, then id, so
	// expressions find "steps.<id>" in the innermost scope cheaply.
	outputs map[string]map[string]any

	// Vars holds the values set steps assigned.
	Vars map[string]any

	// Search holds the search attributes recorded so far by name, each the
	// last value set: strings, int64s, float64s, bools and UTC
	// time.Times; nil when none was.
	Search map[string]any
	// SearchChanges counts the SearchAttributesSet events applied: Search
	// changed when it did.
	SearchChanges int
	// StartSearched: the definition's search attributes were recorded
	// (the first decision does, when the definition has any).
	StartSearched bool

	Signals []*Signal
	// signalIDs holds the request ids of received signals: a repeat is ignored.
	signalIDs map[string]bool
	// requestIDs holds the request ids of the cancels, retries and
	// resumes recorded, as kind/id: a repeat is answered as done.
	requestIDs map[string]bool

	// TimeoutTimerID is the workflow timeout's timer, once scheduled.
	TimeoutTimerID string
	TimeoutAt      time.Time
	TimedOut       bool

	CancelRequested bool
	CancelReason    string

	// Queued: the run is under its definition's concurrency, with key
	// QueueKey; it begins once Admitted (it holds a slot). AdmitChecks
	// counts the timers that look at its slot again while it waits, the
	// pending one AdmitTimerID, due at AdmitAt.
	Queued       bool
	QueueKey     string
	Admitted     bool
	AdmitChecks  int
	AdmitTimerID string
	AdmitAt      time.Time

	// Retries counts redrives.
	Retries int
	// Superseded holds child steps as they were when a redrive started
	// them again under a new child id, skipped or failed them, while
	// their child was to be canceled (the step was CANCELED): that child
	// is canceled all the same (Abandoned), though its step no longer
	// names it or is no longer CANCELED.
	Superseded []*Step
	// Expired: the run's retention ran out and its deletion began
	// (WorkflowExpired); it is not retried again.
	Expired bool

	Created time.Time
	Closed  time.Time
	// Now is the time of the last applied event: decisions use it, never the clock.
	Now time.Time
	// Events counts applied events: the history index of the last one.
	Events int
	// LastSeq is the stream sequence of the last applied record (set by the caller).
	LastSeq uint64
	// Bytes is about the state's size, for caches that bound their memory:
	// the size of the snapshot it was restored from, if any, and of the
	// records folded into it since (set by the caller, as LastSeq). Not
	// part of a snapshot.
	Bytes int64 `msgpack:"-"`
	// FirstSeq is the stream sequence of the run's first record (set by the
	// caller; 0: not known): a command of an earlier run of this id
	// (deleted by retention) is older.
	FirstSeq uint64

	// loops remembers which iterations of each foreach have finished, and
	// how far they have started, as decisions find out: derived from the
	// steps, kept so a decision need not look at every item again. Only a
	// redrive (which reopens failed steps) clears it.
	loops map[string]*loopProgress
}

// loopProgress is what decisions learned about one foreach.
type loopProgress struct {
	n     int
	done  []bool
	out   []any
	ndone int
	// low: iterations below it have all finished; next: iterations from
	// it on have not started (those before it may, after a redrive).
	low, next int
}

// loop returns the progress of the foreach at path over n items; fresh
// says nothing was learned about it yet.
func (st *State) loop(path string, n int) (m *loopProgress, fresh bool) {
	m = st.loops[path]
	if m == nil || m.n != n {
		if st.loops == nil {
			st.loops = map[string]*loopProgress{}
		}
		m = &loopProgress{n: n, done: make([]bool, n), out: make([]any, n)}
		st.loops[path] = m
		fresh = true
	}
	return m, fresh
}

// finish records iteration i's outcome.
func (m *loopProgress) finish(i int, out any) {
	if !m.done[i] {
		m.done[i], m.out[i] = true, out
		m.ndone++
	}
}

// ErrInvalidHistory is returned (wrapped) when events cannot follow each other.
var ErrInvalidHistory = errors.New("invalid history")

// Fold builds a state from a whole history.
func Fold(evs []events.Event) (*State, error) {
	st := &State{}
	for _, e := range evs {
		if err := st.Apply(e); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// splitPath returns a path's prefix (ending in "." or empty) and step id.
func splitPath(path string) (prefix, id string) {
	i := strings.LastIndexByte(path, '.')
	return path[:i+1], path[i+1:]
}

func (st *State) setOutput(path string, out any) {
	prefix, id := splitPath(path)
	m := st.outputs[prefix]
	if m == nil {
		m = map[string]any{}
		st.outputs[prefix] = m
	}
	m[id] = out
}

func (st *State) clearOutput(path string) {
	prefix, id := splitPath(path)
	delete(st.outputs[prefix], id)
}

// Apply folds one event into the state. Events that no longer matter (a
// signal after completion) are recorded in the counters and otherwise ignored.
func (st *State) Apply(e events.Event) error {
	if st.Events == 0 && e.Type != events.TypeWorkflowStarted {
		return fmt.Errorf("%w: history starts with %s", ErrInvalidHistory, e.Type)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidHistory, err)
	}
	st.Events++
	if e.Time.After(st.Now) {
		st.Now = e.Time
	}
	return st.dispatch(e)
}

// dispatch hands a validated event to the method for its type.
func (st *State) dispatch(e events.Event) error {
	t := e.Time
	switch e.Type {
	case events.TypeWorkflowStarted:
		return st.workflowStarted(e.WorkflowStarted, e.Identity, t)
	case events.TypeStepScheduled:
		st.stepScheduled(e.StepScheduled, t)
	case events.TypeStepAttemptFailed:
		st.stepAttemptFailed(e.StepAttemptFailed, t)
	case events.TypeStepCompleted:
		st.stepCompleted(e.StepCompleted, t)
	case events.TypeStepFailed:
		st.stepFailed(e.StepFailed, t)
	case events.TypeWaitStarted:
		st.waitStarted(e.WaitStarted, t)
	case events.TypeSignalReceived:
		st.signalReceived(e.SignalReceived)
	case events.TypeTimerFired:
		st.timerFired(e.TimerFired)
	case events.TypeCancelRequested:
		st.sawRequest("cancel", e.CancelRequested.RequestID)
		st.cancelRequested(e.CancelRequested)
	case events.TypeWorkflowCompleted:
		st.close(StatusCompleted, t)
		st.Output = e.WorkflowCompleted.Output
	case events.TypeWorkflowFailed:
		st.workflowFailed(e.WorkflowFailed, t)
	case events.TypeWorkflowCanceled:
		st.workflowCanceled(t)
	case events.TypeStepStarted:
		st.stepStarted(e.StepStarted, t)
	case events.TypeStepSkipped:
		st.stepSkipped(e.StepSkipped, t)
	case events.TypeStepIterated:
		if s := st.Steps[e.StepIterated.Path]; s != nil {
			s.Iteration = e.StepIterated.Iteration
		}
	case events.TypeTimerScheduled:
		st.timerScheduled(e.TimerScheduled, t)
	case events.TypeChildStarted:
		st.childStarted(e.ChildStarted, t)
	case events.TypeStepCanceled:
		st.stepCanceled(e.StepCanceled, t)
	case events.TypeStepReopened:
		st.stepReopened(e.StepReopened)
	case events.TypeWorkflowRetried:
		st.sawRequest("retry", e.WorkflowRetried.RequestID)
		st.workflowRetried()
	case events.TypeStepSuspended:
		st.stepSuspended(e.StepSuspended, e.Time)
	case events.TypeWorkflowResumed:
		st.sawRequest("resume", e.WorkflowResumed.RequestID)
		st.workflowResumed()
	case events.TypeWorkflowExpired:
		st.Expired = true
	case events.TypeStepHeld:
		if s := st.Steps[e.StepHeld.Path]; s != nil && s.Status == StepRunning && s.Gen == e.StepHeld.Gen {
			s.HeldFor, s.HeldDetail = e.StepHeld.Reason, e.StepHeld.Detail
		}
	case events.TypeWorkflowQueued:
		if st.Status == StatusRunning {
			st.Queued, st.QueueKey = true, e.WorkflowQueued.Key
		}
	case events.TypeWorkflowAdmitted:
		if st.Status == StatusRunning && st.Queued {
			st.Admitted, st.AdmitTimerID = true, ""
		}
	case events.TypeSearchAttributesSet:
		st.searchAttributesSet(e.SearchAttributesSet)
	default:
		return fmt.Errorf("%w: unknown event type %q", ErrInvalidHistory, e.Type)
	}
	return nil
}

func (st *State) workflowStarted(p *events.WorkflowStarted, who string, t time.Time) error {
	if st.Events != 1 {
		return fmt.Errorf("%w: second WorkflowStarted at index %d", ErrInvalidHistory, st.Events)
	}
	st.ID, st.Definition, st.Revision, st.Input, st.RequestID = p.WorkflowID, p.Definition, p.Revision, p.Input, p.RequestID
	st.StartedBy = who
	st.Parent = p.Parent
	st.Trace = p.Trace
	st.Status = StatusRunning
	st.Created = t
	st.Steps = map[string]*Step{}
	st.outputs = map[string]map[string]any{}
	st.Vars = map[string]any{}
	return nil
}

func (st *State) stepScheduled(p *events.StepScheduled, t time.Time) {
	s := st.step(p.Path, t)
	s.Kind, s.Task, s.Status, s.Gen, s.Rerun, s.Suspend = "task", p.Task, StepRunning, p.Gen, false, p.Retry.Suspend
	s.HeldFor, s.HeldDetail = "", ""
	s.Caught, s.CatchAll = p.Caught, p.CatchAll
	s.Output, s.LastError, s.Closed = nil, nil, time.Time{}
}

func (st *State) stepAttemptFailed(p *events.StepAttemptFailed, t time.Time) {
	s := st.step(p.Path, t)
	s.HeldFor, s.HeldDetail = "", ""
	s.Attempts = max(s.Attempts, p.Attempt)
	errv := p.Error
	s.LastError = &errv
}

func (st *State) stepCompleted(p *events.StepCompleted, t time.Time) {
	s := st.step(p.Path, t)
	out := p.Output
	if out == nil && p.Vars != nil {
		// A set step's output is the values it set.
		m := make(map[string]any, len(p.Vars))
		for k, v := range p.Vars {
			m[k] = v
		}
		out = m
	}
	s.Status, s.Output, s.Closed, s.Rerun, s.Searched = StepCompleted, out, t, false, false
	s.HeldFor, s.HeldDetail = "", ""
	s.Attempts = max(s.Attempts, p.Attempt)
	st.setOutput(p.Path, out)
	if p.SignalSeq > 0 {
		for _, sig := range st.Signals {
			if sig.Seq == p.SignalSeq {
				sig.Consumed = true
			}
		}
	}
	for k, v := range p.Vars {
		st.Vars[k] = v
	}
}

// searchAttributesSet records search attributes, replacing earlier values
// of the same names, and marks where they came from as recorded.
func (st *State) searchAttributesSet(p *events.SearchAttributesSet) {
	if p.Path == "" {
		st.StartSearched = true
	} else if s := st.Steps[p.Path]; s != nil {
		s.Searched = true
	}
	if st.Search == nil {
		st.Search = make(map[string]any, len(p.Attributes))
	}
	for k, v := range p.Attributes {
		st.Search[k] = v
	}
	st.SearchChanges++
}

func (st *State) stepFailed(p *events.StepFailed, t time.Time) {
	s := st.step(p.Path, t)
	st.supersede(s)
	s.Status, s.Closed, s.Rerun, s.Late = StepFailed, t, false, st.Status.Terminal()
	s.HeldFor, s.HeldDetail = "", ""
	s.Attempts = max(s.Attempts, p.Attempt)
	errv := p.Error
	s.LastError = &errv
}

func (st *State) waitStarted(p *events.WaitStarted, t time.Time) {
	s := st.step(p.Path, t)
	s.Kind, s.Status, s.Signal, s.TimerID, s.TimeoutAt, s.TimedOut, s.TimedOutAt = "wait", StepWaiting, p.Signal, p.TimerID, p.TimeoutAt, false, 0
	s.Output, s.LastError, s.Closed, s.Rerun = nil, nil, time.Time{}, false
	s.Gen++
}

// sawRequest records that a request of kind (cancel, retry, resume) with
// request id reqID, if it named one, was recorded.
func (st *State) sawRequest(kind, reqID string) {
	if reqID == "" {
		return
	}
	if st.requestIDs == nil {
		st.requestIDs = map[string]bool{}
	}
	st.requestIDs[kind+"/"+reqID] = true
}

// signalReceived records a signal unless its request id was seen before.
func (st *State) signalReceived(p *events.SignalReceived) {
	if p.RequestID != "" {
		if st.signalIDs[p.RequestID] {
			return
		}
		if st.signalIDs == nil {
			st.signalIDs = map[string]bool{}
		}
		st.signalIDs[p.RequestID] = true
	}
	st.Signals = append(st.Signals, &Signal{Seq: st.Events, Name: p.Name, Payload: p.Payload})
}

// timerFired marks the workflow, or the waiting step, whose timer fired as
// timed out; a stale timer changes nothing.
func (st *State) timerFired(p *events.TimerFired) {
	if p.Path == "" && p.TimerID == st.AdmitTimerID {
		st.AdmitTimerID = ""
		return
	}
	if p.Path == "" {
		if p.TimerID == st.TimeoutTimerID {
			st.TimedOut = true
		}
	} else if s := st.Steps[p.Path]; s != nil && s.TimerID == p.TimerID && s.Status == StepWaiting {
		s.TimedOut, s.TimedOutAt = true, st.Events
	}
}

func (st *State) cancelRequested(p *events.CancelRequested) {
	if st.Status == StatusRunning {
		st.CancelRequested = true
		st.CancelReason = p.Reason
	}
}

func (st *State) workflowFailed(p *events.WorkflowFailed, t time.Time) {
	st.close(StatusFailed, t)
	errv := p.Error
	st.Error, st.ErrorPath = &errv, p.Path
}

// workflowCanceled closes the workflow and cancels its open steps.
func (st *State) workflowCanceled(t time.Time) {
	st.close(StatusCanceled, t)
	for _, s := range st.Steps {
		if s.Status == StepRunning || s.Status == StepWaiting || s.Status == StepSuspended {
			s.Status, s.Closed = StepCanceled, t
		}
	}
	st.Suspended = 0
}

func (st *State) stepStarted(p *events.StepStarted, t time.Time) {
	s := st.step(p.Path, t)
	s.Kind, s.Status, s.Case, s.Items, s.Iteration, s.IterBase = p.Kind, StepRunning, p.Case, p.Items, 0, 0
	s.Output, s.LastError, s.Closed, s.Rerun = nil, nil, time.Time{}, false
	delete(st.loops, p.Path) // a loop that starts (again) has no progress yet
}

func (st *State) stepSkipped(p *events.StepSkipped, t time.Time) {
	s := st.step(p.Path, t)
	st.supersede(s)
	s.Status, s.Closed, s.Rerun = StepSkipped, t, false
	st.setOutput(s.Path, nil)
}

// timerScheduled sets the workflow timeout (empty path) or starts a sleep.
func (st *State) timerScheduled(p *events.TimerScheduled, t time.Time) {
	if p.Path == "" && strings.HasPrefix(p.TimerID, admissionTimerPrefix) {
		st.AdmitChecks++
		st.AdmitTimerID, st.AdmitAt = p.TimerID, p.Due
		return
	}
	if p.Path == "" {
		st.TimeoutTimerID, st.TimeoutAt, st.TimedOut = p.TimerID, p.Due, false
		return
	}
	s := st.step(p.Path, t)
	s.Kind, s.Status, s.TimerID, s.TimeoutAt, s.TimedOut = "sleep", StepWaiting, p.TimerID, p.Due, false
	s.Output, s.LastError, s.Closed, s.Rerun = nil, nil, time.Time{}, false
	s.Gen++
}

func (st *State) childStarted(p *events.ChildStarted, t time.Time) {
	s := st.step(p.Path, t)
	if s.ChildID != p.WorkflowID {
		st.supersede(s)
	}
	s.Kind, s.Status, s.Gen, s.ChildID = "workflow", StepRunning, p.Gen, p.WorkflowID
	s.Task, s.ChildRevision, s.ChildInput = p.Definition, p.Revision, p.Input
	s.Output, s.LastError, s.Closed, s.Rerun = nil, nil, time.Time{}, false
}

// supersede keeps s in st.Superseded when it is a CANCELED child step
// about to leave that status (a redrive started it again under a new
// child id, skipped it or failed it): its child is canceled all the same.
func (st *State) supersede(s *Step) {
	if s.ChildID != "" && s.Status == StepCanceled {
		st.Superseded = append(st.Superseded, &Step{Path: s.Path, Kind: s.Kind, Task: s.Task, Status: s.Status, Gen: s.Gen,
			Started: s.Started, Closed: s.Closed, ChildID: s.ChildID, ChildRevision: s.ChildRevision, ChildInput: s.ChildInput})
	}
}

func (st *State) stepCanceled(p *events.StepCanceled, t time.Time) {
	if s := st.Steps[p.Path]; s != nil && (s.Status == StepRunning || s.Status == StepWaiting) {
		s.Status, s.Closed, s.Rerun = StepCanceled, t, false
	}
}

func (st *State) stepReopened(p *events.StepReopened) {
	if s := st.Steps[p.Path]; s != nil {
		s.Status, s.LastError, s.Closed, s.Rerun = StepRunning, nil, time.Time{}, false
		if s.Kind == "repeat" {
			s.IterBase = p.BudgetFrom
		}
		st.clearOutput(p.Path)
	}
}

// workflowRetried reopens a failed workflow; otherwise it changes nothing.
func (st *State) workflowRetried() {
	if st.Status != StatusFailed || st.Expired {
		return
	}
	st.loops = nil // failed iterations may run again
	st.Status, st.Error, st.ErrorPath, st.Closed = StatusRunning, nil, "", time.Time{}
	st.Retries++
	// Failed steps, and those their failure canceled, run again when
	// the decisions that follow reach them: they reach what the
	// failure went through, not what a catch or on_error: continue of
	// a completed step handled.
	for _, path := range st.Order {
		s := st.Steps[path]
		if s.Status == StepSuspended { // the workflow failed while it was suspended
			s.Status = StepFailed
		}
		if s.Status == StepFailed || s.Status == StepCanceled {
			s.Rerun = true
		}
	}
	st.Suspended = 0
	// A redrive gets a fresh workflow timeout, and a queued run waits for
	// a slot again: it gave its own back when it failed.
	st.TimedOut, st.TimeoutTimerID = false, ""
	st.Admitted, st.AdmitTimerID = false, ""
}

func (st *State) stepSuspended(p *events.StepSuspended, t time.Time) {
	s := st.step(p.Path, t)
	if s.Status != StepSuspended {
		st.Suspended++
	}
	s.Status, s.Closed, s.Rerun = StepSuspended, t, false
	s.Attempts = max(s.Attempts, p.Attempt)
	errv := p.Error
	s.LastError = &errv
}

// workflowResumed gives each suspended step a fresh run: it starts again,
// its attempts counted on from where they stopped, when the decisions that
// follow reach it, as a redrive runs a failed step again.
func (st *State) workflowResumed() {
	if st.Suspended == 0 {
		return
	}
	st.loops = nil // a suspended iteration starts again
	for _, path := range st.Order {
		if s := st.Steps[path]; s.Status == StepSuspended {
			s.Status, s.Closed, s.Rerun = StepFailed, time.Time{}, true
		}
	}
	st.Suspended = 0
}

// Shown returns the status the workflow is shown with: StatusSuspended
// for a running workflow that has a suspended step, else Status.
func (st *State) Shown() Status {
	switch {
	case st.Status != StatusRunning:
	case st.Queued && !st.Admitted:
		return StatusQueued
	case st.Suspended > 0:
		return StatusSuspended
	}
	return st.Status
}

func (st *State) close(s Status, t time.Time) {
	st.Status, st.Closed = s, t
}

func (st *State) step(path string, t time.Time) *Step {
	s := st.Steps[path]
	if s == nil {
		s = &Step{Path: path, Started: t}
		st.Steps[path] = s
		st.Order = append(st.Order, path)
	}
	if s.Started.IsZero() {
		s.Started = t
	}
	return s
}

// TimerID returns the id of a step's timer in its gen-th waiting: a valid
// NATS subject token.
func TimerID(path string, gen int) string {
	r := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_")
	return fmt.Sprintf("t%d_%s", gen, r.Replace(path))
}

// admissionTimerPrefix starts the ids of the timers that look at a queued
// run's slot again.
const admissionTimerPrefix = "admission_"

// AdmissionTimerID returns the id of a queued run's n-th timer that looks
// at its slot again.
func AdmissionTimerID(n int) string { return fmt.Sprintf("%s%d", admissionTimerPrefix, n) }

// IsAdmissionTimer reports whether a timer id is one of AdmissionTimerID.
func IsAdmissionTimer(id string) bool { return strings.HasPrefix(id, admissionTimerPrefix) }

// admissionWait is how long a queued run waits before its n-th look at
// its slot (counting from 0): 5 s doubling to 2 min, and 30 min from the
// admissionFastLooks-th look on (after about a day). A run of its key
// closing admits the next at once; these looks are the safety net. Each
// adds two events to the run's history: every 2 min for good, a run
// queued for 69 days passed the history limit (100,000 events by
// default) and failed without having begun. Now it takes years.
func admissionWait(n int) time.Duration {
	if n >= admissionFastLooks {
		return 30 * time.Minute
	}
	return min(5*time.Second<<min(n, 5), 2*time.Minute)
}

// admissionFastLooks is how many looks a queued run makes at its slot at
// most 2 min apart: about a day's worth (5 s doubling to 2 min is 155 s
// for the first five). They are counted over the run's life: a redriven
// run that waited a day before goes on at 30 min.
const admissionFastLooks = 725

// WorkflowTimeoutTimerID is the id of the workflow timeout's timer after
// retries redrives.
func WorkflowTimeoutTimerID(retries int) string {
	return fmt.Sprintf("workflow_timeout_%d", retries)
}
