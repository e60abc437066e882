package workflow

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/orchestrator/definition"
)

// maxDecisions bounds the events one Advance may produce.
const maxDecisions = 100000

// maxDecisionBytes bounds what the values of the events one Advance
// produces may take (by valueBytes, an upper bound that counts a value
// shared by several events once per event). Advance holds them all until
// they are stored: a repeat of set steps that each build a large value,
// run to max_iterations in one go, would otherwise hold gigabytes.
const maxDecisionBytes = 256 << 20

// Decide returns the events that follow from st under def, or none when
// the workflow must wait for something outside (a result, a signal, a
// timer). It is pure and deterministic: the same state gives the same
// events, with times taken from st.Now.
func Decide(st *State, def *definition.Definition) []events.Event {
	return decide(st, def, nil)
}

// decide is Decide with the evaluations' cost counted in budget.
func decide(st *State, def *definition.Definition, budget *definition.Budget) []events.Event {
	if st.Status != StatusRunning {
		return nil
	}
	w := &walker{st: st, budget: budget}
	if st.CancelRequested {
		return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowCanceled,
			WorkflowCanceled: &events.WorkflowCanceled{Reason: st.CancelReason}})}
	}
	if st.TimedOut {
		return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowFailed, WorkflowFailed: &events.WorkflowFailed{
			Error: events.Error{Type: ErrTypeTimeout, Message: fmt.Sprintf("workflow did not finish within %s", def.Timeout)}}})}
	}
	if st.Suspended > 0 {
		// Nothing moves but what is in flight (recorded as it comes) until
		// a resume.
		return nil
	}
	if c := def.Concurrency; c != nil && !st.Admitted {
		return w.queue(c)
	}
	if def.Timeout > 0 && st.TimeoutTimerID == "" {
		w.emit(events.Event{Type: events.TypeTimerScheduled, TimerScheduled: &events.TimerScheduled{
			TimerID: WorkflowTimeoutTimerID(st.Retries), Due: st.Now.Add(def.Timeout)}})
	}
	if len(def.Search) > 0 && !st.StartSearched {
		// The definition's search comes first, on the input alone.
		w.search(def.Search, "", w.scope("", nil))
		if w.terminal != nil {
			return []events.Event{*w.terminal}
		}
		return w.out
	}
	r := w.block(def.Steps, "", nil)
	if len(w.out) == 0 {
		// Signals are taken once the walk starts and reopens nothing more:
		// every wait that is to wait is waiting then, so they take
		// signals in the order they first started (a redrive restarts
		// some waits a round later than others).
		w.takeSignals()
	}
	if w.terminal != nil {
		return []events.Event{*w.terminal}
	}
	if len(w.out) > 0 {
		// A decision ends at its first step command: the shell stores
		// decisions as one record per command, so a crash can keep any
		// prefix ending there, and deciding again from that prefix must
		// go on exactly as the whole decision would have.
		for i, e := range w.out {
			if e.Type == events.TypeStepScheduled {
				return w.out[:i+1]
			}
		}
		return w.out
	}
	switch r.state {
	case blockFailed:
		errv := r.err
		if r.path != "" {
			errv.Message = fmt.Sprintf("step %s: %s", r.path, errv.Message)
		}
		return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowFailed,
			WorkflowFailed: &events.WorkflowFailed{Error: errv, Path: r.path}})}
	case blockDone:
		out := r.output
		if def.Output != nil {
			var err error
			if out, err = checked(def.Output.Eval(w.scope("", nil))); err != nil {
				return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowFailed,
					WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: exprErrType(err), Message: "output: " + err.Error()}}})}
			}
		}
		return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowCompleted,
			WorkflowCompleted: &events.WorkflowCompleted{Output: out}})}
	}
	return nil
}

// queue keeps a run of a definition with concurrency waiting for a slot:
// it records the run's key (evaluated once, over the input), then a timer
// that looks at the slot again, one at a time. The shell admits the run
// (WorkflowAdmitted) once it holds a slot.
func (w *walker) queue(c *definition.RunConcurrency) []events.Event {
	st := w.st
	if !st.Queued {
		key := ""
		if c.Key != nil {
			v, err := c.Key.Eval(w.scope("", nil))
			if err == nil {
				key, err = queueKey(v)
			}
			if err != nil {
				return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowFailed, WorkflowFailed: &events.WorkflowFailed{
					Error: events.Error{Type: exprErrType(err), Message: "concurrency.key: " + err.Error()}}})}
			}
		}
		return []events.Event{w.ev(events.Event{Type: events.TypeWorkflowQueued, WorkflowQueued: &events.WorkflowQueued{Key: key}})}
	}
	if st.AdmitTimerID != "" {
		return nil
	}
	return []events.Event{w.ev(events.Event{Type: events.TypeTimerScheduled, TimerScheduled: &events.TimerScheduled{
		TimerID: AdmissionTimerID(st.AdmitChecks), Due: st.Now.Add(admissionWait(st.AdmitChecks))}})}
}

// queueKey is the concurrency key a key expression's value v names: a
// string as it is, a number or bool as written in JSON.
func queueKey(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return "", fmt.Errorf("the key is not valid UTF-8")
		}
		return x, nil
	case int64, float64, bool:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("the key is %T; want a string, number or bool", v)
}

