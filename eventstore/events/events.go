// Package events defines Weft's history events: the typed, versioned facts
// that make up a workflow's history, and their msgpack encoding.
//
// Events are forever: a history recorded by any released version must still
// decode and fold. Fields are only ever added (with msgpack omitempty), never
// renamed or re-typed; an incompatible change gets a new event type or a new
// Version and a decoder for the old one. Recorded histories under testdata/
// are decoded in tests to hold this line.
//
// A history message in JetStream is a Record: one or more events appended
// atomically by a single writer. This package imports no NATS code.
package events

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// RecordVersion is the version written in every new Record.
const RecordVersion = 1

// Type names an event type. The names are part of the public API (they appear
// in GetHistory) and of the stored format.
type Type string

// The event types of record version 1.
const (
	TypeWorkflowStarted     Type = "WorkflowStarted"
	TypeStepScheduled       Type = "StepScheduled"
	TypeStepAttemptFailed   Type = "StepAttemptFailed"
	TypeStepCompleted       Type = "StepCompleted"
	TypeStepFailed          Type = "StepFailed"
	TypeWaitStarted         Type = "WaitStarted"
	TypeSignalReceived      Type = "SignalReceived"
	TypeTimerFired          Type = "TimerFired"
	TypeCancelRequested     Type = "CancelRequested"
	TypeWorkflowCompleted   Type = "WorkflowCompleted"
	TypeWorkflowFailed      Type = "WorkflowFailed"
	TypeWorkflowCanceled    Type = "WorkflowCanceled"
	TypeStepStarted         Type = "StepStarted"
	TypeStepSkipped         Type = "StepSkipped"
	TypeStepIterated        Type = "StepIterated"
	TypeTimerScheduled      Type = "TimerScheduled"
	TypeChildStarted        Type = "ChildStarted"
	TypeWorkflowRetried     Type = "WorkflowRetried"
	TypeStepCanceled        Type = "StepCanceled"
	TypeStepReopened        Type = "StepReopened"
	TypeSearchAttributesSet Type = "SearchAttributesSet"
	TypeStepSuspended       Type = "StepSuspended"
	TypeWorkflowResumed     Type = "WorkflowResumed"
	TypeWorkflowQueued      Type = "WorkflowQueued"
	TypeWorkflowAdmitted    Type = "WorkflowAdmitted"
	TypeStepHeld            Type = "StepHeld"
	TypeWorkflowExpired     Type = "WorkflowExpired"
)

// ErrCorrupt is returned (wrapped) when bytes do not decode into a valid Record.
var ErrCorrupt = errors.New("corrupt event record")

// ErrNewer is returned (wrapped) for a record a newer version of Weft
// wrote: a record version above RecordVersion, or an event type this
// build does not know. It wraps ErrCorrupt, as this build cannot read it
// either; a reader that can wait gives it to an upgraded part instead of
// judging the run by it.
var ErrNewer = fmt.Errorf("%w: written by a newer version of Weft", ErrCorrupt)

// Record is the unit stored as one JetStream message: events appended together.
type Record struct {
	// V is the record format version (RecordVersion when written).
	V int `msgpack:"v"`
	// Events in the order they happened; at least one.
	Events []Event `msgpack:"e"`
}

