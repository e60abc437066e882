package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// PauseDefinition pauses a definition's runs.
func (s *Server) PauseDefinition(ctx context.Context, req *connect.Request[weftv1.PauseDefinitionRequest]) (*connect.Response[weftv1.PauseDefinitionResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("PauseDefinition is not implemented yet"))
}

// ResumeDefinition ends a definition's pause.
func (s *Server) ResumeDefinition(ctx context.Context, req *connect.Request[weftv1.ResumeDefinitionRequest]) (*connect.Response[weftv1.ResumeDefinitionResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("ResumeDefinition is not implemented yet"))
}
