package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/value"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// ListTriggerFailures lists trigger events that started no workflow, newest first.
func (s *Server) ListTriggerFailures(ctx context.Context, req *connect.Request[weftv1.ListTriggerFailuresRequest]) (*connect.Response[weftv1.ListTriggerFailuresResponse], error) {
	size, err := pageSize(req.Msg.PageSize)
	if err != nil {
		return nil, err
	}
	var before uint64
	if tok := req.Msg.PageToken; tok != "" {
		if before, err = strconv.ParseUint(tok, 10, 64); err != nil || before == 0 {
			return nil, errorf(connect.CodeInvalidArgument, "page_token %q is invalid: pass the next_page_token of the previous page", tok)
		}
	}
	fs, next, err := s.store.ListTriggerFailures(ctx, size, before)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &weftv1.ListTriggerFailuresResponse{}
	for _, f := range fs {
		resp.Failures = append(resp.Failures, &weftv1.TriggerFailure{Subject: text(f.Subject), Time: timestamppb.New(f.Time),
			Reason: text(f.Reason), Payload: f.Payload, Definition: f.Definition})
	}
	if next > 0 {
		resp.NextPageToken = strconv.FormatUint(next, 10)
	}
	return connect.NewResponse(resp), nil
}

// ListSchedules lists cron triggers with their next fire times.
func (s *Server) ListSchedules(ctx context.Context, _ *connect.Request[weftv1.ListSchedulesRequest]) (*connect.Response[weftv1.ListSchedulesResponse], error) {
	pending, err := s.store.CronSchedules(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &weftv1.ListSchedulesResponse{}
	for _, m := range s.triggers.Crons() {
		t := m.Trigger
		sc := &weftv1.Schedule{Definition: m.Definition, Cron: t.Cron, Timezone: t.Location.String(), Catchup: t.Catchup, Key: t.Key}
		if p, ok := pending[m.Definition+"."+t.Key]; ok {
			sc.NextFireTime = timestamppb.New(p.Tick)
		}
		resp.Schedules = append(resp.Schedules, sc)
	}
	return connect.NewResponse(resp), nil
}

// SignatureHeader carries a webhook body's HMAC-SHA256, as "sha256=<hex>".
const SignatureHeader = "X-Weft-Signature"

// unavailable is the body of every 503 a webhook answers; the reason goes
// to the log, not to the caller.
const unavailable = "the webhook cannot take deliveries right now; try again later"

// warnUnsetSecrets logs and returns a warning for each webhook trigger
// whose secret variable is not set in this process's environment (its
// deliveries are refused until it is), and, when the API requires
// tokens, for each webhook without a secret: it is open to anyone.
func (s *Server) warnUnsetSecrets(def string, ts []*definition.Trigger) []string {
	var warnings []string
	for _, t := range ts {
		if t.Kind == definition.TriggerWebhook && t.SecretEnv != "" && os.Getenv(t.SecretEnv) == "" {
			s.log.Warn("webhook secret is not set on this API server: deliveries answer 503 until it is",
				"definition", def, "webhook", t.Webhook, "secret_env", t.SecretEnv)
			warnings = append(warnings, fmt.Sprintf("webhook %q: the variable %s is not set on this API server: deliveries are refused (503) until it is", t.Webhook, t.SecretEnv))
		}
		if t.Kind == definition.TriggerWebhook && t.SecretEnv == "" && s.cfg.Tokens != nil {
			// Every other way to start a run needs a token of role run.
			s.log.Warn("webhook has no secret_env: anyone who reaches the API starts runs through it, without a token",
				"definition", def, "webhook", t.Webhook)
			warnings = append(warnings, fmt.Sprintf("webhook %q has no secret_env: anyone who reaches this API can start runs of %s with POST /hooks/%s, without a token; give it a secret_env to require a signature", t.Webhook, def, t.Webhook))
		}
	}
	return warnings
}

// validSignature reports whether header is "sha256=" and the hex (either
// case) HMAC-SHA256 of body under secret.
func validSignature(header string, body []byte, secret string) bool {
	const prefix = "sha256="
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got, err := hex.DecodeString(header[len(prefix):])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// hookError is a delivery's refusal: its status and message, and, for a
// delivery whose sender was known (its signature checked, or none asked
// for) and that no retry can mend, its body, recorded as a trigger
// failure beside the answer.
type hookError struct {
	status  int
	msg     string
	record  bool
	payload []byte
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// webhook serves POST /hooks/<name>: it checks the signature and the body,
// then starts the trigger's workflow and answers 202 with its id. The same
// Idempotency-Key starts one workflow however often it is delivered.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/hooks/")
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "use POST"})
		return
	}
	res, herr := s.deliver(r, name)
	if herr != nil {
		writeJSON(w, herr.status, map[string]any{"error": herr.msg})
		return
	}
	writeJSON(w, res.status, res.body)
}

type hookResult struct {
	status int
	body   map[string]any
}