// Event is one fact in a workflow's history: a tagged union whose Type says
// which one payload pointer is set.
type Event struct {
	Type Type      `msgpack:"t"`
	Time time.Time `msgpack:"at"`
	// Identity names who caused an outside input (a start, signal, cancel
	// request or retry): a bearer token's name, "cert:<subject>",
	// "anonymous", "webhook:<name>", "subject:<subject>", "cron:<definition>"
	// or "parent:<workflow id>". Empty on the orchestrator's own events and
	// on events recorded before identities were.
	Identity string `msgpack:"who,omitempty"`

	WorkflowStarted     *WorkflowStarted     `msgpack:"ws,omitempty"`
	StepScheduled       *StepScheduled       `msgpack:"ss,omitempty"`
	StepAttemptFailed   *StepAttemptFailed   `msgpack:"saf,omitempty"`
	StepCompleted       *StepCompleted       `msgpack:"sc,omitempty"`
	StepFailed          *StepFailed          `msgpack:"sf,omitempty"`
	WaitStarted         *WaitStarted         `msgpack:"wst,omitempty"`
	SignalReceived      *SignalReceived      `msgpack:"sr,omitempty"`
	TimerFired          *TimerFired          `msgpack:"tf,omitempty"`
	CancelRequested     *CancelRequested     `msgpack:"cr,omitempty"`
	WorkflowCompleted   *WorkflowCompleted   `msgpack:"wc,omitempty"`
	WorkflowFailed      *WorkflowFailed      `msgpack:"wf,omitempty"`
	WorkflowCanceled    *WorkflowCanceled    `msgpack:"wx,omitempty"`
	StepStarted         *StepStarted         `msgpack:"sst,omitempty"`
	StepSkipped         *StepSkipped         `msgpack:"ssk,omitempty"`
	StepIterated        *StepIterated        `msgpack:"sit,omitempty"`
	TimerScheduled      *TimerScheduled      `msgpack:"ts,omitempty"`
	ChildStarted        *ChildStarted        `msgpack:"cs,omitempty"`
	WorkflowRetried     *WorkflowRetried     `msgpack:"wr,omitempty"`
	StepCanceled        *StepCanceled        `msgpack:"scn,omitempty"`
	StepReopened        *StepReopened        `msgpack:"sro,omitempty"`
	SearchAttributesSet *SearchAttributesSet `msgpack:"sas,omitempty"`
	StepSuspended       *StepSuspended       `msgpack:"ssu,omitempty"`
	WorkflowResumed     *WorkflowResumed     `msgpack:"wre,omitempty"`
	WorkflowQueued      *WorkflowQueued      `msgpack:"wq,omitempty"`
	WorkflowAdmitted    *WorkflowAdmitted    `msgpack:"wad,omitempty"`
	StepHeld            *StepHeld            `msgpack:"sh,omitempty"`
	WorkflowExpired     *WorkflowExpired     `msgpack:"wex,omitempty"`
}

// Error is a failure as data: a message for people and a type for rules
// (retry policies' non_retryable lists, and later catch clauses).
type Error struct {
	Message string `msgpack:"m"`
	Type    string `msgpack:"t,omitempty"`
}

// Bounds of a recorded error, in bytes: a failure reports what went
// wrong, and a longer text is cut (its end replaced by a note of how much
// was cut) so that it fits in its record whatever a handler or a server
// answered.
const (
	MaxErrorType    = 256
	MaxErrorMessage = 8 << 10
	// MaxRunErrorMessage bounds a run's own failure (WorkflowFailed): a
	// step's error (MaxErrorMessage) after the step's path, or an
	// evaluation error, which may quote a value of any size.
	MaxRunErrorMessage = 2 * MaxErrorMessage
)

// MaxTaskType bounds a task type's length: it is part of the subject of
// every command of the type, and a subject longer than the NATS server's
// control line (4 KiB) closes the connection that publishes it. (Types
// of 2,048 to about 3,800 bytes worked before the bound, and are refused
// now; longer ones never ran a step.)
const MaxTaskType = 2048

// Fit returns e made fit to record: valid UTF-8 (invalid bytes become
// U+FFFD), its type and message cut to MaxErrorType and MaxErrorMessage.
func (e Error) Fit() Error {
	return Error{Type: fitText(e.Type, MaxErrorType), Message: fitText(e.Message, MaxErrorMessage)}
}

// FitRun returns e made fit to record as a run's own failure: as Fit,
// with its message cut to MaxRunErrorMessage.
func (e Error) FitRun() Error {
	return Error{Type: fitText(e.Type, MaxErrorType), Message: fitText(e.Message, MaxRunErrorMessage)}
}

// fitText makes s valid UTF-8 of at most n bytes, cutting it at a rune
// boundary and noting how many bytes were cut.
func fitText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	note := fmt.Sprintf("... (%d bytes cut)", len(s))
	keep := n - len(note)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + fmt.Sprintf("... (%d bytes cut)", len(s)-keep)
}

