package trigger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
)

// Event is one occurrence that fires a trigger: a message on a trigger
// subject, a cron tick or a webhook delivery.
type Event struct {
	// Vars are what the trigger's filter, id and input see: event, headers
	// and subject, and tick for a cron tick.
	Vars map[string]any
	// Identity is the same for the same occurrence however often it is
	// handled (MessageIdentity, TickIdentity, KeyIdentity). Empty: it has
	// none, and each handling starts a run of its own.
	Identity string
	// Time stamps the run's WorkflowStarted event.
	Time time.Time
}

// Fired says what firing a trigger did.
type Fired struct {
	// Skipped is true when the trigger's filter passed the event by:
	// nothing was started.
	Skipped bool
	// WorkflowID is the run the event maps to.
	WorkflowID string
	// Started is false when that run already existed.
	Started bool
}

// RefusedError says an event starts no run because of itself or its
// trigger: a filter, id or input expression that fails, an id that is not
// a valid workflow id, an input against the rule for values, or a
// definition revision that is gone. Trying again cannot help.
type RefusedError struct {
	// Reason says why, for a trigger failure's record (read with a
	// token) and, unless Answer is set, a webhook's answer.
	Reason string
	// Answer, when set, is what a webhook's caller is told instead of
	// Reason: that caller may hold no token, so it learns nothing of
	// other definitions' runs beyond what its own event maps onto.
	Answer string
	// Err is the cause: an expression's error, value.ErrInvalid, a
	// *definition.InputError, eventstore.ErrNotFound, or nil.
	Err error
}

func (e *RefusedError) Error() string { return e.Reason }

// Unwrap returns the cause.
func (e *RefusedError) Unwrap() error { return e.Err }

func refused(err error, format string, args ...any) *RefusedError {
	return &RefusedError{Reason: fmt.Sprintf(format, args...), Err: err}
}

// otherRun refuses an event whose run id names id, a run of definition
// other, for a trigger of definition def.
func otherRun(id, other, def string) error {
	const fix = "make the trigger's id template name runs of its own (prefix it, say)"
	r := refused(runs.ErrAlreadyExists, "id: workflow %q exists and is a run of definition %q, not of %q: %s", id, other, def, fix)
	r.Answer = fmt.Sprintf("id: workflow %q is a run of another definition, not of %q: %s", id, def, fix)
	return r
}

// Fire starts the run of trigger m for ev: it evaluates the trigger's
// filter (false: Fired.Skipped), its id (without an id template: RunID)
// and its input (default: the event), and starts the run (runs.Start) in
// the name of Caller. A run already started for the same occurrence, or
// one that an id template maps it onto, is the event's run: Started is
// false.
//
// Errors: a *RefusedError for an event that can start no run; any other
// error is the store's, and worth trying again.
func Fire(ctx context.Context, store *eventstore.Store, defs *runs.Definitions, m Match, ev Event) (Fired, error) {
	t := m.Trigger
	sc := definition.Scope{Trigger: ev.Vars}
	if t.Filter != nil {
		v, err := t.Filter.Eval(sc)
		if err != nil {
			return Fired{}, refused(err, "filter: %v", err)
		}
		if b, _ := v.(bool); !b {
			return Fired{Skipped: true}, nil
		}
	}
	id := RunID(m.Definition, t, ev.Identity)
	if t.ID != nil {
		v, err := t.ID.Eval(sc)
		if err != nil {
			return Fired{}, refused(err, "id: %v", err)
		}
		s, ok := v.(string)
		if !ok || !eventstore.ValidWorkflowID(s) {
			return Fired{}, refused(nil, "id: %s is not a valid workflow id (1-128 letters, digits, '_', '-', '=')", quoted(v))
		}
		id = s
	}
	input := ev.Vars["event"]
	if t.Input != nil {
		v, err := t.Input.Eval(sc)
		if err != nil {
			return Fired{}, refused(err, "input: %v", err)
		}
		input = v
	}
	reqID := ""
	if ev.Identity != "" {
		reqID = "trigger/" + t.Key + "/" + ev.Identity
	}
	var od *runs.OtherDefinitionError
	res, err := runs.Start(ctx, store, defs, runs.StartRequest{Definition: m.Definition, Revision: m.Revision,
		Input: input, WorkflowID: id, RequestID: reqID, Time: ev.Time, Identity: Caller(m, ev)})
	switch {
	case err == nil:
		return Fired{WorkflowID: res.WorkflowID, Started: res.Started}, nil
	case errors.As(err, &od):
		return Fired{}, otherRun(id, od.Definition, m.Definition)
	case errors.Is(err, runs.ErrAlreadyExists):
		// The id template mapped this event onto an existing run: that is
		// its dedup, when the run is one of this definition's. Another
		// definition's run is not this event's: taken as its dedup, the
		// event would start nothing and leave no trace.
		if other, err := otherDefinition(ctx, store, id, m.Definition); err != nil {
			return Fired{}, err
		} else if other != "" {
			return Fired{}, otherRun(id, other, m.Definition)
		}
		return Fired{WorkflowID: id}, nil
	case errors.Is(err, eventstore.ErrNotFound):
		return Fired{}, refused(err, "definition %q revision %d not found", m.Definition, m.Revision)
	case errors.Is(err, value.ErrInvalid):
		return Fired{}, refused(err, "input: %v", err)
	case errors.Is(err, eventstore.ErrTooLarge):
		return Fired{}, refused(err, "input: the run's start, with its input, is larger than the NATS server accepts (%d bytes): send a smaller event or compute a smaller input", store.MaxPayload())
	case errors.As(err, new(*definition.InputError)):
		return Fired{}, refused(err, "%v", err)
	}
	return Fired{}, err
}

