package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

func TestParseStatus(t *testing.T) {
	for in, want := range map[string]weftv1.WorkflowStatus{
		"":          weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED,
		"running":   weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING,
		"Completed": weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED,
		"FAILED":    weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED,
		"canceled":  weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED,
	} {
		got, err := parseStatus(in)
		if err != nil || got != want {
			t.Errorf("parseStatus(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"unspecified", "done", "workflow_status_running"} {
		if _, err := parseStatus(in); err == nil || !strings.Contains(err.Error(), "invalid --status") {
			t.Errorf("parseStatus(%q) error = %v; want invalid --status", in, err)
		}
	}
}

func TestParseJSONFlag(t *testing.T) {
	if v, err := parseJSONFlag("input", ""); v != nil || err != nil {
		t.Errorf(`parseJSONFlag("") = %v, %v; want nil, nil`, v, err)
	}
	for in, want := range map[string]string{
		`{"a": [1, "x", true, null]}`: `{"a":[1,"x",true,null]}`,
		` 42 `:                        `42`,
		`"s"`:                         `"s"`,
		`null`:                        `null`,
	} {
		v, err := parseJSONFlag("input", in)
		if err != nil {
			t.Errorf("parseJSONFlag(%q): %v", in, err)
			continue
		}
		if got := valueJSON(v); got != want {
			t.Errorf("valueJSON(parseJSONFlag(%q)) = %s; want %s", in, got, want)
		}
	}
	for _, in := range []string{"{", "hello", `{"a":1} x`} {
		if _, err := parseJSONFlag("input", in); err == nil || !strings.HasPrefix(err.Error(), "invalid --input: ") {
			t.Errorf("parseJSONFlag(%q) error = %v; want invalid --input", in, err)
		}
	}
}

func TestFormatEvent(t *testing.T) {
	ts := timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC))
	for _, tc := range []struct {
		ev   *weftv1.HistoryEvent
		want string
	}{
		{
			&weftv1.HistoryEvent{Sequence: 1, Time: ts, Type: "WorkflowStarted",
				Data: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}})},
			`1  2025-03-01T12:00:00.0000005Z  WorkflowStarted  {"n":1}`,
		},
		{
			&weftv1.HistoryEvent{Sequence: 7, Time: ts, Type: "StepFailed", StepPath: "a.b", Attempt: 2},
			`7  2025-03-01T12:00:00.0000005Z  StepFailed  step=a.b attempt=2`,
		},
		{
			&weftv1.HistoryEvent{Sequence: 3, Type: "StepScheduled", StepPath: "a"},
			`3  StepScheduled  step=a`,
		},
	} {
		if got := formatEvent(tc.ev); got != tc.want {
			t.Errorf("formatEvent = %q; want %q", got, tc.want)
		}
	}
}

func TestFormatFailure(t *testing.T) {
	for _, tc := range []struct {
		f    *weftv1.Failure
		want string
	}{
		{nil, ""},
		{&weftv1.Failure{Message: "boom"}, "boom"},
		{&weftv1.Failure{Type: "Timeout", Message: "too slow", StepPath: "x"}, "Timeout: too slow"},
	} {
		if got := formatFailure(tc.f); got != tc.want {
			t.Errorf("formatFailure(%v) = %q; want %q", tc.f, got, tc.want)
		}
	}
}

func TestServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080":        "http://127.0.0.1:8080",
		"http://localhost:1":    "http://localhost:1",
		"https://weft.example/": "https://weft.example/",
	} {
		if got := serverURL(in); got != want {
			t.Errorf("serverURL(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRPCErr(t *testing.T) {
	err := rpcErr(connect.NewError(connect.CodeNotFound, errors.New("workflow x not found")))
	if got, want := err.Error(), "not_found: workflow x not found"; got != want {
		t.Errorf("rpcErr = %q; want %q", got, want)
	}
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("CodeOf(rpcErr) = %v; want not_found", connect.CodeOf(err))
	}
	plain := errors.New("plain")
	if rpcErr(plain) != plain || rpcErr(nil) != nil {
		t.Error("rpcErr changed a non-Connect error")
	}
}
