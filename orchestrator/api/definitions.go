package api

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor/builtin"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// PutDefinition validates a definition and stores it as a new revision
// when its text changed, recording who put it.
func (s *Server) PutDefinition(ctx context.Context, req *connect.Request[weftv1.PutDefinitionRequest]) (*connect.Response[weftv1.PutDefinitionResponse], error) {
	src := req.Msg.Source
	if src == "" {
		return nil, errorf(connect.CodeInvalidArgument, "source is required: the definition's YAML or JSON text")
	}
	if len(src) > s.cfg.MaxDefinitionBytes {
		return nil, errorf(connect.CodeInvalidArgument, "source is %d bytes; the limit is %d bytes (MaxDefinitionBytes)", len(src), s.cfg.MaxDefinitionBytes)
	}
	def, err := definition.Parse([]byte(src))
	if err == nil {
		err = def.CheckNew()
	}
	if err != nil {
		return nil, toConnect(err)
	}
	if err := s.checkPublishSubjects(def); err != nil {
		return nil, toConnect(err)
	}
	if err := s.checkTriggerSubjects(ctx, def); err != nil {
		return nil, err
	}
	prev, err := s.latestPlan(ctx, def.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	if err := trigger.ClaimWebhooks(ctx, s.store, s.triggers, def, s.cfg.Now); err != nil {
		var taken *trigger.WebhookTakenError
		if errors.As(err, &taken) {
			return nil, errorf(connect.CodeFailedPrecondition, "%v", err)
		}
		return nil, toConnect(err)
	}
	rec, changed, err := s.store.PutDefinition(ctx, def.Name, src, identity(ctx), s.cfg.Now())
	if err != nil {
		return nil, toConnect(err)
	}
	// Its subjects are captured before the put is answered: a message
	// published once it is starts a run (the trigger engines' registries
	// follow the put a moment later, and look it up meanwhile).
	var subjects []string
	for _, t := range def.Triggers {
		if t.Kind == definition.TriggerSubject {
			subjects = append(subjects, t.Subject)
		}
	}
	if err := s.store.AddTriggerSubjects(ctx, subjects); err != nil {
		return nil, errorf(connect.CodeUnavailable, "definition %q is stored as revision %d, but its trigger subjects are not captured yet (put it again to make sure; orchestrators capture them too): %v", rec.Name, rec.Revision, err)
	}
	if err := trigger.ReleaseWebhooks(ctx, s.store, prev, def); err != nil {
		s.log.Warn("the webhook names the definition dropped stay its own for a minute", "definition", def.Name, "err", err)
	}
	warnings := append(s.warnUnsetSecrets(def.Name, def.Triggers), s.warnUnservedTasks(ctx, def)...)
	return connect.NewResponse(&weftv1.PutDefinitionResponse{Name: rec.Name, Revision: int32(rec.Revision), Changed: changed, Warnings: warnings}), nil
}

// GetDefinition returns a revision of a definition (0: the latest), with
// the definition's pause when it is paused.
func (s *Server) GetDefinition(ctx context.Context, req *connect.Request[weftv1.GetDefinitionRequest]) (*connect.Response[weftv1.GetDefinitionResponse], error) {
	m := req.Msg
	if m.Name == "" {
		return nil, errorf(connect.CodeInvalidArgument, "name is required")
	}
	rec, err := s.store.GetDefinition(ctx, m.Name, int(m.Revision))
	if errors.Is(err, eventstore.ErrNotFound) {
		if m.Revision > 0 {
			return nil, errorf(connect.CodeNotFound, "definition %q has no revision %d", m.Name, m.Revision)
		}
		return nil, errorf(connect.CodeNotFound, "definition %q not found", m.Name)
	}
	if err != nil {
		return nil, toConnect(err)
	}
	info := s.defInfo(rec, true)
	p, paused, err := s.store.DefinitionPause(ctx, rec.Name)
	if err != nil {
		return nil, toConnect(err)
	}
	if paused {
		info.Pause = pauseInfo(p)
	}
	return connect.NewResponse(&weftv1.GetDefinitionResponse{Definition: info}), nil
}

// ListDefinitions returns the latest revision of every definition, each
// with its pause when it is paused.
func (s *Server) ListDefinitions(ctx context.Context, _ *connect.Request[weftv1.ListDefinitionsRequest]) (*connect.Response[weftv1.ListDefinitionsResponse], error) {
	recs, err := s.store.ListDefinitions(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	pauses, err := s.store.DefinitionPauses(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &weftv1.ListDefinitionsResponse{}
	for _, r := range recs {
		info := s.defInfo(r, false)
		if p, ok := pauses[r.Name]; ok {
			info.Pause = pauseInfo(p)
		}
		resp.Definitions = append(resp.Definitions, info)
	}
	return connect.NewResponse(resp), nil
}

// defInfo describes stored revision r, with its input_schema; full adds
// its source and its outline (what GetDefinition returns and
// ListDefinitions leaves out). A revision that no longer compiles has
// neither schema nor outline.
func (s *Server) defInfo(r eventstore.DefinitionRecord, full bool) *weftv1.DefinitionInfo {
	d := &weftv1.DefinitionInfo{Name: r.Name, Revision: int32(r.Revision), Hash: r.Hash, CreatedTime: timestamppb.New(r.Created), PutBy: r.PutBy}
	if full {
		d.Source = r.Source
	}
	plan, err := s.defs.Compile(r)
	if err != nil {
		return d
	}
	if plan.InputSchema != nil {
		if d.InputSchema, err = structpb.NewStruct(plan.InputSchema); err != nil {
			s.log.Warn("definition input_schema has no protobuf form", "definition", r.Name, "revision", r.Revision, "err", err)
		}
	}
	if full {
		if d.Outline, err = structpb.NewList(plan.Outline()); err != nil {
			s.log.Warn("definition outline has no protobuf form", "definition", r.Name, "revision", r.Revision, "err", err)
		}
	}
	return d
}

// checkPublishSubjects refuses the literal subjects of def's nats.publish
// steps that the executor would refuse (builtin.CheckPublishSubject with
// Config.PublishAllow); computed subjects are checked when they run.
func (s *Server) checkPublishSubjects(def *definition.Definition) error {
	var problems []definition.Problem
	for st := range def.All() {
		if st.Kind != definition.KindTask || st.Task != "nats.publish" {
			continue
		}
		v, _ := st.Input.ConstField("subject")
		if subject, ok := v.(string); ok {
			if err := builtin.CheckPublishSubject(subject, s.cfg.PublishAllow); err != nil {
				problems = append(problems, definition.Problem{Step: st.ID, Field: "input.subject", Message: err.Error()})
			}
		}
	}
	if problems != nil {
		return &definition.Error{Problems: problems}
	}
	return nil
}

// checkTriggerSubjects refuses, with FailedPrecondition, a trigger subject
// that another stream captures: JetStream lets no two streams capture a
// subject, so the trigger stream could not take its events.
func (s *Server) checkTriggerSubjects(ctx context.Context, def *definition.Definition) error {
	for _, t := range def.Triggers {
		if t.Kind != definition.TriggerSubject {
			continue
		}
		stream, err := s.store.StreamCapturing(ctx, t.Subject)
		if err != nil {
			return toConnect(err)
		}
		if stream != "" {
			return errorf(connect.CodeFailedPrecondition, "trigger subject %q: stream %q captures it (or subjects it overlaps), and NATS lets no two streams capture a subject: use a subject outside that stream's, or remove it from the stream", t.Subject, stream)
		}
	}
	return nil
}

// latestPlan returns the compiled latest revision of definition name, or
// nil when there is none or it does not compile.
func (s *Server) latestPlan(ctx context.Context, name string) (*definition.Definition, error) {
	rec, err := s.store.GetDefinition(ctx, name, 0)
	if errors.Is(err, eventstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	plan, _ := definition.Parse([]byte(rec.Source))
	return plan, nil
}

// maxTaskLooks bounds the task types a put looks up for warnUnservedTasks.
const maxTaskLooks = 32

// taskLooksBudget bounds the time warnUnservedTasks' look-ups take: the
// definition is stored by then, and they only warn.
const taskLooksBudget = 2 * time.Second

// warnUnservedTasks warns of the task types of def's steps that no
// executor has asked for commands of yet: a misspelt type ("ecoh") leaves
// its runs waiting at that step, which only weft doctor reports, a minute
// later. A type not looked up (NATS did not answer) is not warned of, nor
// is a built-in one.
func (s *Server) warnUnservedTasks(ctx context.Context, def *definition.Definition) []string {
	// A JetStream that does not answer a consumer's info (its leader
	// lost) would have each look-up retried for as long as the call
	// lasts: a client with a deadline told the put that is done failed.
	ctx, cancel := context.WithTimeout(ctx, taskLooksBudget)
	defer cancel()
	var warnings []string
	seen := map[string]bool{}
	var served []string
	builtins := builtin.Handlers(builtin.Config{})
	for st := range def.All() {
		if st.Kind != definition.KindTask || seen[st.Task] || len(seen) == maxTaskLooks || builtins[st.Task] != nil {
			continue // (every weft executor serves the built-in types)
		}
		seen[st.Task] = true
		q, err := s.store.TaskQueueOf(ctx, st.Task)
		// (A delivery's time is NATS's memory only: a restart forgets it,
		// and an executor with every slot busy has no pull open.)
		if err == nil && (q.Pulls > 0 || q.InFlight > 0 || q.Deliveries > 0 || !q.LastDelivery.IsZero()) || err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			continue
		}
		if served == nil {
			// The types with a consumer, and the built-in ones.
			backlogs, _ := s.store.TaskBacklogs(ctx)
			types := map[string]bool{}
			for t := range backlogs {
				types[t] = true
			}
			for t := range builtins {
				types[t] = true
			}
			served = slices.Sorted(maps.Keys(types))
		}
		w := fmt.Sprintf("step %q: no executor has asked for commands of task type %q yet: its runs wait at that step until one does", st.ID, st.Task)
		// (A copy: DeleteFunc moves what it keeps within served itself.)
		if m := definition.Closest(st.Task, slices.DeleteFunc(slices.Clone(served), func(t string) bool { return t == st.Task })); m != "" {
			w += fmt.Sprintf(" (did you mean %q?)", m)
		}
		s.log.Warn("a definition's task type has no executor yet", "definition", def.Name, "step", st.ID, "task", st.Task)
		warnings = append(warnings, w)
	}
	return warnings
}