// Advance decides and applies until the workflow waits on the outside,
// and returns the new events in order (already applied to st). Any prefix
// of them that ends at a StepScheduled event, decided again, yields the
// rest (see Decide).
func Advance(st *State, def *definition.Definition) ([]events.Event, error) {
	var out []events.Event
	size := 0
	budget := &definition.Budget{}
	for {
		evs := decide(st, def, budget)
		if budget.Exhausted() {
			return nil, fmt.Errorf("%w (%d units): do less per decision (a foreach filter over fewer items, say)", definition.ErrDecisionCost, definition.MaxDecisionCost)
		}
		if len(evs) == 0 {
			return out, nil
		}
		for _, e := range evs {
			if err := st.Apply(e); err != nil {
				return nil, fmt.Errorf("apply decided %s: %w", e.Type, err)
			}
			if size += eventBytes(e, maxDecisionBytes-size); size > maxDecisionBytes {
				return nil, fmt.Errorf("one decision would record more than %d MiB of values (a loop that builds a large value each time round?)", maxDecisionBytes>>20)
			}
		}
		out = append(out, evs...)
		if len(out) > maxDecisions {
			return nil, fmt.Errorf("one decision would record more than %d events (a loop that never waits?)", maxDecisions)
		}
	}
}

// eventBytes is an upper bound of what the values e carries take, or a
// number past stop once it passes stop.
func eventBytes(e events.Event, stop int) int {
	n := 64
	add := func(v any) {
		if n <= stop {
			n += valueBytes(v, stop-n)
		}
	}
	switch {
	case e.StepScheduled != nil:
		add(e.StepScheduled.Input)
	case e.StepCompleted != nil:
		add(e.StepCompleted.Output)
		if e.StepCompleted.Vars != nil {
			add(e.StepCompleted.Vars)
		}
	case e.StepStarted != nil:
		add(e.StepStarted.Items)
	case e.ChildStarted != nil:
		add(e.ChildStarted.Input)
	case e.WorkflowCompleted != nil:
		add(e.WorkflowCompleted.Output)
	case e.StepFailed != nil:
		n += len(e.StepFailed.Error.Message)
	case e.WorkflowFailed != nil:
		n += len(e.WorkflowFailed.Error.Message)
	}
	return n
}

// valueBytes is an upper bound of a normalized value's size: its string
// and key bytes and 9 bytes for every other element, or a number past stop
// once it passes stop.
func valueBytes(v any, stop int) int {
	switch x := v.(type) {
	case string:
		return len(x) + 9
	case []any:
		n := 9
		for _, e := range x {
			if n += valueBytes(e, stop-n); n > stop {
				break
			}
		}
		return n
	case map[string]any:
		n := 9
		for k, e := range x {
			if n += len(k) + valueBytes(e, stop-n); n > stop {
				break
			}
		}
		return n
	}
	return 9
}

type blockState int

const (
	blockPending blockState = iota
	blockDone
	blockFailed
)

// result is where a block of steps stands.
type result struct {
	state  blockState
	output any
	err    events.Error
	path   string
	// canceled: the block failed on a step its container canceled, so the
	// container's own failure is on its way (its decision was cut short).
	canceled bool
}

// firstFailure keeps the failure a container fails with: the first one
// met, unless it is a cancellation and a real failure comes later.
func firstFailure(cur *result, r result) *result {
	if cur == nil || cur.canceled && !r.canceled {
		return &r
	}
	return cur
}

// locals are the loop variables in scope.
type locals map[string]any

func (l locals) with(kv ...any) locals {
	out := make(locals, len(l)+len(kv)/2)
	for k, v := range l {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// walker walks the plan against the state and collects the next events.
type walker struct {
	st       *State
	out      []events.Event
	terminal *events.Event
	// takers are the waits met on this walk that a received signal may
	// satisfy; takeSignals hands the signals out once the walk is over.
	takers []*Step
	// scheduled: the walk emitted a step command, where Decide cuts its
	// decision. Steps met after it are not started: what they would emit
	// is cut off, so evaluating their expressions is wasted (a foreach or
	// parallel starting thousands at once would do it for each command
	// of the decision again, quadratic in the fan-out). A succeed step
	// still starts: its terminal event is decided alone, in place of the
	// rest.
	scheduled bool
	// budget counts the cost of the walk's evaluations; nil counts none.
	budget *definition.Budget
}

// discard drops what the walk decided so far: a failing container
// decides alone.
func (w *walker) discard() {
	w.out, w.takers = w.out[:0], w.takers[:0]
	w.scheduled = false
}

// takeSignals gives each wait met on this walk that can take a signal the
// earliest signal of its name no other wait takes: waits in the order they
// started (State.Order), so that each signal satisfies one wait and a
// replay hands them out the same way.
func (w *walker) takeSignals() {
	if len(w.takers) == 0 {
		return
	}
	st := w.st
	if len(w.takers) > 1 {
		rank := make(map[string]int, len(w.takers))
		for _, s := range w.takers {
			rank[s.Path] = 0
		}
		for i, p := range st.Order {
			if _, ok := rank[p]; ok {
				rank[p] = i
			}
		}
		slices.SortStableFunc(w.takers, func(a, b *Step) int { return rank[a.Path] - rank[b.Path] })
	}
	taken := map[int]bool{}
	for _, s := range w.takers {
		for _, sig := range st.Signals {
			if !s.mayTake(sig) || taken[sig.Seq] {
				continue
			}
			taken[sig.Seq] = true
			w.emit(events.Event{Type: events.TypeStepCompleted,
				StepCompleted: &events.StepCompleted{Path: s.Path, Output: sig.Payload, SignalSeq: sig.Seq}})
			break
		}
	}
}

func (w *walker) ev(e events.Event) events.Event {
	e.Time = w.st.Now
	// An error's text may come from an expression (a fail step's message,
	// an evaluation error quoting a value): recorded as every error is,
	// valid UTF-8 and bounded, so it reads back.
	switch {
	case e.StepFailed != nil:
		e.StepFailed.Error = e.StepFailed.Error.Fit()
	case e.WorkflowFailed != nil:
		// Its message is a step's error (fitted) after the step's path, or
		// an evaluation error, which may quote a value of any size: bounded
		// too, so the reason the run failed is the one recorded, not a
		// record too large to store.
		e.WorkflowFailed.Error = e.WorkflowFailed.Error.FitRun()
	}
	return e
}

func (w *walker) emit(e events.Event) {
	w.out = append(w.out, w.ev(e))
	if e.Type == events.TypeStepScheduled {
		w.scheduled = true
	}
}

// cutOff reports whether starting step would be wasted: a step command
// was emitted already, and step cannot end the workflow.
func (w *walker) cutOff(step *definition.Step) bool {
	return w.scheduled && step.Kind != definition.KindSucceed
}

// scope returns the expression scope at path prefix prefix: steps.<id>
// resolves to the innermost enclosing scope's step of that id.
func (w *walker) scope(prefix string, l locals) definition.Scope {
	st := w.st
	steps := make(map[string]any)
	// Outermost first, so inner scopes override.
	for _, p := range prefixes(prefix) {
		for id, out := range st.outputs[p] {
			steps[id] = out
		}
	}
	return definition.Scope{Input: st.Input, Steps: steps, WorkflowID: st.ID, Now: st.Now, Vars: st.Vars, Locals: l, Budget: w.budget}
}

// prefixes returns "" and every enclosing prefix of p, outermost first:
// "a[1].b[2]." gives "", "a[1].", "a[1].b[2].".
func prefixes(p string) []string {
	out := []string{""}
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			out = append(out, p[:i+1])
		}
	}
	return out
}

