package runs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/internal/telemetry"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// ErrAlreadyExists is returned by Start when the workflow id is taken by a
// run started with another request id, or of another definition
// (OtherDefinitionError).
var ErrAlreadyExists = errors.New("workflow already exists")

// OtherDefinitionError is the ErrAlreadyExists of a start whose workflow
// id and request id are those of a run of another definition.
type OtherDefinitionError struct {
	// WorkflowID is the run's id; Definition its definition, Want the
	// one the start asked for.
	WorkflowID, Definition, Want string
}

// Error names the run and both definitions.
func (e *OtherDefinitionError) Error() string {
	return fmt.Sprintf("workflow %q is a run of definition %q, not of %q: %v", e.WorkflowID, e.Definition, e.Want, ErrAlreadyExists)
}

// Unwrap returns ErrAlreadyExists.
func (e *OtherDefinitionError) Unwrap() error { return ErrAlreadyExists }

// OtherInputError is the ErrAlreadyExists of a start that repeats a
// request (its workflow id and request id) with another input, when the
// start asked for the same input (StartRequest.SameInput).
type OtherInputError struct {
	WorkflowID, RequestID string
}

// Error names the run and the request.
func (e *OtherInputError) Error() string {
	return fmt.Sprintf("request %q started workflow %q with another input: %v", e.RequestID, e.WorkflowID, ErrAlreadyExists)
}

// Unwrap returns ErrAlreadyExists.
func (e *OtherInputError) Unwrap() error { return ErrAlreadyExists }

// StartRequest asks for a new workflow run.
type StartRequest struct {
	// Definition and Revision (0: latest) choose what runs.
	Definition string
	Revision   int
	// Input is the run's input (a normalized value).
	Input any
	// WorkflowID names the run; empty derives it from RequestID, or
	// generates one when that is empty too.
	WorkflowID string
	// RequestID makes the start idempotent: the same id and request id
	// return the existing run.
	RequestID string
	// Time stamps the WorkflowStarted event.
	Time time.Time
	// Identity is who asked for the run (see events.Event.Identity),
	// recorded on the WorkflowStarted event.
	Identity string
	// SameInput refuses a repeat of the request with another input
	// (OtherInputError): a caller that reuses a request id for another
	// start would otherwise be answered with a run that is not its own.
	// A trigger's starts leave it unset: an event delivered again after a
	// put changed its trigger's input template computes another input, and
	// is still the event its run was started for.
	SameInput bool
}

// ID returns the id a start of req gives its run: WorkflowID, else one
// derived from RequestID, else a new random one (so a caller that needs
// the id before the start sets WorkflowID to it).
func (req StartRequest) ID() string {
	switch {
	case req.WorkflowID != "":
		return req.WorkflowID
	case req.RequestID != "":
		return DerivedID(req.Definition, req.RequestID)
	default:
		return RandomID()
	}
}

// StartResult says which run a start refers to.
type StartResult struct {
	WorkflowID string
	Revision   int
	// Started is false when the run already existed.
	Started bool
}