// Error implements error.
func (e *Error) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// RetryPolicy says how often and how far apart a task step is attempted.
// It travels inside StepScheduled so that executors apply it without
// reading the definition.
type RetryPolicy struct {
	MaxAttempts        int           `msgpack:"max"`
	InitialInterval    time.Duration `msgpack:"init"`
	BackoffCoefficient float64       `msgpack:"coef"`
	MaxInterval        time.Duration `msgpack:"maxi"`
	NonRetryable       []string      `msgpack:"nr,omitempty"`
	// Suspend: when the last attempt fails, the step is suspended
	// (StepSuspended) instead of failed, until the workflow is resumed.
	Suspend bool `msgpack:"sus,omitempty"`
}

// maxDelay caps a backoff that has no max interval.
const maxDelay = 365 * 24 * time.Hour

// Delay returns the backoff before attempt+1 after attempt failed
// (attempt counts from 1).
func (p RetryPolicy) Delay(attempt int) time.Duration {
	d := float64(p.InitialInterval)
	coef := p.BackoffCoefficient
	if coef < 1 {
		coef = 1
	}
	for i := 1; i < attempt; i++ {
		d *= coef
		if p.MaxInterval > 0 && d >= float64(p.MaxInterval) {
			return p.MaxInterval
		}
		if d > float64(maxDelay) {
			return maxDelay
		}
	}
	if p.MaxInterval > 0 && d > float64(p.MaxInterval) {
		return p.MaxInterval
	}
	if d > float64(maxDelay) {
		return maxDelay
	}
	return time.Duration(d)
}

// IsNonRetryable reports whether an error of type typ must not be retried.
func (p RetryPolicy) IsNonRetryable(typ string) bool {
	for _, t := range p.NonRetryable {
		if t == typ {
			return true
		}
	}
	return false
}

// WorkflowStarted is the first event of every history.
type WorkflowStarted struct {
	WorkflowID string `msgpack:"id"`
	Definition string `msgpack:"def"`
	Revision   int    `msgpack:"rev"`
	Input      any    `msgpack:"in"`
	RequestID  string `msgpack:"req,omitempty"`
	// Parent is set on a child workflow: where to report its outcome.
	Parent *ParentRef `msgpack:"par,omitempty"`
	// Trace is the run's W3C trace context (a traceparent): every span
	// about the run joins its trace. Empty when the start carried none.
	Trace string `msgpack:"tr,omitempty"`
}

// ParentRef names the step of a parent workflow that started a child.
type ParentRef struct {
	WorkflowID string `msgpack:"id"`
	Path       string `msgpack:"p"`
	Gen        int    `msgpack:"g"`
	// Created is the parent run's start time: it tells apart the runs
	// of one id (one deleted by retention, one started again under its
	// id). Zero in records written before it was recorded.
	Created time.Time `msgpack:"c,omitempty"`
	// Seq is a record of the parent's run at or after the one that
	// recorded the child's start (its last sequence when it started the
	// child): the child's outcome names it (Result.Cmd), so the parent
	// takes the outcome only on a history that reaches it. Zero in
	// records written before it was recorded.
	Seq uint64 `msgpack:"s,omitempty"`
	// Depth is the child's place in its chain of parents: 1 for the child
	// of a run started otherwise, its parent's Depth and 1 for a child's
	// child. Zero in records written before it was recorded (a chain
	// counts on from such a run as from a run started otherwise).
	Depth int `msgpack:"d,omitempty"`
}

// Same reports whether r and o name the same parent step's run; a ref
// without Created matches either run of its id.
func (r ParentRef) Same(o ParentRef) bool {
	return r.WorkflowID == o.WorkflowID && r.Path == o.Path && r.Gen == o.Gen &&
		(r.Created.IsZero() || o.Created.IsZero() || r.Created.Equal(o.Created))
}

// StepScheduled is a task step's command: executors registered for Task
// receive it. Gen counts the times Path has been scheduled (from 1), so a
// result names the scheduling it answers.
type StepScheduled struct {
	Path           string        `msgpack:"p"`
	Gen            int           `msgpack:"g"`
	Task           string        `msgpack:"task"`
	Input          any           `msgpack:"in"`
	Retry          RetryPolicy   `msgpack:"retry"`
	Timeout        time.Duration `msgpack:"to"`
	IdempotencyKey string        `msgpack:"key"`
	// FirstAttempt is the attempt number of the first delivery (1).
	FirstAttempt int `msgpack:"fa"`
	// Trace is the run's trace context (WorkflowStarted.Trace), so the
	// executor's attempt spans join the run's trace.
	Trace string `msgpack:"tr,omitempty"`
	// Definition names the run's definition on traced commands (those
	// with a Trace), for the attempt's span.
	Definition string `msgpack:"def,omitempty"`
	// Caught lists the error types a catch of the step handles, and
	// CatchAll says one handles every type: a failure it handles is not
	// suspended (set only under Retry.Suspend).
	Caught   []string `msgpack:"ct,omitempty"`
	CatchAll bool     `msgpack:"ca,omitempty"`
	// Flow holds the step's concurrency and rate limit, with their keys
	// evaluated; nil when it has neither.
	Flow *FlowLimits `msgpack:"fl,omitempty"`
}

