package definition

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/santhosh-tekuri/jsonschema/v6"

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

// MaxSignalName bounds a signal name, in bytes: what a wait step waits for
// and what SignalWorkflow takes.
const MaxSignalName = 256

// ValidSignalName reports whether a wait step can wait for a signal of
// this name: letters, digits, _ and -, in parts separated by single dots,
// at most MaxSignalName bytes. A signal of any other name is never taken.
func ValidSignalName(name string) bool {
	return len(name) <= MaxSignalName && symbolRE.MatchString(name)
}

// Defaults of the control-flow step kinds.
const (
	DefaultForeachConcurrency = 10
	// MaxForeachConcurrency is the most iterations of a foreach in flight
	// at once; a larger concurrency counts as this. Every decision of a
	// running loop looks at each iteration in flight, and the decision
	// that starts them does so once per iteration it starts: a loop that
	// started 100,000 at once would keep its orchestrator's shard busy for
	// most of an hour.
	MaxForeachConcurrency = 1000
	DefaultForeachAs      = "item"
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
	// Retention is how long a run is kept once it closed (retention:);
	// 0 leaves it to the server's default.
	Retention time.Duration
	// Retry is the workflow's default retry policy (retry:), already
	// applied to task steps without their own; nil when not given.
	Retry *events.RetryPolicy
	// Children lists the definitions started by workflow steps, sorted,
	// each once.
	Children []string
	// Triggers start workflows of this definition from outside events.
	Triggers []*Trigger
	// Search sets the run's search attributes when it starts, by name;
	// nil when not given. Its expressions see what the first step's do.
	Search []*SearchAttr

	// Concurrency bounds the runs of the definition that run at once, per
	// key (concurrency:); nil when not given.
	Concurrency *RunConcurrency

	// InputSchema is the input_schema as written (a normalized JSON
	// Schema object), or nil; CheckInput checks inputs against it.
	InputSchema map[string]any
	inputSchema *jsonschema.Schema

	// byID maps every step id, nested steps included, to its step.
	byID map[string]*Step
	// newOnly holds the problems CheckNew reports.
	newOnly []Problem
}

// CheckNew reports what a definition put now may not have, though one an
// earlier version stored may and still loads, so that its runs go on as
// they did: a constant that breaks the rule for values (a whole number
// beyond ±2^53, a string that is not UTF-8), or that YAML reads as other
// than what is written (a number it rounds or takes for text, a tag it
// ignores, a number YAML 1.1 and 1.2 read apart). The error is an
// *Error, as Parse's.
func (d *Definition) CheckNew() error {
	if len(d.newOnly) == 0 {
		return nil
	}
	return &Error{Problems: d.newOnly}
}

// TriggerKind says what starts a workflow.
type TriggerKind string

// Trigger kinds.
const (
	TriggerSubject TriggerKind = "subject"
	TriggerCron    TriggerKind = "cron"
	TriggerWebhook TriggerKind = "webhook"
)

// Trigger is one compiled trigger. Expressions see event (the decoded JSON
// payload; null for cron), headers (map of string to string), subject (the
// NATS subject, "webhook" or "cron") and, for cron, tick (the tick's time).
type Trigger struct {
	Kind TriggerKind
	// Key identifies the trigger within its definition: a short hash of its
	// own text, stable while that text is unchanged; a valid NATS token.
	Key string
	// Subject is the NATS subject or wildcard (TriggerSubject).
	Subject string
	// Cron is the schedule as written: 5 fields, or 6 with seconds first
	// (TriggerCron); Schedule is it parsed, in Location (default UTC). A
	// schedule with specific hours fires once at a time of day that
	// daylight saving repeats, and at the jump for one it skips.
	Cron     string
	Schedule cron.Schedule
	Location *time.Location
	// Catchup starts the ticks missed while Weft was down instead of skipping them.
	Catchup bool
	// Webhook is the name in POST /hooks/<name> (TriggerWebhook).
	Webhook string
	// SecretEnv names the environment variable holding the webhook's
	// HMAC-SHA256 secret; empty accepts unsigned deliveries.
	SecretEnv string
	// Filter skips events for which it is false; nil keeps all.
	Filter *Expr
	// ID computes the workflow id; nil derives it from the event's identity.
	ID *Template
	// Input computes the workflow input; nil passes the event itself (null for cron).
	Input *Template
}

// StepLimit is a task step's concurrency (Limit attempts in flight per key)
// or rate limit (Limit attempts started per key in each period Per).
type StepLimit struct {
	// Key is evaluated once, when the step starts; nil puts every
	// attempt of the step under one key.
	Key   *Expr
	Limit int
	// Per is a rate limit's period (0 for a concurrency).
	Per time.Duration
}