func (s *Server) deliver(r *http.Request, name string) (*hookResult, *hookError) {
	m, ok, err := s.triggers.Webhook(r.Context(), name)
	if err != nil {
		s.log.Error("webhook delivery refused", "webhook", name, "err", err)
		return nil, &hookError{status: http.StatusServiceUnavailable, msg: unavailable}
	}
	if !ok {
		return nil, &hookError{status: http.StatusNotFound, msg: fmt.Sprintf("no webhook %q: add a trigger `webhook: %s` to a definition", name, name)}
	}
	kind := string(m.Trigger.Kind)
	event, body, herr := s.hookEvent(r, name, m)
	if herr != nil {
		outcome := metrics.TriggerRefused
		if herr.status == http.StatusServiceUnavailable {
			outcome = metrics.TriggerError
		}
		s.metrics.triggers.Event(m.Definition, kind, outcome)
		s.recordHookFailure(r.Context(), name, m.Definition, herr)
		return nil, herr
	}
	// A header sent more than once is its values joined, as HTTP joins
	// them: none is dropped.
	headers := map[string]any{}
	for k, v := range r.Header {
		if len(v) > 0 {
			headers[k] = strings.Join(v, ", ")
		}
	}
	ev := trigger.Event{Vars: map[string]any{"event": event, "headers": headers, "subject": "webhook"},
		Identity: trigger.KeyIdentity(r.Header.Get("Idempotency-Key")), Time: s.cfg.Now()}
	f, err := trigger.Fire(r.Context(), s.store, s.defs, m, ev)
	s.metrics.triggers.Event(m.Definition, kind, trigger.Outcome(f, err))
	if err == nil && f.Started {
		s.metrics.workflows.Started(m.Definition)
	}
	var ref *trigger.RefusedError
	switch {
	case err == nil && f.Skipped:
		return &hookResult{http.StatusOK, map[string]any{"skipped": true}}, nil
	case err == nil:
		return &hookResult{http.StatusAccepted, map[string]any{"workflow_id": f.WorkflowID, "started": f.Started}}, nil
	case errors.As(err, &ref) && !errors.Is(err, eventstore.ErrNotFound):
		herr := &hookError{status: http.StatusUnprocessableEntity, msg: ref.Reason, record: true, payload: body}
		s.recordHookFailure(r.Context(), name, m.Definition, herr)
		if ref.Answer != "" {
			// The record (read with a token) says all; the caller, who
			// may hold none, hears nothing of other definitions.
			herr.msg = ref.Answer
		}
		return nil, herr
	default:
		s.log.Error("webhook delivery could not start its workflow", "webhook", name, "definition", m.Definition, "err", err)
		return nil, &hookError{status: http.StatusServiceUnavailable, msg: unavailable}
	}
}

// recordHookFailure records herr, a refusal of a delivery to webhook name
// of definition def, as a trigger failure (subject /hooks/<name>) when it
// is one to record, as a subject trigger's event is recorded: the sender
// is answered all the same, and a failure to record is logged.
func (s *Server) recordHookFailure(ctx context.Context, name, def string, herr *hookError) {
	if !herr.record {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	s.log.Info("webhook delivery started no workflow", "webhook", name, "definition", def, "status", herr.status, "reason", herr.msg)
	if err := s.store.RecordTriggerFailure(ctx, eventstore.TriggerFailure{Subject: "/hooks/" + name, Time: s.cfg.Now().UTC(),
		Reason: herr.msg, Definition: def, Payload: herr.payload}); err != nil {
		s.log.Error("webhook delivery's failure could not be recorded", "webhook", name, "definition", def, "err", err)
	}
}

// hookEvent reads a delivery's body for webhook m, checks its signature
// when m has a secret, and returns it decoded (nil when empty) and as
// sent.
func (s *Server) hookEvent(r *http.Request, name string, m trigger.Match) (any, []byte, *hookError) {
	limit := int64(s.cfg.MaxPayloadBytes)
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, nil, &hookError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body is over the %d-byte limit", limit)}
		}
		return nil, nil, &hookError{status: http.StatusBadRequest, msg: "reading body: " + err.Error()}
	}
	t := m.Trigger
	if t.SecretEnv != "" {
		secret := os.Getenv(t.SecretEnv)
		if secret == "" {
			s.log.Error("webhook delivery refused: its secret is not set on this API server", "webhook", name,
				"definition", m.Definition, "secret_env", t.SecretEnv)
			return nil, nil, &hookError{status: http.StatusServiceUnavailable, msg: unavailable}
		}
		if !validSignature(r.Header.Get(SignatureHeader), body, secret) {
			return nil, nil, &hookError{status: http.StatusUnauthorized, msg: fmt.Sprintf("bad or missing %s: want sha256=<hex HMAC-SHA256 of the body>", SignatureHeader)}
		}
	}
	var event any
	if len(body) > 0 {
		if event, err = value.FromJSON(body); err != nil {
			return nil, nil, &hookError{status: http.StatusBadRequest, msg: "body: " + err.Error(), record: true, payload: body}
		}
		if err = value.Check("body", event, value.Limits{}); err != nil {
			return nil, nil, &hookError{status: http.StatusBadRequest, msg: err.Error(), record: true, payload: body}
		}
	}
	return event, body, nil
}