// StepAttemptFailed records a failed attempt that will be retried after RetryDelay.
type StepAttemptFailed struct {
	Path       string        `msgpack:"p"`
	Gen        int           `msgpack:"g"`
	Attempt    int           `msgpack:"a"`
	Error      Error         `msgpack:"err"`
	RetryDelay time.Duration `msgpack:"d"`
}

// StepCompleted records a step's output. For a wait step SignalSeq is the
// history index of the SignalReceived event it consumed.
type StepCompleted struct {
	Path      string `msgpack:"p"`
	Gen       int    `msgpack:"g,omitempty"`
	Attempt   int    `msgpack:"a,omitempty"`
	Output    any    `msgpack:"out"`
	SignalSeq int    `msgpack:"sig,omitempty"`
	// Vars are the values a set step assigned.
	Vars map[string]any `msgpack:"vars,omitempty"`
}

// StepFailed records that a step failed for good.
type StepFailed struct {
	Path    string `msgpack:"p"`
	Gen     int    `msgpack:"g,omitempty"`
	Attempt int    `msgpack:"a,omitempty"`
	Error   Error  `msgpack:"err"`
}

// WaitStarted records that a wait step began waiting for Signal; when
// TimeoutAt is set, timer TimerID fires then.
type WaitStarted struct {
	Path      string    `msgpack:"p"`
	Signal    string    `msgpack:"sig"`
	TimeoutAt time.Time `msgpack:"due,omitempty"`
	TimerID   string    `msgpack:"tid,omitempty"`
}

// SignalReceived records a signal sent to the workflow.
type SignalReceived struct {
	Name      string `msgpack:"n"`
	Payload   any    `msgpack:"pl"`
	RequestID string `msgpack:"req,omitempty"`
}

// TimerFired records that a durable timer came due.
type TimerFired struct {
	TimerID string    `msgpack:"tid"`
	Path    string    `msgpack:"p,omitempty"`
	Due     time.Time `msgpack:"due"`
}

// CancelRequested records a request to cancel the workflow.
type CancelRequested struct {
	Reason string `msgpack:"r,omitempty"`
	// RequestID is the request's idempotency key, when it named one: a
	// repeat of it is applied once.
	RequestID string `msgpack:"req,omitempty"`
}

// WorkflowCompleted closes a history with the workflow's output.
type WorkflowCompleted struct {
	Output any `msgpack:"out"`
}

// WorkflowFailed closes a history with an error.
type WorkflowFailed struct {
	Error Error  `msgpack:"err"`
	Path  string `msgpack:"p,omitempty"`
}

// WorkflowCanceled closes a history after a cancel request.
type WorkflowCanceled struct {
	Reason string `msgpack:"r,omitempty"`
}

// StepStarted records that a container step (switch, foreach, parallel,
// repeat) began. Case is the chosen switch case (-1: default); Items are a
// foreach's items after its filter.
type StepStarted struct {
	Path  string `msgpack:"p"`
	Kind  string `msgpack:"k"`
	Case  int    `msgpack:"case,omitempty"`
	Items []any  `msgpack:"items,omitempty"`
}

// StepSkipped records that a step's if was false.
type StepSkipped struct {
	Path string `msgpack:"p"`
}

// StepIterated records that a repeat step began iteration Iteration (from 1).
type StepIterated struct {
	Path      string `msgpack:"p"`
	Iteration int    `msgpack:"i"`
}

// TimerScheduled records a durable timer: a sleep step's (Path set) or the
// workflow's timeout (Path empty).
type TimerScheduled struct {
	Path    string    `msgpack:"p,omitempty"`
	TimerID string    `msgpack:"tid"`
	Due     time.Time `msgpack:"due"`
}

