package e2e

import (
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// putDefErr puts a definition and returns the API's error.
func (e *env) putDefErr(src string) error {
	e.t.Helper()
	_, err := e.defs.PutDefinition(ctx(e.t), connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
	return err
}

// wantCodeAll fails the test unless err is a Connect error of code whose
// message holds every one of parts.
func wantCodeAll(t *testing.T, err error, code connect.Code, parts ...string) {
	t.Helper()
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != code {
		t.Fatalf("got %v; want a %v error", err, code)
	}
	for _, p := range parts {
		if !strings.Contains(ce.Message(), p) {
			t.Fatalf("error %q does not mention %q", ce.Message(), p)
		}
	}
}
