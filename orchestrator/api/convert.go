package api

import (
	"context"
	"errors"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// stateView is a folded workflow with its history length.
type stateView struct {
	st     *workflow.State
	length int
	// broken: the history did not fold to its end (st shows it FAILED).
	broken bool
}

// foldMessages folds history records into st (empty, or restored from a
// snapshot). A corrupt record stops the fold there and shows the workflow
// as FAILED with error type corrupt_history (as the orchestrator records
// it), so one bad record never hides the rest.
func foldMessages(st *workflow.State, msgs []eventstore.Message) (*stateView, error) {
	broken := runs.FoldMessages(st, msgs)
	if errors.Is(broken, events.ErrNewer) {
		return nil, newerHistory(broken)
	}
	if st.Events == 0 {
		return nil, connect.NewError(connect.CodeDataLoss, broken)
	}
	return &stateView{st: st, length: st.Events, broken: broken != nil}, nil
}

var workflowStatus = map[workflow.Status]weftv1.WorkflowStatus{
	workflow.StatusRunning:   weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING,
	workflow.StatusCompleted: weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED,
	workflow.StatusFailed:    weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED,
	workflow.StatusCanceled:  weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED,
	workflow.StatusSuspended: weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED,
	workflow.StatusQueued:    weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED,
}

var stepStatus = map[workflow.StepStatus]weftv1.StepStatus{
	workflow.StepRunning:   weftv1.StepStatus_STEP_STATUS_RUNNING,
	workflow.StepWaiting:   weftv1.StepStatus_STEP_STATUS_WAITING,
	workflow.StepCompleted: weftv1.StepStatus_STEP_STATUS_COMPLETED,
	workflow.StepFailed:    weftv1.StepStatus_STEP_STATUS_FAILED,
	workflow.StepCanceled:  weftv1.StepStatus_STEP_STATUS_CANCELED,
	workflow.StepSkipped:   weftv1.StepStatus_STEP_STATUS_SKIPPED,
	workflow.StepPending:   weftv1.StepStatus_STEP_STATUS_PENDING,
	workflow.StepSuspended: weftv1.StepStatus_STEP_STATUS_SUSPENDED,
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func pv(v any) (*structpb.Value, error) {
	return value.ToProto(v)
}

func failure(e *events.Error, path string) *weftv1.Failure {
	if e == nil {
		return nil
	}
	return &weftv1.Failure{Message: text(e.Message), Type: text(e.Type), StepPath: path}
}

func (s *Server) workflowProto(ctx context.Context, v *stateView) (*weftv1.Workflow, error) {
	st := v.st
	in, err := pv(st.Input)
	if err != nil {
		return nil, toConnect(err)
	}
	w := &weftv1.Workflow{Id: st.ID, Definition: st.Definition, Revision: int32(st.Revision),
		Status: workflowStatus[st.Shown()], Input: in, Error: failure(st.Error, st.ErrorPath),
		CreatedTime: ts(st.Created), ClosedTime: ts(st.Closed), HistoryLength: uint64(v.length),
		SearchAttributes: searchProto(st.Search)}
	if st.Status == workflow.StatusCompleted {
		if w.Output, err = pv(st.Output); err != nil {
			return nil, toConnect(err)
		}
	}
	for _, path := range st.Order {
		step := st.Steps[path]
		ps := &weftv1.StepState{Path: path, Status: stepStatus[step.Status], Attempts: int32(step.Attempts),
			LastError: failure(step.LastError, path), Task: step.Task,
			StartedTime: ts(step.Started), ClosedTime: ts(step.Closed)}
		if step.HeldFor != "" && step.Status == workflow.StepRunning {
			ps.Status, ps.WaitingFor = weftv1.StepStatus_STEP_STATUS_WAITING, text(step.HeldFor+": "+step.HeldDetail)
		}
		if step.Status == workflow.StepCompleted {
			if ps.Output, err = pv(step.Output); err != nil {
				return nil, toConnect(err)
			}
		}
		w.Steps = append(w.Steps, ps)
	}
	// Steps not reached yet are listed as pending, from the pinned definition.
	if def, _, err := s.defs.Load(ctx, st.Definition, st.Revision); err == nil {
		for _, step := range def.Steps {
			if st.Steps[step.ID] == nil {
				w.Steps = append(w.Steps, &weftv1.StepState{Path: step.ID, Status: weftv1.StepStatus_STEP_STATUS_PENDING, Task: step.Task})
			}
		}
	}
	return w, nil
}

func summaryProto(s eventstore.Summary) *weftv1.WorkflowSummary {
	return &weftv1.WorkflowSummary{Id: s.ID, Definition: s.Definition, Revision: int32(s.Revision),
		Status: workflowStatus[workflow.Status(s.Status)], CreatedTime: ts(s.Created), ClosedTime: ts(s.Closed),
		Identity: text(s.Identity), SearchAttributes: searchProto(s.Search)}
}

// searchData returns search attributes as JSON-like values: a time as an
// RFC 3339 string in UTC, a string made valid UTF-8 (text), other values
// as they are.
func searchData(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case time.Time:
			v = x.UTC().Format(time.RFC3339Nano)
		case string:
			v = text(x)
		}
		out[k] = v
	}
	return out
}

