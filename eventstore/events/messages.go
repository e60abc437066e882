package events

import (
	"bytes"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/value"
)

// Outcome is how a task attempt ended.
type Outcome uint8

// Attempt outcomes reported by executors.
const (
	// OutcomeCompleted: the step succeeded with Output.
	OutcomeCompleted Outcome = 1
	// OutcomeAttemptFailed: the attempt failed and the step is retried after RetryDelay.
	OutcomeAttemptFailed Outcome = 2
	// OutcomeFailed: the step failed for good (non-retryable, or attempts exhausted).
	OutcomeFailed Outcome = 3
	// OutcomeHeld: the attempt is not started yet, held by the step's flow
	// control; Error.Type says which (concurrency, rate_limit) and
	// Error.Message how. No attempt is used.
	OutcomeHeld Outcome = 4
	// OutcomeStarted: an attempt held before has started.
	OutcomeStarted Outcome = 5
)

// Result is an executor's report of one task attempt, sent to the
// orchestrator, which turns it into a history event.
type Result struct {
	V          int           `msgpack:"v"`
	WorkflowID string        `msgpack:"wf"`
	Path       string        `msgpack:"p"`
	Gen        int           `msgpack:"g"`
	Attempt    int           `msgpack:"a"`
	Outcome    Outcome       `msgpack:"o"`
	Output     any           `msgpack:"out"`
	Error      *Error        `msgpack:"err,omitempty"`
	RetryDelay time.Duration `msgpack:"d,omitempty"`
	Time       time.Time     `msgpack:"at"`
	// Cmd is the history sequence of the step command the attempt ran, or,
	// for a child's outcome, of the parent's record that started the child
	// (ParentRef.Seq; 0 from a child started before it was recorded): an
	// orchestrator judges the result only on a history that reaches it.
	Cmd uint64 `msgpack:"cmd,omitempty"`
	// ParentCreated is, on a child workflow's outcome, the start time of
	// the parent run that started the child (ParentRef.Created): another
	// run of the parent's id does not take it. Zero otherwise.
	ParentCreated time.Time `msgpack:"pc,omitempty"`
}

// Event returns the history event that records the result.
func (r Result) Event() Event {
	ev := Event{Time: r.Time}
	var errv Error
	if r.Error != nil {
		errv = *r.Error
	}
	switch r.Outcome {
	case OutcomeHeld, OutcomeStarted:
		ev.Type = TypeStepHeld
		ev.StepHeld = &StepHeld{Path: r.Path, Gen: r.Gen, Attempt: r.Attempt}
		if r.Outcome == OutcomeHeld {
			ev.StepHeld.Reason, ev.StepHeld.Detail = errv.Type, errv.Message
		}
	case OutcomeCompleted:
		ev.Type = TypeStepCompleted
		ev.StepCompleted = &StepCompleted{Path: r.Path, Gen: r.Gen, Attempt: r.Attempt, Output: r.Output}
	case OutcomeAttemptFailed:
		ev.Type = TypeStepAttemptFailed
		ev.StepAttemptFailed = &StepAttemptFailed{Path: r.Path, Gen: r.Gen, Attempt: r.Attempt, Error: errv, RetryDelay: r.RetryDelay}
	default:
		ev.Type = TypeStepFailed
		ev.StepFailed = &StepFailed{Path: r.Path, Gen: r.Gen, Attempt: r.Attempt, Error: errv}
	}
	return ev
}

// TimerDue is the message a durable timer delivers when it comes due.
type TimerDue struct {
	V          int       `msgpack:"v"`
	WorkflowID string    `msgpack:"wf"`
	TimerID    string    `msgpack:"tid"`
	Path       string    `msgpack:"p,omitempty"`
	Due        time.Time `msgpack:"due"`
	// After is the workflow's last history sequence when the timer was
	// scheduled: the record that set it comes after it. A history read
	// that does not go past After may simply not show that record yet.
	After uint64 `msgpack:"after,omitempty"`
}

// EncodeResult encodes an executor result.
func EncodeResult(r Result) ([]byte, error) {
	r.V = 1
	return msgpack.Marshal(r)
}

// DecodeResult decodes an executor result; errors wrap ErrCorrupt.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	var outErr error // why the output cannot be read, when only it cannot
	if err := decodeLoose(b, &r); err != nil {
		if r, outErr = decodeOutputApart(b); outErr == nil {
			return Result{}, err
		}
	}
	if r.V != 1 || r.WorkflowID == "" || r.Path == "" || r.Outcome < OutcomeCompleted || r.Outcome > OutcomeStarted {
		return Result{}, fmt.Errorf("%w: invalid result", ErrCorrupt)
	}
	r.Time = r.Time.UTC()
	if r.Output != nil || outErr != nil {
		out, err := r.Output, outErr
		if err == nil {
			out, err = value.NormalizeOwned(r.Output)
		}
		if err != nil {
			// The result is read; its output cannot be (a map key that is
			// not a string, a whole number beyond an int64, from an
			// executor of another language, say). Taken as corrupt, it
			// would be given back for ever and its step never end: the
			// step fails, as for any output that cannot be recorded.
			r.Output = nil
			if r.Outcome == OutcomeCompleted {
				r.Outcome = OutcomeFailed
				r.Error = &Error{Type: errTypeInvalidOutput, Message: "output: " + err.Error()}
			}
			return r, nil
		}
		r.Output = out
	}
	return r, nil
}