// checked passes on an evaluation's result and error, failing a result
// that breaks the rule for values (value.Check, with MaxBuiltDepth): what
// a workflow builds is recorded, so it must read back like what comes
// from outside.
func checked(v any, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if err := value.Check("result", v, value.Limits{MaxDepth: value.MaxBuiltDepth}); err != nil {
		return nil, err
	}
	return v, nil
}

func (w *walker) failStep(path string, typ, msg string) {
	w.emit(events.Event{Type: events.TypeStepFailed, StepFailed: &events.StepFailed{Path: path,
		Error: events.Error{Type: typ, Message: msg}}})
}

func (w *walker) completeStep(path string, out any) {
	w.emit(events.Event{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Path: path, Output: out}})
}

// search records the search attributes attrs evaluate to in scope sc: the
// definition's (path empty) or those of the step at path, which just
// completed. A failed evaluation fails the workflow (not the step, which
// completed: a catch of it does not handle this), with error type
// ErrTypeInvalidSearch for a value that cannot be recorded.
func (w *walker) search(attrs []*definition.SearchAttr, path string, sc definition.Scope) {
	m, err := definition.EvalSearch(attrs, sc)
	if err == nil {
		w.emit(events.Event{Type: events.TypeSearchAttributesSet, SearchAttributesSet: &events.SearchAttributesSet{Path: path, Attributes: m}})
		return
	}
	typ := exprErrType(err)
	if errors.Is(err, definition.ErrSearchValue) {
		typ = ErrTypeInvalidSearch
	}
	msg := err.Error()
	if path != "" {
		msg = fmt.Sprintf("step %s: %s", path, msg)
	}
	e := w.ev(events.Event{Type: events.TypeWorkflowFailed, WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: typ, Message: msg}}})
	if w.terminal == nil {
		w.terminal = &e
	}
}

// block walks a sequence of steps: it starts the first that has not
// started, follows the running one, and reports the sequence's state.
func (w *walker) block(steps []*definition.Step, prefix string, l locals) result {
	var last any
	for _, step := range steps {
		path := prefix + step.ID
		s := w.st.Steps[path]
		handling := w.handling(step, s, prefix)
		if !handling && notStarted(s) {
			w.start(step, path, prefix, l)
			return result{state: blockPending}
		}
		if !handling && s.Rerun {
			// A redrive reopens a failed or canceled container where it stopped.
			w.reopen(step, s, prefix)
			return result{state: blockPending}
		}
		switch s.Status {
		case StepCompleted:
			if len(step.Search) > 0 && !s.Searched {
				// Recorded before anything after the step happens.
				w.search(step.Search, path, w.scope(prefix, l))
				return result{state: blockPending}
			}
			last = s.Output
			continue
		case StepSkipped:
			last = nil
			continue
		case StepFailed:
			r := w.caught(step, s, prefix, l)
			if r.state != blockDone {
				return r
			}
			last = r.output
			continue
		case StepCanceled:
			return result{state: blockFailed, err: events.Error{Type: ErrTypeCanceled, Message: "canceled"}, path: path, canceled: true}
		}
		// Running or waiting.
		w.follow(step, s, prefix, l)
		return result{state: blockPending}
	}
	return result{state: blockDone, output: last}
}

