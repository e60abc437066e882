package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weftworks/weft/orchestrator/workflow"
)

// Handler runs one attempt of a task. It returns the step's output (any
// JSON-like value: nil, bool, int64, float64, string, []any, map[string]any)
// or an error. An output that breaks the rule for values (nested deeper
// than 64 levels, a string or map key that is not valid UTF-8, a number
// that is not finite; see eventstore/value.Check) fails the step with
// ErrTypeOutput and is not retried: encode binary data, base64 say. A
// typed output (a struct, a named type) is taken as encoding/json writes
// it ([]byte as base64), except that a string in it that is not UTF-8
// fails the step the same way rather than being written as U+FFFD. Error
// types and messages are recorded as text, with bytes that are not UTF-8
// replaced by U+FFFD. A plain error is retried per the step's retry policy;
// NonRetryable and RetryAfter change that; a panic, or a runtime.Goexit
// (t.FailNow, say), becomes a failed attempt.
// The context ends when the attempt's timeout passes or the worker stops;
// a handler that has not returned 5 seconds later is given up on (it runs
// on, its outcome dropped): the attempt is recorded as timed out, or the
// command given back when the worker stops.
type Handler func(ctx context.Context, t *Task) (any, error)

// Task is what a handler knows about the attempt it runs.
type Task struct {
	// WorkflowID is the workflow the step belongs to.
	WorkflowID string
	// Path addresses the step inside the workflow, e.g. "welcome" or "items[3].charge".
	Path string
	// Type is the task type the handler was registered for.
	Type string
	// Attempt counts from 1 and grows with every failed attempt recorded
	// in history. A delivery that ended without a recorded result (its
	// worker stopped or died) is followed by the same attempt again.
	Attempt int
	// IdempotencyKey is the same for every attempt of the step
	// (workflow id + step path): pass it to outside systems so that their
	// side effects happen once.
	IdempotencyKey string
	// Input is the step's evaluated input.
	Input any

	heartbeat func()
}

// Heartbeat tells Weft the attempt is alive: it extends the attempt's
// timeout by another full timeout from now and keeps the command from being
// redelivered. Long tasks call it periodically.
func (t *Task) Heartbeat() {
	if t.heartbeat != nil {
		t.heartbeat()
	}
}

// NewTask returns a Task for calling handlers outside a worker (tests,
// local tools). Heartbeat is a no-op on it.
func NewTask(workflowID, path, typ string, attempt int, input any) *Task {
	return &Task{WorkflowID: workflowID, Path: path, Type: typ, Attempt: attempt,
		IdempotencyKey: workflowID + "/" + path, Input: input}
}

// Error is a typed task failure. Its Type is matched against a retry
// policy's non_retryable list and shows in history.
type Error struct {
	// Type classifies the failure, e.g. "bad_request", "timeout", "unavailable".
	Type string
	// Message says what went wrong.
	Message string
	// NonRetryable fails the step at once whatever the policy says.
	NonRetryable bool
	// RetryAfter, when positive, replaces the policy's backoff before the next attempt.
	RetryAfter time.Duration
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Type == "" {
		return msg
	}
	return e.Type + ": " + msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// NewError returns a retryable error of the given type.
func NewError(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// NonRetryable marks err so that the step fails at once, without retries.
func NonRetryable(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.NonRetryable = true
		return &c
	}
	return &Error{Type: workflow.ErrTypeHandler, Message: err.Error(), NonRetryable: true, Err: err}
}

// RetryAfter asks for the next attempt after d instead of the policy's backoff.
// Attempts are still bounded by the policy's max_attempts.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		err = errors.New("retry requested")
	}
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.RetryAfter = d
		return &c
	}
	return &Error{Type: workflow.ErrTypeHandler, Message: err.Error(), RetryAfter: d, Err: err}
}
