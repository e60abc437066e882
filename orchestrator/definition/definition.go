package definition

import (
	"fmt"
	"strings"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// Kind says what a step does.
type Kind string

// Step kinds.
const (
	KindTask     Kind = "task"
	KindWait     Kind = "wait"
	KindSwitch   Kind = "switch"
	KindForeach  Kind = "foreach"
	KindParallel Kind = "parallel"
	KindSleep    Kind = "sleep"
	KindSet      Kind = "set"
	KindRepeat   Kind = "repeat"
	KindWorkflow Kind = "workflow"
	KindFail     Kind = "fail"
	KindSucceed  Kind = "succeed"
)

// Defaults of the control-flow step kinds.
const (
	DefaultForeachConcurrency = 10
	DefaultForeachAs          = "item"
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
	// Timeout bounds the whole run (timeout:); 0 is none.
	Timeout time.Duration
	// Retry is the workflow's default retry policy (retry:), already
	// applied to task steps without their own; nil when not given.
	Retry *events.RetryPolicy
	// Children lists the definitions started by workflow steps.
	Children []string
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

	// If skips the step when it evaluates to false; nil runs it always.
	If *Expr
	// Catch handles the step's failure: the first clause whose Errors
	// match the error type runs instead of failing (in order).
	Catch []*Catch

	// Exactly one of these is set, matching Kind (none for task and wait).
	Switch   *Switch
	Foreach  *Foreach
	Parallel *Parallel
	Sleep    *Sleep
	Set      []*SetVar
	Repeat   *Repeat
	Workflow *Child
	Fail     *Fail
	Succeed  *Succeed
}

// Expr is a compiled CEL expression, given bare or as one ${ }.
type Expr struct {
	// Source is the expression text as written.
	Source string
	tmpl   *Template
}

// Eval evaluates the expression.
func (e *Expr) Eval(s Scope) (any, error) {
	if e == nil {
		return nil, nil
	}
	return e.tmpl.Eval(s)
}

// Catch is one catch clause.
type Catch struct {
	// Errors lists the error types it handles; empty handles all.
	Errors []string
	// Do runs in place of the failed step; its last output becomes the step's output.
	Do []*Step
}

// Case is one switch branch.
type Case struct {
	If   *Expr
	Then []*Step
}

// Switch runs the steps of the first case whose If is true, else Default.
type Switch struct {
	Cases   []*Case
	Default []*Step
}

// Foreach runs Do once per item of Items.
type Foreach struct {
	Items *Expr
	// As names the item variable (default DefaultForeachAs); "index" holds its position.
	As string
	// Concurrency bounds iterations in flight (default DefaultForeachConcurrency).
	Concurrency int
	// Filter skips items for which it is false; nil keeps all.
	Filter *Expr
	Do     []*Step
	// ContinueOnError (on_error: continue) keeps going when an iteration
	// fails; its slot in the output holds the error.
	ContinueOnError bool
}

// Parallel runs its branches at once.
type Parallel struct {
	// Branches sorted by name.
	Branches []*Branch
	// ContinueOnError (on_error: continue) lets other branches finish when one fails.
	ContinueOnError bool
}

// Branch is one named branch of a parallel step.
type Branch struct {
	Name  string
	Steps []*Step
}

// Sleep waits for Duration, or until the timestamp Until evaluates to.
type Sleep struct {
	Duration time.Duration
	Until    *Expr
}

// SetVar sets vars.Name to Value.
type SetVar struct {
	Name  string
	Value *Expr
}

// Repeat runs Do until Until is true after an iteration, at most MaxIterations times.
type Repeat struct {
	Do            []*Step
	Until         *Expr
	MaxIterations int
}

// Child starts a child workflow of Definition (its latest revision) and
// waits for its output.
type Child struct {
	Definition string
	Input      *Template
}

// Fail ends the workflow as failed.
type Fail struct {
	Message *Template
	Type    string
}

// Succeed ends the workflow as completed.
type Succeed struct {
	Output *Template
}

// Wait describes a wait step.
type Wait struct {
	// Signal is the signal name that completes the wait.
	Signal string
	// Timeout fails the step when no signal came in time; 0 waits forever.
	Timeout time.Duration
	// TimeoutSteps run instead of failing when the timeout passes.
	TimeoutSteps []*Step
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
	// Vars holds values set by set steps (vars.<name>).
	Vars map[string]any
	// Locals are the variables of enclosing foreach iterations and repeat
	// loops: the item variable (as), "index" and "iteration".
	Locals map[string]any
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