// searchProto renders search attributes for the API (see searchData); nil
// when there are none. Values of other types than those recorded
// (strings, int64s, float64s, bools, times) are left out.
func searchProto(m map[string]any) *structpb.Struct {
	if len(m) == 0 {
		return nil
	}
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for k, v := range searchData(m) {
		switch x := v.(type) {
		case string:
			out.Fields[k] = structpb.NewStringValue(x)
		case int64:
			out.Fields[k] = structpb.NewNumberValue(float64(x))
		case float64:
			out.Fields[k] = structpb.NewNumberValue(x)
		case bool:
			out.Fields[k] = structpb.NewBoolValue(x)
		}
	}
	return out
}

func errData(e events.Error) map[string]any {
	m := map[string]any{"message": text(e.Message)}
	if e.Type != "" {
		m["type"] = text(e.Type)
	}
	return m
}

func dur(d time.Duration) string { return d.String() }

// exhausted names what a retry policy does when attempts run out.
func exhausted(suspend bool) string {
	if suspend {
		return "suspend"
	}
	return "fail"
}

// eventProto renders a history event for the API: its data is a JSON
// object with snake_case keys.
func eventProto(seq uint64, e events.Event) (*weftv1.HistoryEvent, error) {
	path, data, ok := stepEventData(e)
	if !ok {
		path, data, ok = waitEventData(e)
	}
	if !ok {
		path, data = workflowEventData(e)
	}
	d, err := pv(data)
	if err != nil {
		return nil, err
	}
	return &weftv1.HistoryEvent{Sequence: seq, Time: ts(e.Time), Type: string(e.Type),
		Attempt: int32(e.Attempt()), StepPath: path, Data: d, Identity: text(e.Identity)}, nil
}

// withRequestID sets data's request_id to id, when there is one.
func withRequestID(data map[string]any, id string) {
	if id != "" {
		data["request_id"] = id
	}
}

// workflowEventData returns the step path and data of an event about the
// workflow as a whole (nil data for an unknown type).
func workflowEventData(e events.Event) (path string, data map[string]any) {
	switch e.Type {
	case events.TypeWorkflowStarted:
		p := e.WorkflowStarted
		data = map[string]any{"workflow_id": p.WorkflowID, "definition": p.Definition, "revision": p.Revision, "input": p.Input, "request_id": p.RequestID}
		if p.Parent != nil {
			data["parent"] = map[string]any{"workflow_id": p.Parent.WorkflowID, "step_path": p.Parent.Path}
		}
	case events.TypeSignalReceived:
		p := e.SignalReceived
		data = map[string]any{"name": p.Name, "payload": p.Payload}
		withRequestID(data, p.RequestID)
	case events.TypeCancelRequested:
		data = map[string]any{"reason": e.CancelRequested.Reason}
		withRequestID(data, e.CancelRequested.RequestID)
	case events.TypeWorkflowCompleted:
		data = map[string]any{"output": e.WorkflowCompleted.Output}
	case events.TypeWorkflowFailed:
		p := e.WorkflowFailed
		path = p.Path
		data = map[string]any{"error": errData(p.Error)}
	case events.TypeWorkflowCanceled:
		data = map[string]any{"reason": e.WorkflowCanceled.Reason}
	case TypeCorruptRecord:
		data = map[string]any{"error": errData(e.WorkflowFailed.Error)}
	case events.TypeWorkflowRetried:
		data = map[string]any{"reason": e.WorkflowRetried.Reason}
		withRequestID(data, e.WorkflowRetried.RequestID)
	case events.TypeWorkflowResumed:
		data = map[string]any{"reason": e.WorkflowResumed.Reason}
		withRequestID(data, e.WorkflowResumed.RequestID)
	case events.TypeWorkflowQueued:
		data = map[string]any{"key": e.WorkflowQueued.Key}
	case events.TypeWorkflowExpired:
		data = map[string]any{"retention": dur(e.WorkflowExpired.Retention)}
	}
	return path, data
}

