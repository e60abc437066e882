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

// Terminal reports whether the status is final.
func (s Status) Terminal() bool { return s != StatusRunning && s != "" }

// StepStatus is a step's lifecycle state. A step that has not started has
// no entry in State.Steps (it is pending).
type StepStatus string

// Step statuses.
const (
	StepRunning   StepStatus = "RUNNING"
	StepWaiting   StepStatus = "WAITING"
	StepCompleted StepStatus = "COMPLETED"
	StepFailed    StepStatus = "FAILED"
	StepCanceled  StepStatus = "CANCELED"
)

// Step is the folded state of one step, addressed by its path.
type Step struct {
	Path   string
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

	// Wait steps.
	Signal    string
	TimerID   string
	TimeoutAt time.Time
	TimedOut  bool
}

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

	Status    Status
	Output    any
	Error     *events.Error
	ErrorPath string

	// Steps by path; Order lists paths in the order they started.
	Steps map[string]*Step
	Order []string

	Signals []*Signal
	// signalIDs holds the request ids of received signals: a repeat is ignored.
	signalIDs map[string]bool

	CancelRequested bool
	CancelReason    string

	Created time.Time
	Closed  time.Time
	// Now is the time of the last applied event: decisions use it, never the clock.
	Now time.Time
	// Events counts applied events: the history index of the last one.
	Events int
	// LastSeq is the stream sequence of the last applied record (set by the caller).
	LastSeq uint64
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
	switch e.Type {
	case events.TypeWorkflowStarted:
		if st.Events != 1 {
			return fmt.Errorf("%w: second WorkflowStarted at index %d", ErrInvalidHistory, st.Events)
		}
		p := e.WorkflowStarted
		st.ID, st.Definition, st.Revision, st.Input, st.RequestID = p.WorkflowID, p.Definition, p.Revision, p.Input, p.RequestID
		st.Status = StatusRunning
		st.Created = e.Time
		st.Steps = map[string]*Step{}
	case events.TypeStepScheduled:
		p := e.StepScheduled
		s := st.step(p.Path)
		s.Task, s.Status, s.Gen = p.Task, StepRunning, p.Gen
		s.Output, s.LastError, s.Closed = nil, nil, time.Time{}
		if s.Started.IsZero() {
			s.Started = e.Time
		}
	case events.TypeStepAttemptFailed:
		p := e.StepAttemptFailed
		s := st.step(p.Path)
		s.Attempts = max(s.Attempts, p.Attempt)
		errv := p.Error
		s.LastError = &errv
	case events.TypeStepCompleted:
		p := e.StepCompleted
		s := st.step(p.Path)
		s.Status, s.Output, s.Closed = StepCompleted, p.Output, e.Time
		s.Attempts = max(s.Attempts, p.Attempt)
		if s.Started.IsZero() {
			s.Started = e.Time
		}
		if p.SignalSeq > 0 {
			for _, sig := range st.Signals {
				if sig.Seq == p.SignalSeq {
					sig.Consumed = true
				}
			}
		}
	case events.TypeStepFailed:
		p := e.StepFailed
		s := st.step(p.Path)
		s.Status, s.Closed = StepFailed, e.Time
		s.Attempts = max(s.Attempts, p.Attempt)
		errv := p.Error
		s.LastError = &errv
		if s.Started.IsZero() {
			s.Started = e.Time
		}
	case events.TypeWaitStarted:
		p := e.WaitStarted
		s := st.step(p.Path)
		s.Status, s.Signal, s.TimerID, s.TimeoutAt = StepWaiting, p.Signal, p.TimerID, p.TimeoutAt
		s.Started = e.Time
	case events.TypeSignalReceived:
		p := e.SignalReceived
		if p.RequestID != "" {
			if st.signalIDs[p.RequestID] {
				return nil
			}
			if st.signalIDs == nil {
				st.signalIDs = map[string]bool{}
			}
			st.signalIDs[p.RequestID] = true
		}
		st.Signals = append(st.Signals, &Signal{Seq: st.Events, Name: p.Name, Payload: p.Payload})
	case events.TypeTimerFired:
		p := e.TimerFired
		if s := st.Steps[p.Path]; s != nil && s.TimerID == p.TimerID && s.Status == StepWaiting {
			s.TimedOut = true
		}
	case events.TypeCancelRequested:
		if st.Status == StatusRunning {
			st.CancelRequested = true
			st.CancelReason = e.CancelRequested.Reason
		}
	case events.TypeWorkflowCompleted:
		st.close(StatusCompleted, e.Time)
		st.Output = e.WorkflowCompleted.Output
	case events.TypeWorkflowFailed:
		st.close(StatusFailed, e.Time)
		errv := e.WorkflowFailed.Error
		st.Error, st.ErrorPath = &errv, e.WorkflowFailed.Path
	case events.TypeWorkflowCanceled:
		st.close(StatusCanceled, e.Time)
		for _, s := range st.Steps {
			if s.Status == StepRunning || s.Status == StepWaiting {
				s.Status, s.Closed = StepCanceled, e.Time
			}
		}
	default:
		return fmt.Errorf("%w: unknown event type %q", ErrInvalidHistory, e.Type)
	}
	return nil
}

func (st *State) close(s Status, t time.Time) {
	st.Status, st.Closed = s, t
}

func (st *State) step(path string) *Step {
	s := st.Steps[path]
	if s == nil {
		s = &Step{Path: path}
		st.Steps[path] = s
		st.Order = append(st.Order, path)
	}
	return s
}

// TimerID returns the id of the timer a wait step at path uses: a valid
// NATS subject token.
func TimerID(path string) string {
	r := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_")
	return "wait_" + r.Replace(path)
}