// Start begins a new workflow: an orchestrator records its WorkflowStarted
// event together with its first step command (eventstore.StartDirect), or
// the event is appended to a new history and orchestrators pick it up from
// there.
//
// Errors: eventstore.ErrNotFound for an unknown definition or revision;
// ErrAlreadyExists when the id belongs to another request's run, or to a
// run of another definition; an error
// wrapping value.ErrInvalid for an input that value.Check refuses, and a
// *definition.InputError for one the definition's input_schema refuses
// (nothing is stored). Inputs from outside are checked with the default limits
// before; the input a trigger builds may nest up to value.MaxBuiltDepth.
func Start(ctx context.Context, store *eventstore.Store, defs *Definitions, req StartRequest) (StartResult, error) {
	if err := value.Check("input", req.Input, value.Limits{MaxDepth: value.MaxBuiltDepth}); err != nil {
		return StartResult{}, err
	}
	def, rec, err := defs.Load(ctx, req.Definition, req.Revision)
	if err != nil {
		return StartResult{}, err
	}
	if err := def.CheckInput(req.Input); err != nil {
		return StartResult{}, err
	}
	wf := req.ID()
	reqID := req.RequestID
	if reqID == "" {
		reqID = RandomID()
	}
	if req.Time.IsZero() {
		req.Time = time.Now()
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// A start from no traced request (a trigger) starts the run's trace.
		var span trace.Span
		ctx, span = telemetry.Tracer(nil).Start(ctx, "weft.start", trace.WithAttributes(
			telemetry.WorkflowID.String(wf), telemetry.Definition.String(rec.Name)))
		defer span.End()
	}
	ev := events.Event{Type: events.TypeWorkflowStarted, Time: req.Time.UTC(), Identity: req.Identity,
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: rec.Name, Revision: rec.Revision, Input: req.Input, RequestID: reqID,
			Trace: telemetry.TraceParent(ctx)}}
	msgID := "start/" + wf + "/" + eventstore.MsgIDPart(reqID)
	res := StartResult{WorkflowID: wf, Started: true, Revision: rec.Revision}
	// An orchestrator records the start with its first step command, or
	// declines; then the start is appended for the orchestrators to consume.
	if directCandidate(def) && store.StartDirect(ctx, wf, msgID, ev) {
		return res, nil
	}
	var zero uint64
	_, err = store.AppendExternal(ctx, wf, &zero, msgID, ev)
	duplicate := errors.Is(err, eventstore.ErrDuplicate)
	switch {
	case err == nil:
		return res, nil
	case duplicate, errors.Is(err, eventstore.ErrConflict):
	default:
		return StartResult{}, err
	}
	first, err := store.First(ctx, wf)
	switch {
	case errors.Is(err, eventstore.ErrNotFound) && duplicate:
		// This request's start was recorded (the stream knows its message
		// id), and the run has been deleted since (retention): a retry of
		// a start that was done.
		res.Started = false
		return res, nil
	case errors.Is(err, eventstore.ErrNotFound):
		return StartResult{}, fmt.Errorf("workflow %q (started by another request, and deleted since): %w", wf, ErrAlreadyExists)
	case err != nil:
		return StartResult{}, err
	}
	if first.Err != nil || first.Record.Events[0].WorkflowStarted == nil {
		return StartResult{}, fmt.Errorf("workflow %q: %w", wf, ErrAlreadyExists)
	}
	ws := first.Record.Events[0].WorkflowStarted
	if ws.RequestID != reqID {
		return StartResult{}, fmt.Errorf("workflow %q (started by another request): %w", wf, ErrAlreadyExists)
	}
	if ws.Definition != rec.Name {
		// Not this request's run, whatever its request id says (two
		// definitions' triggers with one key and id template map an event
		// onto one id and one request id): answered as the same request,
		// this start would be taken as made, and nothing would say it
		// was not.
		return StartResult{}, &OtherDefinitionError{WorkflowID: wf, Definition: ws.Definition, Want: rec.Name}
	}
	if req.SameInput && !sameValue(ws.Input, req.Input) {
		return StartResult{}, &OtherInputError{WorkflowID: wf, RequestID: reqID}
	}
	// The same request: started by this call when the record carries this
	// call's event (an orchestrator recorded it, and its answer was lost),
	// by an earlier call otherwise.
	res.Started, res.Revision = first.Record.Events[0].Time.Equal(ev.Time), ws.Revision
	// The run is recorded whatever befalls its entry: an orchestrator that
	// took the start still writes it (it tries until it can).
	_ = listDirectStart(ctx, store, wf, first)
	return res, nil
}

// listDirectStart writes the listing entry of a run an orchestrator
// started directly, if there is none: the orchestrator answers a direct
// start once the entry is stored, and one whose answer was lost (it died
// first, or declined it as it stopped) may not have stored it. An entry
// the run's orchestrators wrote since replaces this one, never the
// reverse. A failure leaves the entry to the orchestrators.
func listDirectStart(ctx context.Context, store *eventstore.Store, wf string, first eventstore.Message) error {
	if first.External() {
		return nil // taken from the stream by an orchestrator, which lists it
	}
	if _, err := store.GetSummary(ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
		return err
	}
	st := &workflow.State{}
	if _, err := Fold(st, []eventstore.Message{first}, nil); err != nil {
		return err
	}
	if err := store.PutSummaries(ctx, []eventstore.Summary{Summary(wf, st)})[0]; err != nil && !errors.Is(err, eventstore.ErrSuperseded) {
		return err
	}
	return nil
}

// directCandidate says whether a start of def can decide one step command
// and nothing else (what an orchestrator records together with the start):
// its first step is an unconditional task, and the run has no timeout (a
// timer) and no concurrency (its first decision queues it). Other starts
// skip asking, which an orchestrator would decline.
func directCandidate(def *definition.Definition) bool {
	return def.Timeout == 0 && def.Concurrency == nil && len(def.Steps) > 0 && def.Steps[0].Kind == definition.KindTask && def.Steps[0].If == nil
}

// DerivedID is the workflow id of a start without one: the same for the
// same definition and request id, so a retried start finds its run.
func DerivedID(def, reqID string) string {
	h := sha256.Sum256([]byte(def + "\x00" + reqID))
	return hex.EncodeToString(h[:12])
}

// RandomID returns a new random workflow id.
func RandomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sameValue reports whether a and b are the same value once normalized (a
// recorded input reads back with the integer types msgpack chose).
func sameValue(a, b any) bool {
	na, err := value.Normalize(a)
	if err != nil {
		return false
	}
	nb, err := value.Normalize(b)
	return err == nil && reflect.DeepEqual(na, nb)
}