// RunConcurrency bounds the runs of a definition that run at once per
// key: a run beyond Limit for its key is queued, and begins, in start
// order, when a run of that key closes.
type RunConcurrency struct {
	// Key is evaluated once, when the run starts, over its input; nil
	// puts every run under one key.
	Key *Expr
	// Limit is how many runs of a key run at once (at least 1).
	Limit int
}

// Step is one compiled step.
type Step struct {
	// ID is unique within the definition, nested steps included.
	ID string
	// Kind is what the step does.
	Kind Kind
	// Task is the task type (KindTask).
	Task string
	// Input is the task's input template (KindTask); nil means null input.
	Input *Template
	// Retry is the task's retry policy (KindTask): its own retry with the
	// package defaults filled in, else the workflow's retry (Definition.Retry),
	// else the package defaults.
	Retry events.RetryPolicy
	// Timeout bounds one attempt, start to close (KindTask).
	Timeout time.Duration
	// Concurrency bounds the task's attempts in flight per key, across
	// runs, and RateLimit the attempts started per key per period
	// (KindTask); nil when not given.
	Concurrency *StepLimit
	RateLimit   *StepLimit
	// Wait is set for KindWait.
	Wait *Wait

	// If skips the step when it evaluates to false; nil runs it always.
	// Like all of a step's expressions and templates, it sees the loop
	// variables of the loops around the step (a foreach or repeat step's
	// own variables only in its body, filter and until).
	If *Expr
	// Catch handles the step's failure: the first clause whose Errors
	// match the error type runs instead of failing (in order).
	Catch []*Catch
	// Search sets search attributes of the run each time the step
	// completes, by name; nil when not given. Its expressions see what
	// the steps after it see: the step's own output too.
	Search []*SearchAttr

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
	// Source is the expression text as written (with its ${ } if it had
	// one); "true" or "false" for a constant if.
	Source string
	tmpl   *Template
}

// Eval evaluates the expression in scope s and returns its value in
// normalized form (see eventstore/value), whether it was written bare or as
// ${ }: never interpolated into a string. Timestamps come back as RFC 3339
// strings. A nil *Expr evaluates to nil. Evaluation failures are
// *EvalError, whose Field names the expression's field (e.g. "if",
// "switch[1].if", "set.count").
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
	// Do runs in place of the failed step; its last output becomes the
	// step's output. It may be empty: the failure is then swallowed.
	Do []*Step
}

// Case is one switch branch.
type Case struct {
	// If selects the case.
	If *Expr
	// Then runs when If is the first true case; it may be empty.
	Then []*Step
}

// Switch runs the steps of the first case whose If is true, else Default.
type Switch struct {
	// Cases are tried in order; there is at least one.
	Cases []*Case
	// Default runs when no case holds; nil when not given or empty.
	Default []*Step
}

// Foreach runs Do once per item of Items.
type Foreach struct {
	// Items yields the list to iterate over. It sees the loop variables of
	// enclosing loops, not its own.
	Items *Expr
	// As names the item variable (default DefaultForeachAs); "index" holds its position.
	As string
	// Concurrency bounds iterations in flight (default DefaultForeachConcurrency).
	Concurrency int
	// Filter skips items for which it is false; nil keeps all. It sees As
	// and index.
	Filter *Expr
	// Do runs for each item; it sees As and index. Never empty.
	Do []*Step
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
	// Name is the branch's key under branches.
	Name string
	// Steps run in order; never empty.
	Steps []*Step
}

// Sleep waits for Duration, or until the timestamp Until evaluates to.
// Exactly one of them is set.
type Sleep struct {
	// Duration is positive when set.
	Duration time.Duration
	// Until yields a timestamp (evaluated as an RFC 3339 string).
	Until *Expr
}

// SetVar sets vars.Name to Value.
type SetVar struct {
	// Name is a valid CEL identifier.
	Name string
	// Value yields the variable's new value.
	Value *Expr
}

// Repeat runs Do until Until is true after an iteration, at most MaxIterations times.
type Repeat struct {
	// Do runs once per iteration; it sees "iteration", counting from 0.
	// Never empty.
	Do []*Step
	// Until is evaluated after each iteration, seeing that iteration's
	// "iteration"; unlike other expressions of a step it may read the
	// outputs of the steps in Do.
	Until *Expr
	// MaxIterations is between 1 and 100000.
	MaxIterations int
}