// handling reports whether failed step s, which a redrive would run
// again, is handled by its catch instead, and does not run again: the
// catch had begun when the run failed (it goes on), or the failure was
// recorded after the run closed (Late), when no catch could take it, and
// a catch clause matches it (it begins).
func (w *walker) handling(step *definition.Step, s *Step, prefix string) bool {
	if s == nil || !s.Rerun || s.Status != StepFailed {
		return false
	}
	c := catchOf(step, s)
	return c != nil && len(c.Do) > 0 && (s.Late || w.st.Steps[prefix+c.Do[0].ID] != nil)
}

// catchOf returns the catch clause that handles failed step s, or nil.
func catchOf(step *definition.Step, s *Step) *definition.Catch {
	typ := ""
	if s.LastError != nil {
		typ = s.LastError.Type
	}
	for _, c := range step.Catch {
		if matches(c.Errors, typ) {
			return c
		}
	}
	return nil
}

// notStarted reports whether a step is to start: it has not, or a redrive
// runs it again from its start.
func notStarted(s *Step) bool {
	return s == nil || s.Status == StepPending || s.Rerun && !s.container()
}

// reopen resumes container s after a redrive. A repeat whose last
// iteration finished (it failed on its until or on max_iterations) gets
// max_iterations more from the next one; one that failed inside an
// iteration, from that iteration.
func (w *walker) reopen(step *definition.Step, s *Step, prefix string) {
	ro := &events.StepReopened{Path: s.Path}
	if step.Kind == definition.KindRepeat {
		ro.BudgetFrom = s.Iteration
		p := iterPrefix(s.Path, s.Iteration)
		done := true
		for _, b := range step.Repeat.Do {
			if bs := w.st.Steps[p+b.ID]; bs == nil || !bs.Done() {
				done = false
				break
			}
		}
		if done {
			ro.BudgetFrom++
		}
	}
	w.emit(events.Event{Type: events.TypeStepReopened, StepReopened: ro})
}

// caught handles a failed step: a matching catch clause runs in its place
// and, when it finishes, completes the step with its output.
func (w *walker) caught(step *definition.Step, s *Step, prefix string, l locals) result {
	errv := events.Error{Message: "step failed"}
	if s.LastError != nil {
		errv = *s.LastError
	}
	if c := catchOf(step, s); c != nil {
		r := w.block(c.Do, prefix, l.with("error", map[string]any{"message": errv.Message, "type": errv.Type}))
		if r.state == blockDone {
			w.completeStep(s.Path, r.output)
			return result{state: blockPending}
		}
		return r
	}
	return result{state: blockFailed, err: errv, path: s.Path}
}

func matches(types []string, typ string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == typ {
			return true
		}
	}
	return false
}

// exprErrType is the error type of a failed evaluation: limit when it
// would pass the memory limits of expressions, expression otherwise.
func exprErrType(err error) string {
	if errors.Is(err, definition.ErrLimit) {
		return ErrTypeLimit
	}
	return ErrTypeExpression
}

func truthy(v any) bool {
	b, ok := v.(bool)
	return ok && b
}

// start emits the events that begin a step.
func (w *walker) start(step *definition.Step, path, prefix string, l locals) {
	if w.cutOff(step) {
		return
	}
	sc := w.scope(prefix, l)
	if step.If != nil {
		v, err := step.If.Eval(sc)
		if err != nil {
			w.failStep(path, exprErrType(err), "if: "+err.Error())
			return
		}
		if !truthy(v) {
			w.emit(events.Event{Type: events.TypeStepSkipped, StepSkipped: &events.StepSkipped{Path: path}})
			return
		}
	}
	gen := 1
	if s := w.st.Steps[path]; s != nil {
		gen = s.Gen + 1
	}
	switch step.Kind {
	case definition.KindTask:
		w.startTask(step, path, gen, sc)
	case definition.KindWait:
		w.startWait(step, path, gen)
	case definition.KindSleep:
		w.startSleep(step, path, gen, sc)
	case definition.KindSet:
		w.startSet(step, path, sc)
	case definition.KindSwitch:
		w.startSwitch(step, path, sc)
	case definition.KindForeach:
		w.startForeach(step, path, prefix, l, sc)
	case definition.KindParallel, definition.KindRepeat:
		w.emit(events.Event{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: path, Kind: string(step.Kind)}})
	case definition.KindWorkflow:
		w.startWorkflow(step, path, gen, sc)
	case definition.KindFail:
		w.startFail(step, path, sc)
	case definition.KindSucceed:
		w.startSucceed(step, path, sc)
	default:
		w.failStep(path, ErrTypeExpression, fmt.Sprintf("unknown step kind %q", step.Kind))
	}
}

// startTask schedules a task's gen-th run, continuing its attempt count.
func (w *walker) startTask(step *definition.Step, path string, gen int, sc definition.Scope) {
	st := w.st
	in, err := checked(step.Input.Eval(sc))
	if err != nil {
		w.failStep(path, exprErrType(err), err.Error())
		return
	}
	flow, err := flowLimits(st, step, sc)
	if err != nil {
		w.failStep(path, exprErrType(err), err.Error())
		return
	}
	first := 1
	if s := st.Steps[path]; s != nil {
		first = s.Attempts + 1
	}
	cmd := &events.StepScheduled{Path: path, Gen: gen, Task: step.Task, Input: in, Retry: step.Retry, Timeout: step.Timeout,
		IdempotencyKey: st.ID + "/" + path, FirstAttempt: first, Trace: st.Trace, Flow: flow}
	if st.Trace != "" {
		cmd.Definition = st.Definition
	}
	if step.Retry.Suspend {
		for _, c := range step.Catch {
			cmd.Caught = append(cmd.Caught, c.Errors...)
			cmd.CatchAll = cmd.CatchAll || len(c.Errors) == 0
		}
	}
	w.emit(events.Event{Type: events.TypeStepScheduled, StepScheduled: cmd})
}

