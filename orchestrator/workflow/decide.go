package workflow

import (
	"errors"
	"fmt"
	"time"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
)

// Error types Weft itself assigns.
const (
	ErrTypeExpression = "expression"
	ErrTypeTimeout    = "timeout"
)

// maxDecisions bounds the events one Advance may produce.
const maxDecisions = 10000

// Decide returns the events that follow from st under def, or none when
// the workflow must wait for something outside (a result, a signal, a timer).
// It is pure and deterministic: the same state gives the same events, with
// times taken from st.Now.
func Decide(st *State, def *definition.Definition) []events.Event {
	if st.Status != StatusRunning {
		return nil
	}
	if st.CancelRequested {
		return []events.Event{st.event(events.Event{Type: events.TypeWorkflowCanceled,
			WorkflowCanceled: &events.WorkflowCanceled{Reason: st.CancelReason}})}
	}
	for _, step := range def.Steps {
		s := st.Steps[step.ID]
		if s == nil {
			return []events.Event{st.start(step, def)}
		}
		switch s.Status {
		case StepCompleted:
			continue
		case StepFailed:
			errv := events.Error{Message: "step failed"}
			if s.LastError != nil {
				errv = *s.LastError
			}
			errv.Message = fmt.Sprintf("step %s: %s", s.Path, errv.Message)
			return []events.Event{st.event(events.Event{Type: events.TypeWorkflowFailed,
				WorkflowFailed: &events.WorkflowFailed{Error: errv, Path: s.Path}})}
		case StepWaiting:
			if sig := st.pendingSignal(s.Signal); sig != nil {
				return []events.Event{st.event(events.Event{Type: events.TypeStepCompleted,
					StepCompleted: &events.StepCompleted{Path: s.Path, Output: sig.Payload, SignalSeq: sig.Seq}})}
			}
			if s.TimedOut {
				return []events.Event{st.event(events.Event{Type: events.TypeStepFailed,
					StepFailed: &events.StepFailed{Path: s.Path, Error: events.Error{Type: ErrTypeTimeout,
						Message: fmt.Sprintf("no %q signal before %s", s.Signal, s.TimeoutAt.Format("2006-01-02T15:04:05Z07:00"))}}})}
			}
			return nil
		default: // running (or canceled, which only happens once the workflow closed)
			return nil
		}
	}
	out, err := st.output(def)
	if err != nil {
		return []events.Event{st.event(events.Event{Type: events.TypeWorkflowFailed,
			WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: ErrTypeExpression,
				Message: "output: " + err.Error()}}})}
	}
	return []events.Event{st.event(events.Event{Type: events.TypeWorkflowCompleted,
		WorkflowCompleted: &events.WorkflowCompleted{Output: out}})}
}

// Advance decides and applies until the workflow waits on the outside,
// and returns the new events in order (already applied to st).
func Advance(st *State, def *definition.Definition) ([]events.Event, error) {
	var out []events.Event
	for {
		evs := Decide(st, def)
		if len(evs) == 0 {
			return out, nil
		}
		for _, e := range evs {
			if err := st.Apply(e); err != nil {
				return nil, fmt.Errorf("apply decided %s: %w", e.Type, err)
			}
		}
		out = append(out, evs...)
		if len(out) > maxDecisions {
			return nil, errors.New("decision loop did not settle")
		}
	}
}

func (st *State) event(e events.Event) events.Event {
	e.Time = st.Now
	return e
}

// Scope returns the expression scope for the state.
func (st *State) Scope() definition.Scope {
	steps := make(map[string]any, len(st.Steps))
	for path, s := range st.Steps {
		if s.Status == StepCompleted {
			steps[path] = s.Output
		}
	}
	return definition.Scope{Input: st.Input, Steps: steps, WorkflowID: st.ID, Now: st.Now}
}

func (st *State) start(step *definition.Step, def *definition.Definition) events.Event {
	path := step.ID
	switch step.Kind {
	case definition.KindWait:
		w := &events.WaitStarted{Path: path, Signal: step.Wait.Signal}
		if step.Wait.Timeout > 0 {
			w.TimeoutAt = st.Now.Add(step.Wait.Timeout)
			w.TimerID = TimerID(path)
		}
		return st.event(events.Event{Type: events.TypeWaitStarted, WaitStarted: w})
	default:
		in, err := step.Input.Eval(st.Scope())
		if err != nil {
			return st.event(events.Event{Type: events.TypeStepFailed, StepFailed: &events.StepFailed{Path: path,
				Error: events.Error{Type: ErrTypeExpression, Message: err.Error()}}})
		}
		gen := 1
		if s := st.Steps[path]; s != nil {
			gen = s.Gen + 1
		}
		return st.event(events.Event{Type: events.TypeStepScheduled, StepScheduled: &events.StepScheduled{
			Path: path, Gen: gen, Task: step.Task, Input: in, Retry: step.Retry, Timeout: step.Timeout,
			IdempotencyKey: st.ID + "/" + path, FirstAttempt: 1,
		}})
	}
}

func (st *State) pendingSignal(name string) *Signal {
	for _, sig := range st.Signals {
		if !sig.Consumed && sig.Name == name {
			return sig
		}
	}
	return nil
}

func (st *State) output(def *definition.Definition) (any, error) {
	if def.Output != nil {
		return def.Output.Eval(st.Scope())
	}
	if n := len(def.Steps); n > 0 {
		if s := st.Steps[def.Steps[n-1].ID]; s != nil {
			return s.Output, nil
		}
	}
	return nil, nil
}

// AcceptResult returns the event recording executor result r, or false
// when r no longer applies (a duplicate, or a step that moved on).
func AcceptResult(st *State, r events.Result) (events.Event, bool) {
	if st.Status != StatusRunning {
		return events.Event{}, false
	}
	s := st.Steps[r.Path]
	if s == nil || s.Status != StepRunning || s.Gen != r.Gen {
		return events.Event{}, false
	}
	if r.Outcome == events.OutcomeAttemptFailed && r.Attempt <= s.Attempts {
		return events.Event{}, false
	}
	return r.Event(), true
}

// AcceptTimer returns the event recording that timer t fired, or false
// when it no longer applies. due reports whether the timer is due at now;
// when it is not, the caller should wait until t.Due.
func AcceptTimer(st *State, t events.TimerDue, now time.Time) (ev events.Event, ok, due bool) {
	if st.Status != StatusRunning {
		return events.Event{}, false, true
	}
	s := st.Steps[t.Path]
	if s == nil || s.Status != StepWaiting || s.TimerID != t.TimerID || s.TimedOut {
		return events.Event{}, false, true
	}
	if now.Before(s.TimeoutAt) {
		return events.Event{}, false, false
	}
	return events.Event{Type: events.TypeTimerFired, Time: now,
		TimerFired: &events.TimerFired{TimerID: t.TimerID, Path: t.Path, Due: s.TimeoutAt}}, true, true
}