// decodeOutputApart decodes the result b whose decoding failed with its
// output apart: the result without it, and why the output cannot be read
// (maps are read with keys of any type, for Normalize to say which is
// not a string). A nil error means the output was not the cause: the
// result is corrupt.
func decodeOutputApart(b []byte) (r Result, outErr error) {
	var fields map[string]msgpack.RawMessage
	if decodeLoose(b, &fields) != nil || fields["out"] == nil {
		return Result{}, nil
	}
	raw := fields["out"]
	delete(fields, "out")
	rest, err := msgpack.Marshal(fields)
	if err != nil || decodeLoose(rest, &r) != nil {
		return Result{}, nil
	}
	dec := msgpack.NewDecoder(bytes.NewReader(raw))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() })
	var out any
	err = func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
		}()
		return dec.Decode(&out)
	}()
	if err == nil {
		if _, err = value.NormalizeOwned(out); err == nil {
			return Result{}, nil // read apart, the output is fine: not the cause
		}
	}
	return r, err
}

// errTypeInvalidOutput is the error type of a step whose output cannot be
// recorded (workflow.ErrTypeInvalidOutput, which this package cannot
// import).
const errTypeInvalidOutput = "invalid_output"

// EncodeTimer encodes a timer message.
func EncodeTimer(t TimerDue) ([]byte, error) {
	t.V = 1
	return msgpack.Marshal(t)
}

// DecodeTimer decodes a timer message; errors wrap ErrCorrupt.
func DecodeTimer(b []byte) (TimerDue, error) {
	var t TimerDue
	if err := decodeLoose(b, &t); err != nil {
		return TimerDue{}, err
	}
	if t.V != 1 || t.WorkflowID == "" || t.TimerID == "" {
		return TimerDue{}, fmt.Errorf("%w: invalid timer", ErrCorrupt)
	}
	t.Due = t.Due.UTC()
	return t, nil
}

func decodeLoose(b []byte, v any) (err error) {
	// The decoder can panic on some malformed input: that is corruption too.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrCorrupt, r)
		}
	}()
	if err := checkShape(b); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	dec.UseLooseInterfaceDecoding(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// normalizeValues turns decoded payload values into eventstore/value's
// normalized form (msgpack decodes small positive ints as uint64).
func normalizeValues(e *Event) error {
	var err error
	n := func(v *any) {
		if err == nil && *v != nil {
			*v, err = value.NormalizeOwned(*v)
		}
	}
	utc := func(t *time.Time) { *t = t.UTC() }
	switch e.Type {
	case TypeWorkflowStarted:
		n(&e.WorkflowStarted.Input)
	case TypeStepScheduled:
		n(&e.StepScheduled.Input)
	case TypeStepCompleted:
		n(&e.StepCompleted.Output)
		if e.StepCompleted.Vars != nil {
			var v any = e.StepCompleted.Vars
			n(&v)
			if m, ok := v.(map[string]any); ok {
				e.StepCompleted.Vars = m
			}
		}
	case TypeStepStarted:
		if e.StepStarted.Items != nil {
			var v any = e.StepStarted.Items
			n(&v)
			if l, ok := v.([]any); ok {
				e.StepStarted.Items = l
			}
		}
	case TypeChildStarted:
		n(&e.ChildStarted.Input)
	case TypeSignalReceived:
		n(&e.SignalReceived.Payload)
	case TypeWorkflowCompleted:
		n(&e.WorkflowCompleted.Output)
	case TypeWaitStarted:
		utc(&e.WaitStarted.TimeoutAt)
	case TypeTimerFired:
		utc(&e.TimerFired.Due)
	case TypeTimerScheduled:
		utc(&e.TimerScheduled.Due)
	case TypeSearchAttributesSet:
		if err = NormalizeSearch(e.SearchAttributesSet.Attributes); err != nil {
			err = fmt.Errorf("search attributes: %w", err)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// NormalizeSearch puts decoded search attribute values in the form they
// were recorded in, in place: times in UTC, numbers as int64 or float64.
// It fails on a value that is not a string, number, bool or time.
func NormalizeSearch(m map[string]any) error {
	for k, v := range m {
		switch x := v.(type) {
		case time.Time:
			m[k] = x.UTC()
		case string, bool, int64, float64:
		default:
			n, err := value.Normalize(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			switch n.(type) {
			case int64, float64:
				m[k] = n
			default:
				return fmt.Errorf("%s: a %T is not a search attribute value", k, v)
			}
		}
	}
	return nil
}