// flowLimits evaluates a task step's concurrency and rate limit keys (in
// scope sc, once, as the step starts); nil when it has neither.
func flowLimits(st *State, step *definition.Step, sc definition.Scope) (*events.FlowLimits, error) {
	if step.Concurrency == nil && step.RateLimit == nil {
		return nil, nil
	}
	f := &events.FlowLimits{Scope: st.Definition + "/" + step.ID}
	key := func(field string, e *definition.Expr) (string, error) {
		if e == nil {
			return "", nil
		}
		v, err := e.Eval(sc)
		if err == nil {
			var k string
			if k, err = queueKey(v); err == nil {
				return k, nil
			}
		}
		return "", fmt.Errorf("%s.key: %w", field, err)
	}
	var err error
	if c := step.Concurrency; c != nil {
		f.ConcurrencyLimit = c.Limit
		if f.ConcurrencyKey, err = key("concurrency", c.Key); err != nil {
			return nil, err
		}
	}
	if r := step.RateLimit; r != nil {
		f.RateLimit, f.RatePer = r.Limit, r.Per
		if f.RateKey, err = key("rate_limit", r.Key); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// startWait begins waiting for a signal, with a timer when it has a timeout.
func (w *walker) startWait(step *definition.Step, path string, gen int) {
	ws := &events.WaitStarted{Path: path, Signal: step.Wait.Signal}
	if step.Wait.Timeout > 0 {
		ws.TimeoutAt = w.st.Now.Add(step.Wait.Timeout)
		ws.TimerID = TimerID(path, gen)
	}
	w.emit(events.Event{Type: events.TypeWaitStarted, WaitStarted: ws})
}

// startSleep schedules a sleep's timer, or completes it when it is already due.
func (w *walker) startSleep(step *definition.Step, path string, gen int, sc definition.Scope) {
	st := w.st
	due := st.Now.Add(step.Sleep.Duration)
	if step.Sleep.Until != nil {
		v, err := step.Sleep.Until.Eval(sc)
		if err != nil {
			w.failStep(path, exprErrType(err), "sleep.until: "+err.Error())
			return
		}
		s, _ := v.(string)
		if due, err = time.Parse(time.RFC3339Nano, s); err != nil {
			w.failStep(path, ErrTypeExpression, fmt.Sprintf("sleep.until: %v is not a timestamp", v))
			return
		}
	}
	if !due.After(st.Now) {
		w.completeStep(path, nil)
		return
	}
	w.emit(events.Event{Type: events.TypeTimerScheduled, TimerScheduled: &events.TimerScheduled{
		Path: path, TimerID: TimerID(path, gen), Due: due.UTC()}})
}

// startSet evaluates a set step's values and completes it with them.
func (w *walker) startSet(step *definition.Step, path string, sc definition.Scope) {
	vars := make(map[string]any, len(step.Set))
	for _, sv := range step.Set {
		v, err := checked(sv.Value.Eval(sc))
		if err != nil {
			w.failStep(path, exprErrType(err), "set."+sv.Name+": "+err.Error())
			return
		}
		vars[sv.Name] = v
	}
	w.emit(events.Event{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Path: path, Vars: vars}})
}

// startSwitch starts the first case whose condition holds (-1 for the
// default); with none, the step completes.
func (w *walker) startSwitch(step *definition.Step, path string, sc definition.Scope) {
	chosen := -2
	for i, c := range step.Switch.Cases {
		v, err := c.If.Eval(sc)
		if err != nil {
			w.failStep(path, exprErrType(err), fmt.Sprintf("switch case %d: %v", i+1, err))
			return
		}
		if truthy(v) {
			chosen = i
			break
		}
	}
	if chosen == -2 && step.Switch.Default != nil {
		chosen = -1
	}
	if chosen == -2 {
		w.completeStep(path, nil)
		return
	}
	w.emit(events.Event{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: path, Kind: string(step.Kind), Case: chosen}})
}

// startForeach starts a loop over its items, filtered when it has a filter.
func (w *walker) startForeach(step *definition.Step, path, prefix string, l locals, sc definition.Scope) {
	v, err := checked(step.Foreach.Items.Eval(sc))
	if err != nil {
		w.failStep(path, exprErrType(err), "foreach: "+err.Error())
		return
	}
	items, ok := v.([]any)
	if !ok && v != nil {
		w.failStep(path, ErrTypeExpression, fmt.Sprintf("foreach: want a list, got %T", v))
		return
	}
	if step.Foreach.Filter != nil {
		kept := make([]any, 0, len(items))
		for i, it := range items {
			fv, err := step.Foreach.Filter.Eval(w.scope(prefix, l.with(step.Foreach.As, it, "index", int64(i))))
			if err != nil {
				w.failStep(path, exprErrType(err), fmt.Sprintf("filter (item %d): %v", i, err))
				return
			}
			if truthy(fv) {
				kept = append(kept, it)
			}
		}
		items = kept
	}
	if items == nil {
		items = []any{}
	}
	w.emit(events.Event{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: path, Kind: string(step.Kind), Items: items}})
}