// otherDefinition returns the definition of run id when it is not def;
// "" when it is, or when that cannot be told (the run deleted since, or
// its first record one this build cannot read).
func otherDefinition(ctx context.Context, store *eventstore.Store, id, def string) (string, error) {
	first, err := store.First(ctx, id)
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case first.Err != nil || first.Record.Events[0].WorkflowStarted == nil:
		return "", nil
	}
	if d := first.Record.Events[0].WorkflowStarted.Definition; d != def {
		return d, nil
	}
	return "", nil
}

// Outcome names what Fire did for the trigger metrics' outcome label:
// started, existing, skipped, refused (a *RefusedError) or error.
func Outcome(f Fired, err error) string {
	var ref *RefusedError
	switch {
	case errors.As(err, &ref):
		return metrics.TriggerRefused
	case err != nil:
		return metrics.TriggerError
	case f.Skipped:
		return metrics.TriggerSkipped
	case f.Started:
		return metrics.TriggerStarted
	}
	return metrics.TriggerExisting
}

// Caller is the identity a run started by trigger m for ev records as who
// asked for it (events.Event.Identity): "webhook:<name>" for a webhook,
// "cron:<definition>" for a cron tick, and "subject:<subject>" for a
// message, naming the subject it came on (the event's subject variable).
func Caller(m Match, ev Event) string {
	t := m.Trigger
	switch t.Kind {
	case definition.TriggerWebhook:
		return "webhook:" + t.Webhook
	case definition.TriggerCron:
		return "cron:" + m.Definition
	}
	subject, _ := ev.Vars["subject"].(string)
	if subject == "" {
		subject = t.Subject
	}
	return "subject:" + subject
}

// RunID is the workflow id of the run trigger t of definition def starts
// for an occurrence with the given identity, when t has no id template:
// "<definition>-<trigger key>-<identity>". It is empty when the
// occurrence has no identity: the run gets a random id.
func RunID(def string, t *definition.Trigger, identity string) string {
	if identity == "" {
		return ""
	}
	return def + "-" + t.Key + "-" + identity
}

// MessageIdentity is the identity of a message on a trigger subject: the
// producer's Nats-Msg-Id when it set one, else its place in the trigger
// stream, hashed (20 hex digits).
func MessageIdentity(ev *eventstore.TriggerEvent) string {
	if id := ev.Headers.Get(eventstore.MsgIDHeader); id != "" {
		return hashIdentity("msgid:" + id)
	}
	return hashIdentity(fmt.Sprintf("seq:%d", ev.Seq))
}

// TickIdentity is the identity of a cron tick: its time, in UTC, as
// 20060102T150405Z.
func TickIdentity(tick time.Time) string { return tick.UTC().Format("20060102T150405Z") }

// KeyIdentity is the identity of a webhook delivery: its Idempotency-Key,
// hashed (20 hex digits); empty without one.
func KeyIdentity(key string) string {
	if key == "" {
		return ""
	}
	return hashIdentity("key:" + key)
}

// hashIdentity returns 20 hex digits of the SHA-256 of s.
func hashIdentity(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:10])
}

// quoted renders v for a reason, at most 200 bytes of it: a value from an
// event can be as large as the event.
func quoted(v any) string {
	s := fmt.Sprint(v)
	if len(s) <= 200 {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", strings.ToValidUTF8(s[:200], ""), len(s))
}