// ChildStarted records that a workflow step started child workflow WorkflowID.
type ChildStarted struct {
	Path       string `msgpack:"p"`
	Gen        int    `msgpack:"g"`
	WorkflowID string `msgpack:"id"`
	Definition string `msgpack:"def"`
	// Revision is the child definition's latest revision when the step
	// started, the one the child starts on (0 in records of earlier
	// versions, and when the definition was not found: the latest when
	// the child is started).
	Revision int `msgpack:"rev,omitempty"`
	Input    any `msgpack:"in"`
}

// FlowLimits are a task step's concurrency and rate limit, as executors
// apply them across runs: Scope (the definition and the step's id) and the
// keys name what is counted.
type FlowLimits struct {
	Scope string `msgpack:"s"`
	// ConcurrencyKey's attempts in flight at most ConcurrencyLimit (0: no
	// concurrency limit).
	ConcurrencyKey   string `msgpack:"ck,omitempty"`
	ConcurrencyLimit int    `msgpack:"cl,omitempty"`
	// RateKey's attempts started in each period RatePer at most RateLimit
	// (0: no rate limit).
	RateKey   string        `msgpack:"rk,omitempty"`
	RateLimit int           `msgpack:"rl,omitempty"`
	RatePer   time.Duration `msgpack:"rp,omitempty"`
}

// StepSuspended records that a task step whose retry policy says Suspend
// ran out of attempts: the step waits, and the workflow with it, until a
// WorkflowResumed gives it fresh attempts.
type StepSuspended struct {
	Path    string `msgpack:"p"`
	Gen     int    `msgpack:"g"`
	Attempt int    `msgpack:"a"`
	Error   Error  `msgpack:"e"`
}

// WorkflowResumed records a resume: the suspended steps of the workflow
// run again, each with a fresh attempt budget.
type WorkflowResumed struct {
	Reason string `msgpack:"r,omitempty"`
	// RequestID is the request's idempotency key, when it named one: a
	// repeat of it is applied once.
	RequestID string `msgpack:"req,omitempty"`
}

// StepHeld records that a task step's attempt waits, unstarted, for its
// flow control (Reason: concurrency or rate_limit; Detail says how), or,
// with Reason empty, that the attempt held before has started.
type StepHeld struct {
	Path    string `msgpack:"p"`
	Gen     int    `msgpack:"g"`
	Attempt int    `msgpack:"a"`
	Reason  string `msgpack:"r,omitempty"`
	Detail  string `msgpack:"d,omitempty"`
}

// WorkflowQueued records that a run of a definition with concurrency
// waits for one of its key's slots before it begins (status QUEUED).
type WorkflowQueued struct {
	Key string `msgpack:"k"`
}

// WorkflowAdmitted records that a queued run took a slot and begins.
type WorkflowAdmitted struct{}

// WorkflowExpired records that a closed run's retention ran out and its
// deletion began: nothing is appended after it (a retry whose read came
// before it fails its conditional append, and one after it is refused),
// so what the deletion read is all there is to delete.
type WorkflowExpired struct {
	// Retention is how long the run was kept after its close.
	Retention time.Duration `msgpack:"r,omitempty"`
}

// WorkflowRetried records a redrive: a failed workflow runs again from its
// failed steps.
type WorkflowRetried struct {
	Reason string `msgpack:"r,omitempty"`
	// RequestID is the request's idempotency key, when it named one: a
	// repeat of it is applied once.
	RequestID string `msgpack:"req,omitempty"`
}

// StepCanceled records that an open step (running or waiting) was canceled
// because the parallel or foreach step Cause around it failed: a result or
// timer of it that comes later is ignored, and a child workflow it started
// is to be canceled.
type StepCanceled struct {
	Path  string `msgpack:"p"`
	Cause string `msgpack:"c,omitempty"`
}

// StepReopened records that a redrive resumes a container step (switch,
// foreach, parallel, repeat, or a wait running its timeout steps) that had
// failed or was canceled: it runs again from where it stopped, keeping its
// items, chosen case and iteration.
type StepReopened struct {
	Path string `msgpack:"p"`
	// BudgetFrom is, for a repeat, the first iteration that counts against
	// its max_iterations from now on.
	BudgetFrom int `msgpack:"bf,omitempty"`
}