// startWorkflow starts a child workflow's gen-th run.
func (w *walker) startWorkflow(step *definition.Step, path string, gen int, sc definition.Scope) {
	st := w.st
	in, err := checked(step.Workflow.Input.Eval(sc))
	if err != nil {
		w.failStep(path, exprErrType(err), err.Error())
		return
	}
	w.emit(events.Event{Type: events.TypeChildStarted, ChildStarted: &events.ChildStarted{Path: path, Gen: gen,
		WorkflowID: ChildID(st.ID, path, gen), Definition: step.Workflow.Definition, Input: in}})
}

// startFail fails the step with its message; a non-string renders as JSON.
func (w *walker) startFail(step *definition.Step, path string, sc definition.Scope) {
	msg, err := step.Fail.Message.Eval(sc)
	if err != nil {
		w.failStep(path, exprErrType(err), "fail.message: "+err.Error())
		return
	}
	text, ok := msg.(string)
	if !ok {
		b, _ := value.ToJSON(msg) // a non-string renders as JSON
		text = string(b)
	}
	w.failStep(path, step.Fail.Type, text)
}

// startSucceed records the workflow's completion unless a terminal event
// is already pending.
func (w *walker) startSucceed(step *definition.Step, path string, sc definition.Scope) {
	out, err := checked(step.Succeed.Output.Eval(sc))
	if err != nil {
		w.failStep(path, exprErrType(err), "succeed.output: "+err.Error())
		return
	}
	e := w.ev(events.Event{Type: events.TypeWorkflowCompleted, WorkflowCompleted: &events.WorkflowCompleted{Output: out}})
	if w.terminal == nil {
		w.terminal = &e
	}
}

// ChildID returns the workflow id of the child started by the step at path
// of workflow parent in its gen-th run: deterministic, so a replay finds
// the same child.
func ChildID(parent, path string, gen int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%d", parent, path, gen)))
	r := strings.NewReplacer(".", "_", "[", "_", "]", "")
	readable := parent + "-" + r.Replace(path)
	if len(readable) > 90 {
		readable = readable[:90]
	}
	// The hash makes the id unambiguous; the readable part helps people.
	return readable + "-" + hex.EncodeToString(h[:8])
}

// follow advances a step that is running or waiting.
func (w *walker) follow(step *definition.Step, s *Step, prefix string, l locals) {
	st := w.st
	path := s.Path
	switch step.Kind {
	case definition.KindWait:
		if s.Status != StepWaiting {
			// The wait timed out and runs its timeout steps.
			w.finish(path, w.block(step.Wait.TimeoutSteps, prefix, l))
			return
		}
		if st.pendingSignal(s) != nil {
			// Signals are handed out once the walk has met every wait.
			w.takers = append(w.takers, s)
			return
		}
		if s.TimedOut {
			if len(step.Wait.TimeoutSteps) > 0 {
				// Record the timeout by moving the step on: its timeout steps run next.
				w.emit(events.Event{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: path, Kind: "timeout_steps"}})
				return
			}
			w.failStep(path, ErrTypeTimeout, fmt.Sprintf("no %q signal before %s", s.Signal, s.TimeoutAt.Format(time.RFC3339)))
		}
	case definition.KindSleep:
		if s.TimedOut {
			w.completeStep(path, nil)
		}
	case definition.KindSwitch:
		steps := step.Switch.Default
		if s.Case >= 0 && s.Case < len(step.Switch.Cases) {
			steps = step.Switch.Cases[s.Case].Then
		}
		w.finish(path, w.block(steps, prefix, l))
	case definition.KindParallel:
		w.parallel(step, s, prefix, l)
	case definition.KindForeach:
		w.foreach(step, s, l)
	case definition.KindRepeat:
		w.repeat(step, s, l)
	}
	// Tasks and child workflows wait for their results.
}

// finish completes or fails a container step once its block did.
func (w *walker) finish(path string, r result) {
	switch r.state {
	case blockDone:
		w.completeStep(path, r.output)
	case blockFailed:
		e := r.err
		if r.path != "" && r.path != path {
			e.Message = fmt.Sprintf("step %s: %s", r.path, e.Message)
		}
		w.emit(events.Event{Type: events.TypeStepFailed, StepFailed: &events.StepFailed{Path: path, Error: e}})
	}
}

func errValue(r result) map[string]any {
	return map[string]any{"error": map[string]any{"message": r.err.Message, "type": r.err.Type, "step": r.path}}
}

func (w *walker) parallel(step *definition.Step, s *Step, prefix string, l locals) {
	out := make(map[string]any, len(step.Parallel.Branches))
	done := true
	var failed *result
	for _, b := range step.Parallel.Branches {
		r := w.block(b.Steps, prefix, l)
		switch r.state {
		case blockPending:
			done = false
		case blockFailed:
			if !step.Parallel.ContinueOnError {
				failed = firstFailure(failed, r)
				continue
			}
			out[b.Name] = errValue(r)
		case blockDone:
			out[b.Name] = r.output
		}
	}
	if failed != nil {
		// The step fails, and what still runs in its branches is canceled.
		w.discard()
		for _, b := range step.Parallel.Branches {
			w.cancelOpen(b.Steps, prefix, s.Path)
		}
		w.finish(s.Path, *failed)
		return
	}
	if done {
		w.completeStep(s.Path, out)
	}
}

