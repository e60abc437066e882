package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// PauseDefinition pauses every revision of a definition, recording when,
// by whom and why; executors hold its runs' step commands until
// ResumeDefinition.
func (s *Server) PauseDefinition(ctx context.Context, req *connect.Request[weftv1.PauseDefinitionRequest]) (*connect.Response[weftv1.PauseDefinitionResponse], error) {
	m := req.Msg
	if err := s.checkPausable(ctx, m.Name); err != nil {
		return nil, err
	}
	if err := checkLen("reason", m.Reason, maxReason); err != nil {
		return nil, err
	}
	p := eventstore.Pause{Time: s.cfg.Now(), By: identity(ctx), Reason: m.Reason}
	if err := s.store.PauseDefinition(ctx, m.Name, p); err != nil {
		return nil, toConnect(err)
	}
	s.log.Info("definition paused", "definition", m.Name, "by", p.By, "reason", p.Reason)
	return connect.NewResponse(&weftv1.PauseDefinitionResponse{}), nil
}

// ResumeDefinition ends a definition's pause; one that is not paused is
// left as it is.
func (s *Server) ResumeDefinition(ctx context.Context, req *connect.Request[weftv1.ResumeDefinitionRequest]) (*connect.Response[weftv1.ResumeDefinitionResponse], error) {
	name := req.Msg.Name
	if err := s.checkPausable(ctx, name); err != nil {
		return nil, err
	}
	if err := s.store.ResumeDefinition(ctx, name); err != nil {
		return nil, toConnect(err)
	}
	s.log.Info("definition resumed", "definition", name, "by", identity(ctx))
	return connect.NewResponse(&weftv1.ResumeDefinitionResponse{}), nil
}

// checkPausable refuses an empty name and one no definition has.
func (s *Server) checkPausable(ctx context.Context, name string) error {
	if name == "" {
		return errorf(connect.CodeInvalidArgument, "name is required")
	}
	_, err := s.store.GetDefinition(ctx, name, 0)
	if errors.Is(err, eventstore.ErrNotFound) {
		return errorf(connect.CodeNotFound, "definition %q not found", name)
	}
	return toConnect(err)
}

// pauseInfo is p in the API's form.
func pauseInfo(p eventstore.Pause) *weftv1.DefinitionPause {
	return &weftv1.DefinitionPause{Time: timestamppb.New(p.Time), By: p.By, Reason: p.Reason}
}
