package definition

import (
	"fmt"
	"strings"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// Kind says what a step does.
type Kind string

// Step kinds of the first language slice.
const (
	KindTask Kind = "task"
	KindWait Kind = "wait"
)

// Defaults applied to task steps that leave them out.
const (
	DefaultTimeout            = 5 * time.Minute
	DefaultMaxAttempts        = 3
	DefaultInitialInterval    = time.Second
	DefaultBackoffCoefficient = 2.0
	DefaultMaxInterval        = time.Minute
)

// Definition is a compiled, immutable workflow definition.
type Definition struct {
	// Name identifies the definition; revisions share it.
	Name string
	// Steps run in order.
	Steps []*Step
	// Output computes the workflow's output. It is nil when the definition
	// has no output field, which means the last step's output; an explicit
	// output: null is a template that yields null.
	Output *Template
}

// Step is one compiled step.
type Step struct {
	// ID is unique within the definition.
	ID string
	// Kind is what the step does.
	Kind Kind
	// Task is the task type (KindTask).
	Task string
	// Input is the task's input template (KindTask); nil means null input.
	Input *Template
	// Retry is the task's retry policy with defaults filled in (KindTask).
	Retry events.RetryPolicy
	// Timeout bounds one attempt, start to close (KindTask).
	Timeout time.Duration
	// Wait is set for KindWait.
	Wait *Wait
}

// Wait describes a wait step.
type Wait struct {
	// Signal is the signal name that completes the wait.
	Signal string
	// Timeout fails the step when no signal came in time; 0 waits forever.
	Timeout time.Duration
}

// Scope is what expressions see when they are evaluated.
type Scope struct {
	// Input is the workflow's input.
	Input any
	// Steps maps a finished step's id to its output.
	Steps map[string]any
	// WorkflowID is workflow.id.
	WorkflowID string
	// Now is workflow.now: the time of the event being decided.
	Now time.Time
}

// Problem is one thing wrong with a definition.
type Problem struct {
	// Step is the step id (or "steps[2]" when it has none); empty for
	// workflow-level problems.
	Step string
	// Field is the field path inside the step or definition, e.g. "retry.max_attempts".
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

// Error lists every problem found in a definition.
type Error struct {
	Problems []Problem
}

// Error implements error, listing every problem in one message.
func (e *Error) Error() string {
	if len(e.Problems) == 0 {
		return "invalid definition"
	}
	var b strings.Builder
	b.WriteString("invalid definition: ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// String renders the problem as `step "id": field "f": message`.
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Step == "":
	case strings.HasPrefix(p.Step, "steps["):
		b.WriteString(p.Step + ": ")
	default:
		fmt.Fprintf(&b, "step %q: ", p.Step)
	}
	if p.Field != "" {
		fmt.Fprintf(&b, "field %q: ", p.Field)
	}
	b.WriteString(p.Message)
	return b.String()
}

// EvalError is a failure to evaluate a template's expression at run time,
// e.g. a missing map key or an exceeded cost limit.
type EvalError struct {
	// Field is the template field holding the expression, e.g. "input.body.to".
	Field string
	// Err is the evaluation error.
	Err error
}

// Error implements error.
func (e *EvalError) Error() string {
	return "evaluate " + e.Field + ": " + e.Err.Error()
}

// Unwrap returns the evaluation error.
func (e *EvalError) Unwrap() error { return e.Err }

// Step returns the step with the given id, or nil.
func (d *Definition) Step(id string) *Step {
	if i := d.Index(id); i >= 0 {
		return d.Steps[i]
	}
	return nil
}

// Index returns the position of the step with the given id in d.Steps, or -1.
func (d *Definition) Index(id string) int {
	for i, s := range d.Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}