// cancelOpen cancels the steps of a list at prefix that are still open
// (running or waiting), and those open inside them, because the container
// cause around them failed.
func (w *walker) cancelOpen(steps []*definition.Step, prefix, cause string) {
	for _, step := range steps {
		path := prefix + step.ID
		s := w.st.Steps[path]
		if s == nil {
			continue
		}
		switch s.Status {
		case StepRunning, StepWaiting:
			w.emit(events.Event{Type: events.TypeStepCanceled, StepCanceled: &events.StepCanceled{Path: path, Cause: cause}})
		case StepCanceled:
			// Canceled by a decision cut short: what is under it may be open.
		case StepFailed:
			// Its catch block may run.
			for _, c := range step.Catch {
				w.cancelOpen(c.Do, prefix, cause)
			}
		default:
			continue
		}
		switch step.Kind {
		case definition.KindSwitch:
			if s.Case >= 0 && s.Case < len(step.Switch.Cases) {
				w.cancelOpen(step.Switch.Cases[s.Case].Then, prefix, cause)
			} else {
				w.cancelOpen(step.Switch.Default, prefix, cause)
			}
		case definition.KindParallel:
			for _, b := range step.Parallel.Branches {
				w.cancelOpen(b.Steps, prefix, cause)
			}
		case definition.KindForeach:
			for i := range s.Items {
				w.cancelOpen(step.Foreach.Do, iterPrefix(path, i), cause)
			}
		case definition.KindRepeat:
			w.cancelOpen(step.Repeat.Do, iterPrefix(path, s.Iteration), cause)
		case definition.KindWait:
			if s.Kind == "timeout_steps" {
				w.cancelOpen(step.Wait.TimeoutSteps, prefix, cause)
			}
		}
	}
}

// iterPrefix is the path prefix of a loop's i-th iteration.
func iterPrefix(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]."
}

// foreach follows a loop's started, unfinished iterations and starts more
// while there is room. A finished iteration stays finished, and new ones
// start in order, so a decision looks only at the window between the first
// unfinished iteration and the last started one: its cost does not grow
// with the number of items. (A redrive runs failed iterations inside the
// window again; they wait there for room like the ones after it.)
func (w *walker) foreach(step *definition.Step, s *Step, l locals) {
	fe := step.Foreach
	first := fe.Do[0]
	started := func(i int) bool {
		p := iterPrefix(s.Path, i)
		fs := w.st.Steps[p+first.ID]
		return !notStarted(fs) || w.handling(first, fs, p)
	}
	m := w.foreachProgress(s, started)
	idle := w.idleIterations(s.Path)
	inflight := 0
	var waiting, resumable []int
	var failed *result
	follow := func(i int) {
		r := w.block(fe.Do, iterPrefix(s.Path, i), l.with(fe.As, s.Items[i], "index", int64(i)))
		switch r.state {
		case blockPending:
			inflight++
		case blockDone:
			m.finish(i, r.output)
		case blockFailed:
			if !fe.ContinueOnError {
				r.err.Message = fmt.Sprintf("item %d: %s", i, r.err.Message)
				failed = firstFailure(failed, r)
				return
			}
			m.finish(i, errValue(r))
		}
	}
	for i := m.low; i < m.next; i++ {
		switch {
		case m.done[i]:
		case !started(i):
			waiting = append(waiting, i)
		case idle(i):
			resumable = append(resumable, i)
		default:
			follow(i)
		}
	}
	for _, i := range resumable {
		if inflight < fe.Concurrency {
			follow(i)
		}
	}
	if failed != nil {
		w.failLoop(fe, s.Path, m, *failed)
		return
	}
	for m.low < m.n && m.done[m.low] {
		m.low++
	}
	for i := m.next; i < m.n; i++ {
		waiting = append(waiting, i)
		if len(waiting) >= fe.Concurrency {
			break
		}
	}
	for _, i := range waiting {
		if inflight >= fe.Concurrency || w.cutOff(first) {
			break
		}
		w.block(fe.Do, iterPrefix(s.Path, i), l.with(fe.As, s.Items[i], "index", int64(i)))
		inflight++
	}
	if m.ndone == m.n {
		out := make([]any, m.n)
		copy(out, m.out)
		w.completeStep(s.Path, out)
	}
}

// foreachProgress returns the progress of loop s, with next moved past
// every iteration started.
func (w *walker) foreachProgress(s *Step, started func(int) bool) *loopProgress {
	m, fresh := w.st.loop(s.Path, len(s.Items))
	if fresh {
		// Learn where started iterations end: from the back, as reopened
		// ones may sit before running ones.
		for i := m.n - 1; i >= 0 && m.next == 0; i-- {
			if started(i) {
				m.next = i + 1
			}
		}
	}
	for m.next < m.n && started(m.next) {
		m.next++
	}
	return m
}

// idleIterations reports which started iterations of the loop at path hold
// nothing in flight and a step a redrive runs again. Such an iteration
// resumes only when there is room, like one not started; one that held
// its slot when the run failed keeps it, also while it only passes a
// result up. Runs never redriven skip finding that out.
func (w *walker) idleIterations(path string) func(int) bool {
	if w.st.Retries > 0 {
		busy, rerun := w.st.iterations(path)
		return func(i int) bool { return rerun[i] && !busy[i] }
	}
	return func(int) bool { return false }
}

// failLoop fails the loop at path, canceling its iterations still running.
func (w *walker) failLoop(fe *definition.Foreach, path string, m *loopProgress, failed result) {
	w.discard()
	for i := m.low; i < m.next; i++ {
		w.cancelOpen(fe.Do, iterPrefix(path, i), path)
	}
	w.finish(path, failed)
}