// SearchAttributesSet records search attributes a decision evaluated: the
// definition's at the start (Path empty), or a step's once it completed
// (Path is the step's). Its Attributes replace those of the same names set
// before. Values are strings, int64s, float64s, bools and UTC time.Times.
type SearchAttributesSet struct {
	Path       string         `msgpack:"p,omitempty"`
	Attributes map[string]any `msgpack:"a"`
}

// Terminal reports whether the event closes a workflow.
func (e Event) Terminal() bool {
	switch e.Type {
	case TypeWorkflowCompleted, TypeWorkflowFailed, TypeWorkflowCanceled:
		return true
	}
	return false
}

// Attempt returns the attempt number the event carries, or 0.
func (e Event) Attempt() int {
	switch {
	case e.StepAttemptFailed != nil:
		return e.StepAttemptFailed.Attempt
	case e.StepCompleted != nil:
		return e.StepCompleted.Attempt
	case e.StepFailed != nil:
		return e.StepFailed.Attempt
	case e.StepSuspended != nil:
		return e.StepSuspended.Attempt
	case e.StepHeld != nil:
		return e.StepHeld.Attempt
	case e.StepScheduled != nil:
		return e.StepScheduled.FirstAttempt
	}
	return 0
}

// Payload returns the event's payload (one of the pointer fields).
func (e Event) Payload() any {
	switch e.Type {
	case TypeWorkflowStarted:
		return e.WorkflowStarted
	case TypeStepScheduled:
		return e.StepScheduled
	case TypeStepAttemptFailed:
		return e.StepAttemptFailed
	case TypeStepCompleted:
		return e.StepCompleted
	case TypeStepFailed:
		return e.StepFailed
	case TypeWaitStarted:
		return e.WaitStarted
	case TypeSignalReceived:
		return e.SignalReceived
	case TypeTimerFired:
		return e.TimerFired
	case TypeCancelRequested:
		return e.CancelRequested
	case TypeWorkflowCompleted:
		return e.WorkflowCompleted
	case TypeWorkflowFailed:
		return e.WorkflowFailed
	case TypeWorkflowCanceled:
		return e.WorkflowCanceled
	case TypeStepStarted:
		return e.StepStarted
	case TypeStepSkipped:
		return e.StepSkipped
	case TypeStepIterated:
		return e.StepIterated
	case TypeTimerScheduled:
		return e.TimerScheduled
	case TypeChildStarted:
		return e.ChildStarted
	case TypeWorkflowRetried:
		return e.WorkflowRetried
	case TypeStepCanceled:
		return e.StepCanceled
	case TypeStepReopened:
		return e.StepReopened
	case TypeSearchAttributesSet:
		return e.SearchAttributesSet
	case TypeStepSuspended:
		return e.StepSuspended
	case TypeWorkflowResumed:
		return e.WorkflowResumed
	case TypeWorkflowQueued:
		return e.WorkflowQueued
	case TypeWorkflowAdmitted:
		return e.WorkflowAdmitted
	case TypeStepHeld:
		return e.StepHeld
	case TypeWorkflowExpired:
		return e.WorkflowExpired
	}
	return nil
}

// Validate checks that the event's payload matches its type.
func (e Event) Validate() error {
	p := e.Payload()
	if p == nil {
		if e.Type == "" {
			return fmt.Errorf("%w: unknown event type %q", ErrCorrupt, e.Type)
		}
		return fmt.Errorf("%w: unknown event type %q", ErrNewer, e.Type)
	}
	// A typed nil pointer inside the interface means the payload is missing.
	if isNilPointer(p) {
		return missing(e.Type)
	}
	return nil
}