// stepEventData returns the step path and data of a step's lifecycle
// event; ok is false for other types.
func stepEventData(e events.Event) (path string, data map[string]any, ok bool) {
	switch e.Type {
	case events.TypeStepScheduled:
		p := e.StepScheduled
		path = p.Path
		data = map[string]any{"task": p.Task, "input": p.Input, "gen": p.Gen, "timeout": dur(p.Timeout),
			"idempotency_key": p.IdempotencyKey, "retry": map[string]any{
				"max_attempts": p.Retry.MaxAttempts, "initial_interval": dur(p.Retry.InitialInterval),
				"backoff_coefficient": p.Retry.BackoffCoefficient, "max_interval": dur(p.Retry.MaxInterval),
				"non_retryable": stringsAny(p.Retry.NonRetryable), "exhausted": exhausted(p.Retry.Suspend)}}
	case events.TypeStepAttemptFailed:
		p := e.StepAttemptFailed
		path = p.Path
		data = map[string]any{"error": errData(p.Error), "retry_delay": dur(p.RetryDelay)}
	case events.TypeStepCompleted:
		p := e.StepCompleted
		path = p.Path
		data = map[string]any{"output": p.Output}
		if p.Vars != nil {
			data["vars"] = p.Vars
		}
		if p.SignalSeq > 0 {
			data["signal_sequence"] = p.SignalSeq
		}
	case events.TypeStepSuspended:
		p := e.StepSuspended
		path = p.Path
		data = map[string]any{"error": errData(p.Error)}
	case events.TypeStepHeld:
		p := e.StepHeld
		path = p.Path
		data = map[string]any{"reason": text(p.Reason), "detail": text(p.Detail)}
	case events.TypeStepFailed:
		p := e.StepFailed
		path = p.Path
		data = map[string]any{"error": errData(p.Error)}
	case events.TypeStepStarted:
		p := e.StepStarted
		path = p.Path
		data = map[string]any{"kind": p.Kind}
		if p.Kind == "switch" {
			data["case"] = p.Case
		}
		if p.Items != nil {
			data["items"] = p.Items
		}
	case events.TypeStepSkipped:
		path = e.StepSkipped.Path
		data = map[string]any{}
	case events.TypeStepIterated:
		path = e.StepIterated.Path
		data = map[string]any{"iteration": e.StepIterated.Iteration}
	case events.TypeStepCanceled:
		path = e.StepCanceled.Path
		data = map[string]any{"cause": e.StepCanceled.Cause}
	case events.TypeStepReopened:
		path = e.StepReopened.Path
		data = map[string]any{}
		if e.StepReopened.BudgetFrom > 0 {
			data["budget_from"] = e.StepReopened.BudgetFrom
		}
	case events.TypeSearchAttributesSet:
		path = e.SearchAttributesSet.Path
		data = map[string]any{"attributes": searchData(e.SearchAttributesSet.Attributes)}
	default:
		return "", nil, false
	}
	return path, data, true
}

// waitEventData returns the step path and data of an event about a step
// waiting (a signal, a timer or a child workflow); ok is false for other
// types.
func waitEventData(e events.Event) (path string, data map[string]any, ok bool) {
	switch e.Type {
	case events.TypeWaitStarted:
		p := e.WaitStarted
		path = p.Path
		data = map[string]any{"signal": p.Signal}
		if !p.TimeoutAt.IsZero() {
			data["timeout_at"] = p.TimeoutAt.Format(time.RFC3339Nano)
		}
	case events.TypeTimerScheduled:
		p := e.TimerScheduled
		path = p.Path
		data = map[string]any{"timer_id": p.TimerID, "due": p.Due.Format(time.RFC3339Nano)}
	case events.TypeTimerFired:
		p := e.TimerFired
		path = p.Path
		data = map[string]any{"timer_id": p.TimerID, "due": p.Due.Format(time.RFC3339Nano)}
	case events.TypeChildStarted:
		p := e.ChildStarted
		path = p.Path
		data = map[string]any{"workflow_id": p.WorkflowID, "definition": p.Definition, "input": p.Input}
		if p.Revision != 0 {
			data["revision"] = int64(p.Revision)
		}
	default:
		return "", nil, false
	}
	return path, data, true
}

func stringsAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// text makes s valid UTF-8 for a protobuf string, invalid bytes becoming
// U+FFFD: what is recorded now is checked at its door, but an earlier
// version recorded trigger subjects as they came.
func text(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// newerHistory is the answer for a run whose history holds a record a
// newer version of Weft wrote: this API cannot show it or act on it, and
// an upgraded one can (a rolling upgrade under way).
func newerHistory(err error) error {
	return errorf(connect.CodeUnavailable, "this API cannot read the run's history (%v): ask an API of the newer version", err)
}