// Child starts a child workflow of Definition (its latest revision) and
// waits for its output.
type Child struct {
	// Definition is the child definition's name.
	Definition string
	// Input is the child's input template; nil means null input.
	Input *Template
}

// Fail ends the workflow as failed.
type Fail struct {
	// Message yields the error message (any value; not necessarily a string).
	Message *Template
	// Type is the error type (default "fail").
	Type string
}

// Succeed ends the workflow as completed.
type Succeed struct {
	// Output yields the workflow's output; nil when not given.
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
	// Trigger holds event, headers, subject and tick for trigger expressions.
	Trigger map[string]any
	// Vars holds values set by set steps (vars.<name>).
	Vars map[string]any
	// Locals are the variables of enclosing foreach iterations and repeat
	// loops: the item variable (as), "index" and "iteration".
	Locals map[string]any
	// Budget, when set, is shared by the evaluations of one decision,
	// which together may cost at most MaxDecisionCost.
	Budget *Budget
}

// MaxDecisionCost bounds the CEL cost of all the evaluations of one
// decision: each evaluation is held to DefaultCostLimit, but a decision
// may evaluate many (a foreach's filter once per item, of up to 262,144).
const MaxDecisionCost = 50 * DefaultCostLimit

// ErrDecisionCost is what an evaluation fails with (errors.Is) once the
// evaluations of its decision passed MaxDecisionCost.
var ErrDecisionCost = errors.New("the expressions of one decision passed their cost limit")

// Budget counts the cost of the evaluations of one decision.
type Budget struct{ used uint64 }

// Exhausted reports whether the evaluations counted passed MaxDecisionCost.
func (b *Budget) Exhausted() bool { return b != nil && b.used > MaxDecisionCost }

// Problem is one thing wrong with a definition.
type Problem struct {
	// Step is the step id, or its position when it has no valid id
	// ("steps[2]", "steps[2].do[0]"), or the position of a trigger
	// ("triggers[0]"); empty for workflow-level problems.
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

// String renders the problem as `step "id": field "f": message`, or with
// a position (`triggers[0]: field "f": message`).
func (p Problem) String() string {
	var b strings.Builder
	switch {
	case p.Step == "":
	case strings.HasPrefix(p.Step, "steps["), strings.HasPrefix(p.Step, "triggers["):
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

// Step returns the step with the given id, at any depth, or nil.
func (d *Definition) Step(id string) *Step {
	if d.byID != nil {
		return d.byID[id]
	}
	for s := range d.All() {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Index returns the position of the top-level step with the given id in
// d.Steps, or -1 (also for a nested step).
func (d *Definition) Index(id string) int {
	for i, s := range d.Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// All yields every step of the definition, nested steps included, in
// document order: each step before the steps nested in it (see Nested).
func (d *Definition) All() iter.Seq[*Step] {
	return func(yield func(*Step) bool) {
		walk(d.Steps, yield)
	}
}

// Signals returns the names of the signals the definition's wait steps
// wait for, sorted, each once.
func (d *Definition) Signals() []string {
	var names []string
	for s := range d.All() {
		if s.Kind == KindWait && s.Wait != nil && !slices.Contains(names, s.Wait.Signal) {
			names = append(names, s.Wait.Signal)
		}
	}
	slices.Sort(names)
	return names
}

func walk(steps []*Step, yield func(*Step) bool) bool {
	for _, s := range steps {
		if !yield(s) {
			return false
		}
		for _, list := range s.Nested() {
			if !walk(list, yield) {
				return false
			}
		}
	}
	return true
}

// Nested returns the step lists nested in s: a switch's cases then its
// default, a foreach's or repeat's body, a parallel's branches by name, a
// wait's timeout steps, and then the catch clauses' steps. Empty lists are
// left out.
func (s *Step) Nested() [][]*Step {
	var out [][]*Step
	add := func(steps []*Step) {
		if len(steps) > 0 {
			out = append(out, steps)
		}
	}
	if s.Switch != nil {
		for _, c := range s.Switch.Cases {
			add(c.Then)
		}
		add(s.Switch.Default)
	}
	if s.Foreach != nil {
		add(s.Foreach.Do)
	}
	if s.Repeat != nil {
		add(s.Repeat.Do)
	}
	if s.Parallel != nil {
		for _, b := range s.Parallel.Branches {
			add(b.Steps)
		}
	}
	if s.Wait != nil {
		add(s.Wait.TimeoutSteps)
	}
	for _, c := range s.Catch {
		add(c.Do)
	}
	return out
}