func isNilPointer(p any) bool {
	switch v := p.(type) {
	case *WorkflowStarted:
		return v == nil
	case *StepScheduled:
		return v == nil
	case *StepAttemptFailed:
		return v == nil
	case *StepCompleted:
		return v == nil
	case *StepFailed:
		return v == nil
	case *WaitStarted:
		return v == nil
	case *SignalReceived:
		return v == nil
	case *TimerFired:
		return v == nil
	case *CancelRequested:
		return v == nil
	case *WorkflowCompleted:
		return v == nil
	case *WorkflowFailed:
		return v == nil
	case *WorkflowCanceled:
		return v == nil
	case *StepStarted:
		return v == nil
	case *StepSkipped:
		return v == nil
	case *StepIterated:
		return v == nil
	case *TimerScheduled:
		return v == nil
	case *ChildStarted:
		return v == nil
	case *WorkflowRetried:
		return v == nil
	case *StepCanceled:
		return v == nil
	case *StepReopened:
		return v == nil
	case *SearchAttributesSet:
		return v == nil
	case *StepSuspended:
		return v == nil
	case *WorkflowResumed:
		return v == nil
	case *WorkflowQueued:
		return v == nil
	case *WorkflowAdmitted:
		return v == nil
	case *StepHeld:
		return v == nil
	case *WorkflowExpired:
		return v == nil
	}
	return false
}

func missing(t Type) error {
	return fmt.Errorf("%w: %s event without its payload", ErrCorrupt, t)
}

// Encode returns the msgpack encoding of a record of evs.
func Encode(evs ...Event) ([]byte, error) {
	if len(evs) == 0 {
		return nil, errors.New("encode: empty record")
	}
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			return nil, err
		}
	}
	return msgpack.Marshal(Record{V: RecordVersion, Events: evs})
}

// Decode parses a record. Errors wrap ErrCorrupt.
func Decode(b []byte) (Record, error) {
	var r Record
	if err := decodeLoose(b, &r); err != nil {
		if v, ok := peekVersion(b); ok && v > RecordVersion {
			// A layout this build does not know, named as a newer one.
			return Record{}, fmt.Errorf("%w: record version %d, this build reads %d (%v)", ErrNewer, v, RecordVersion, err)
		}
		return Record{}, err
	}
	switch {
	case r.V > RecordVersion:
		return Record{}, fmt.Errorf("%w: record version %d, this build reads %d", ErrNewer, r.V, RecordVersion)
	case r.V != RecordVersion:
		return Record{}, fmt.Errorf("%w: unsupported record version %d", ErrCorrupt, r.V)
	}
	if len(r.Events) == 0 {
		return Record{}, fmt.Errorf("%w: record holds no events", ErrCorrupt)
	}
	for i, e := range r.Events {
		if err := e.Validate(); err != nil {
			return Record{}, fmt.Errorf("event %d: %w", i, err)
		}
		r.Events[i].Time = e.Time.UTC()
		if err := normalizeValues(&r.Events[i]); err != nil {
			return Record{}, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return r, nil
}

// peekVersion reads only a record's version field ("v"), for a record
// that does not decode as a whole.
func peekVersion(b []byte) (v int, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if checkShape(b) != nil {
		return 0, false
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	fields, err := dec.DecodeMapLen()
	if err != nil {
		return 0, false
	}
	for range fields {
		key, err := dec.DecodeString()
		if err != nil {
			return 0, false
		}
		if key == "v" {
			v, err := dec.DecodeInt()
			return v, err == nil
		}
		if dec.Skip() != nil {
			return 0, false
		}
	}
	return 0, false
}

// Peek returns how many events an encoded record holds and the type of its
// last one without decoding the payloads: cheap enough for watchers that
// only count events and look for a workflow's end.
func Peek(b []byte) (n int, last Type, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	if err := checkShape(b); err != nil {
		return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	fields, err := dec.DecodeMapLen()
	if err != nil {
		return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for range fields {
		key, err := dec.DecodeString()
		if err != nil {
			return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if key != "e" {
			if err := dec.Skip(); err != nil {
				return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			continue
		}
		if n, err = dec.DecodeArrayLen(); err != nil {
			return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		for i := range n {
			efields, err := dec.DecodeMapLen()
			if err != nil {
				return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			for range efields {
				k, err := dec.DecodeString()
				if err != nil {
					return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				if k == "t" && i == n-1 {
					t, err := dec.DecodeString()
					if err != nil {
						return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
					}
					last = Type(t)
					continue
				}
				if err := dec.Skip(); err != nil {
					return 0, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
			}
		}
	}
	if n == 0 {
		return 0, "", fmt.Errorf("%w: record holds no events", ErrCorrupt)
	}
	return n, last, nil
}

// Terminal reports whether events of type t close a workflow.
func (t Type) Terminal() bool { return Event{Type: t}.Terminal() }
