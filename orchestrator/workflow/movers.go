package workflow

import (
	"fmt"
	"time"
)

// MoverKind is a kind of thing that moves a running workflow on.
type MoverKind string

// Mover kinds.
const (
	// MoverTask is a step command in flight: its result will come.
	MoverTask MoverKind = "task"
	// MoverChild is a child workflow running: its outcome will come.
	MoverChild MoverKind = "child"
	// MoverTimer is a timer scheduled: a sleep, a wait's timeout or the
	// workflow's timeout.
	MoverTimer MoverKind = "timer"
	// MoverSignal is a wait for a signal without a timeout: only the
	// signal moves it.
	MoverSignal MoverKind = "signal"
	// MoverCancel is a cancel requested: an orchestrator will act on it.
	MoverCancel MoverKind = "cancel"
	// MoverResume is a step suspended when it ran out of attempts: only a
	// resume (or a cancel) moves it.
	MoverResume MoverKind = "resume"
)

// Mover is one thing that will move a running workflow on.
type Mover struct {
	Kind MoverKind `json:"kind"`
	// Path is the step's path; empty for the workflow's timeout and a cancel.
	Path string `json:"path,omitempty"`
	// Task is a task step's type or a child step's definition.
	Task string `json:"task,omitempty"`
	// Gen is the step's scheduling (task and child steps).
	Gen     int    `json:"gen,omitempty"`
	ChildID string `json:"child_id,omitempty"`
	// TimerID and Due are a timer's; a wait with a timeout also has Signal.
	TimerID string    `json:"timer_id,omitempty"`
	Due     time.Time `json:"due,omitzero"`
	Signal  string    `json:"signal,omitempty"`
}

// String describes m for people.
func (m Mover) String() string {
	switch m.Kind {
	case MoverTask:
		return fmt.Sprintf("step %s: task %s in flight", m.Path, m.Task)
	case MoverChild:
		return fmt.Sprintf("step %s: child workflow %s running", m.Path, m.ChildID)
	case MoverTimer:
		due := m.Due.UTC().Format(time.RFC3339)
		switch {
		case m.Path == "" && IsAdmissionTimer(m.TimerID):
			return fmt.Sprintf("queued for a slot of its definition's concurrency; looks again at %s", due)
		case m.Path == "":
			return fmt.Sprintf("workflow timeout due %s", due)
		case m.Signal != "":
			return fmt.Sprintf("step %s: waiting for signal %q, timeout due %s", m.Path, m.Signal, due)
		}
		return fmt.Sprintf("step %s: sleeping until %s", m.Path, due)
	case MoverSignal:
		return fmt.Sprintf("step %s: waiting for signal %q", m.Path, m.Signal)
	case MoverCancel:
		return "cancel requested"
	case MoverResume:
		return fmt.Sprintf("step %s: suspended, waiting for a resume", m.Path)
	}
	return string(m.Kind)
}

// Movers lists what will move st on while it is running: its task steps
// in flight, children running, timers scheduled and not yet fired, waits
// for signals, suspended steps, and a requested cancel, in the order their steps started
// (the workflow's timeout and a cancel last). It returns nil for a state
// that is not running. A running state with no movers moves only if
// Decide still has events for it.
func Movers(st *State) []Mover {
	if st.Status != StatusRunning {
		return nil
	}
	var out []Mover
	for _, path := range st.Order {
		s := st.Steps[path]
		switch {
		case s.Status == StepRunning && s.Kind == "task":
			out = append(out, Mover{Kind: MoverTask, Path: path, Task: s.Task, Gen: s.Gen})
		case s.Status == StepRunning && s.Kind == "workflow":
			out = append(out, Mover{Kind: MoverChild, Path: path, Task: s.Task, Gen: s.Gen, ChildID: s.ChildID})
		case s.Status == StepWaiting && s.TimerID != "":
			if !s.TimedOut {
				out = append(out, Mover{Kind: MoverTimer, Path: path, TimerID: s.TimerID, Due: s.TimeoutAt, Signal: s.Signal})
			}
		case s.Status == StepWaiting && s.Kind == "wait":
			out = append(out, Mover{Kind: MoverSignal, Path: path, Signal: s.Signal})
		case s.Status == StepSuspended:
			out = append(out, Mover{Kind: MoverResume, Path: path, Task: s.Task})
		}
	}
	if st.AdmitTimerID != "" {
		out = append(out, Mover{Kind: MoverTimer, TimerID: st.AdmitTimerID, Due: st.AdmitAt})
	}
	if st.TimeoutTimerID != "" && !st.TimedOut {
		out = append(out, Mover{Kind: MoverTimer, TimerID: st.TimeoutTimerID, Due: st.TimeoutAt})
	}
	if st.CancelRequested {
		out = append(out, Mover{Kind: MoverCancel})
	}
	return out
}

// InFlight reports whether st has a task or child step running: its result
// will come to an orchestrator by itself.
func InFlight(st *State) bool {
	for _, s := range st.Steps {
		if s.Status == StepRunning && (s.Kind == "task" || s.Kind == "workflow") {
			return true
		}
	}
	return false
}

// Abandoned reports whether st no longer needs the child workflow of its
// step s: the step was canceled, or the workflow completed or was
// canceled while the step ran. Such a child is to be canceled (a failed
// workflow keeps its children: a redrive may still need them). The
// steps in st.Superseded are all abandoned.
func Abandoned(st *State, s *Step) bool {
	return s.ChildID != "" && (s.Status == StepCanceled ||
		s.Status == StepRunning && (st.Status == StatusCompleted || st.Status == StatusCanceled))
}

// AbandonedSteps returns the child steps whose child st no longer needs,
// to be canceled: those of st.Superseded, then the Abandoned ones of
// st.Steps in the order they started.
func AbandonedSteps(st *State) []*Step {
	out := append([]*Step(nil), st.Superseded...)
	for _, path := range st.Order {
		if s := st.Steps[path]; Abandoned(st, s) {
			out = append(out, s)
		}
	}
	return out
}