func (w *walker) repeat(step *definition.Step, s *Step, l locals) {
	rp := step.Repeat
	k := s.Iteration
	p := iterPrefix(s.Path, k)
	il := l.with("iteration", int64(k))
	r := w.block(rp.Do, p, il)
	switch r.state {
	case blockFailed:
		w.finish(s.Path, r)
	case blockDone:
		v, err := rp.Until.Eval(w.scope(p, il))
		if err != nil {
			w.failStep(s.Path, exprErrType(err), "until: "+err.Error())
			return
		}
		if truthy(v) {
			w.completeStep(s.Path, r.output)
			return
		}
		if k+1-s.IterBase >= rp.MaxIterations {
			w.failStep(s.Path, ErrTypeMaxIterations, fmt.Sprintf("until was still false after %d iterations", rp.MaxIterations))
			return
		}
		w.emit(events.Event{Type: events.TypeStepIterated, StepIterated: &events.StepIterated{Path: s.Path, Iteration: k + 1}})
	}
}

// pendingSignal returns the earliest signal wait s may take, or nil.
func (st *State) pendingSignal(s *Step) *Signal {
	for _, sig := range st.Signals {
		if s.mayTake(sig) {
			return sig
		}
	}
	return nil
}

// mayTake reports whether wait s may take sig: one of its name that no
// wait took, received before the wait timed out.
func (s *Step) mayTake(sig *Signal) bool {
	return !sig.Consumed && sig.Name == s.Signal && (s.TimedOutAt == 0 || sig.Seq < s.TimedOutAt)
}

// Scope returns the expression scope at the top level.
func (st *State) Scope() definition.Scope {
	return (&walker{st: st}).scope("", nil)
}

// AcceptResult returns the event recording result r (of a task attempt or
// a child workflow), or false when r no longer applies (a duplicate, or a
// step that moved on). Results that arrive after the workflow failed are
// still recorded, so that a redrive does not run those steps again.
func AcceptResult(st *State, r events.Result) (events.Event, bool) {
	if st.Status != StatusRunning && st.Status != StatusFailed {
		return events.Event{}, false
	}
	s := st.Steps[r.Path]
	if s == nil || s.Status != StepRunning || s.Gen != r.Gen || (s.Kind != "task" && s.Kind != "workflow") {
		return events.Event{}, false
	}
	if !r.ParentCreated.IsZero() && !r.ParentCreated.Equal(st.Created) {
		// The outcome of a child of another run of this id (one deleted
		// by retention), not of this run's.
		return events.Event{}, false
	}
	if r.Outcome == events.OutcomeAttemptFailed && r.Attempt <= s.Attempts {
		return events.Event{}, false
	}
	if r.Outcome == events.OutcomeHeld || r.Outcome == events.OutcomeStarted {
		// Shown, not decided on: taken when it changes what is shown.
		ev := r.Event()
		if ev.StepHeld.Reason == s.HeldFor || r.Attempt <= s.Attempts && r.Attempt > 0 {
			return events.Event{}, false
		}
		return ev, true
	}
	ev := r.Event()
	if f := ev.StepFailed; f != nil && s.Suspend && st.Status == StatusRunning && f.Error.Type != ErrTypeInvalidOutput &&
		!s.CatchAll && !slices.Contains(s.Caught, f.Error.Type) {
		// Out of attempts, under a policy that suspends, and no catch of
		// the step handles it: wait for a resume (but an output that
		// cannot be recorded would be the same again).
		ev = events.Event{Type: events.TypeStepSuspended, Time: ev.Time,
			StepSuspended: &events.StepSuspended{Path: f.Path, Gen: f.Gen, Attempt: f.Attempt, Error: f.Error}}
	}
	return ev, true
}

// TimerAt returns when st says its timer timerID (of the step at path;
// "" for the workflow's own) is due, and false when st waits on no such
// timer: it fired, its wait ended, or it is not st's.
func TimerAt(st *State, timerID, path string) (time.Time, bool) {
	// A failed workflow still records its steps' timers, so that a redrive
	// finds its sleeps and waits where they are.
	if st.Status != StatusRunning && (st.Status != StatusFailed || path == "") {
		return time.Time{}, false
	}
	switch {
	case path == "" && IsAdmissionTimer(timerID):
		if st.AdmitTimerID != timerID || st.Status != StatusRunning {
			return time.Time{}, false
		}
		return st.AdmitAt, true
	case path == "":
		if st.TimeoutTimerID != timerID || st.TimedOut {
			return time.Time{}, false
		}
		return st.TimeoutAt, true
	default:
		s := st.Steps[path]
		if s == nil || s.Status != StepWaiting || s.TimerID != timerID || s.TimedOut {
			return time.Time{}, false
		}
		return s.TimeoutAt, true
	}
}

// AcceptTimer returns the event recording that timer t fired, or false
// when it no longer applies. due reports whether the timer is due at now;
// when it is not, the caller should wait until t.Due.
func AcceptTimer(st *State, t events.TimerDue, now time.Time) (ev events.Event, ok, due bool) {
	at, ok := TimerAt(st, t.TimerID, t.Path)
	if !ok {
		return events.Event{}, false, true
	}
	if now.Before(at) {
		return events.Event{}, false, false
	}
	return events.Event{Type: events.TypeTimerFired, Time: now,
		TimerFired: &events.TimerFired{TimerID: t.TimerID, Path: t.Path, Due: at}}, true, true
}
