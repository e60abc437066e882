package events_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
)

// t0 is the fixed base time of every event in these tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// sample returns one event of every type, with values given in their
// un-normalized Go form (int, nested maps, []string) where a payload holds
// a value, and the normalized value Decode must give back.
func sample() []struct {
	in, want events.Event
} {
	type pair = struct{ in, want events.Event }
	retry := events.RetryPolicy{MaxAttempts: 5, InitialInterval: 2 * time.Second, BackoffCoefficient: 1.5,
		MaxInterval: time.Minute, NonRetryable: []string{"bad_request", "auth"}}
	return []pair{
		{
			in: events.Event{Type: events.TypeWorkflowStarted, Time: at(0), WorkflowStarted: &events.WorkflowStarted{
				WorkflowID: "wf-1", Definition: "onboarding", Revision: 3, RequestID: "req-1",
				Input: map[string]any{"email": "ann@example.com", "n": 7, "big": 300, "neg": -5, "ratio": 0.5, "whole": 2.0,
					"ok": true, "none": nil, "tags": []any{"a", 1}, "deep": map[string]any{"x": []any{map[string]any{"y": uint8(9)}}}},
			}},
			want: events.Event{Type: events.TypeWorkflowStarted, Time: at(0), WorkflowStarted: &events.WorkflowStarted{
				WorkflowID: "wf-1", Definition: "onboarding", Revision: 3, RequestID: "req-1",
				Input: map[string]any{"email": "ann@example.com", "n": int64(7), "big": int64(300), "neg": int64(-5), "ratio": 0.5, "whole": int64(2),
					"ok": true, "none": nil, "tags": []any{"a", int64(1)}, "deep": map[string]any{"x": []any{map[string]any{"y": int64(9)}}}},
			}},
		},
		{
			in: events.Event{Type: events.TypeStepScheduled, Time: at(time.Second + 123456789), StepScheduled: &events.StepScheduled{
				Path: "welcome", Gen: 1, Task: "http.post", Input: map[string]any{"to": "ann@example.com", "retries": 2},
				Retry: retry, Timeout: 30 * time.Second, IdempotencyKey: "wf-1/welcome", FirstAttempt: 1,
			}},
			want: events.Event{Type: events.TypeStepScheduled, Time: at(time.Second + 123456789), StepScheduled: &events.StepScheduled{
				Path: "welcome", Gen: 1, Task: "http.post", Input: map[string]any{"to": "ann@example.com", "retries": int64(2)},
				Retry: retry, Timeout: 30 * time.Second, IdempotencyKey: "wf-1/welcome", FirstAttempt: 1,
			}},
		},
		{
			in: events.Event{Type: events.TypeStepAttemptFailed, Time: at(2 * time.Second), StepAttemptFailed: &events.StepAttemptFailed{
				Path: "welcome", Gen: 1, Attempt: 1, Error: events.Error{Message: "connection refused", Type: "io"}, RetryDelay: 2 * time.Second,
			}},
		},
		{
			in: events.Event{Type: events.TypeStepCompleted, Time: at(3 * time.Second), StepCompleted: &events.StepCompleted{
				Path: "welcome", Gen: 1, Attempt: 2, Output: []any{1, "x", map[string]any{}},
			}},
			want: events.Event{Type: events.TypeStepCompleted, Time: at(3 * time.Second), StepCompleted: &events.StepCompleted{
				Path: "welcome", Gen: 1, Attempt: 2, Output: []any{int64(1), "x", map[string]any{}},
			}},
		},
		{
			in: events.Event{Type: events.TypeStepCompleted, Time: at(4 * time.Second), StepCompleted: &events.StepCompleted{
				Path: "approval", Output: "yes", SignalSeq: 6,
			}},
		},
		{
			in: events.Event{Type: events.TypeStepFailed, Time: at(5 * time.Second), StepFailed: &events.StepFailed{
				Path: "charge", Gen: 2, Attempt: 3, Error: events.Error{Message: "card declined", Type: "declined"},
			}},
		},
		{
			in: events.Event{Type: events.TypeWaitStarted, Time: at(6 * time.Second), WaitStarted: &events.WaitStarted{
				Path: "approval", Signal: "approve", TimeoutAt: at(72 * time.Hour), TimerID: "wait_approval",
			}},
		},
		{
			in: events.Event{Type: events.TypeWaitStarted, Time: at(6 * time.Second), WaitStarted: &events.WaitStarted{
				Path: "forever", Signal: "approve.v2",
			}},
		},
		{
			in: events.Event{Type: events.TypeSignalReceived, Time: at(7 * time.Second), SignalReceived: &events.SignalReceived{
				Name: "approve", Payload: map[string]any{"by": "bob", "level": 200}, RequestID: "sig-1",
			}},
			want: events.Event{Type: events.TypeSignalReceived, Time: at(7 * time.Second), SignalReceived: &events.SignalReceived{
				Name: "approve", Payload: map[string]any{"by": "bob", "level": int64(200)}, RequestID: "sig-1",
			}},
		},
		{
			in: events.Event{Type: events.TypeSignalReceived, Time: at(7 * time.Second), SignalReceived: &events.SignalReceived{Name: "ping"}},
		},
		{
			in: events.Event{Type: events.TypeTimerFired, Time: at(72*time.Hour + time.Millisecond), TimerFired: &events.TimerFired{
				TimerID: "wait_approval", Path: "approval", Due: at(72 * time.Hour),
			}},
		},
		{
			in: events.Event{Type: events.TypeCancelRequested, Time: at(8 * time.Second), CancelRequested: &events.CancelRequested{Reason: "user asked"}},
		},
		{
			in: events.Event{Type: events.TypeCancelRequested, Time: at(8 * time.Second), CancelRequested: &events.CancelRequested{}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowCompleted, Time: at(9 * time.Second), WorkflowCompleted: &events.WorkflowCompleted{
				Output: map[string]string{"result": "ok"},
			}},
			want: events.Event{Type: events.TypeWorkflowCompleted, Time: at(9 * time.Second), WorkflowCompleted: &events.WorkflowCompleted{
				Output: map[string]any{"result": "ok"},
			}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowCompleted, Time: at(9 * time.Second), WorkflowCompleted: &events.WorkflowCompleted{}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowFailed, Time: at(10 * time.Second), WorkflowFailed: &events.WorkflowFailed{
				Error: events.Error{Message: "step charge: card declined", Type: "declined"}, Path: "charge",
			}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowCanceled, Time: at(11 * time.Second), WorkflowCanceled: &events.WorkflowCanceled{Reason: "user asked"}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowStarted, Time: at(12 * time.Second), WorkflowStarted: &events.WorkflowStarted{
				WorkflowID: "wf-1-charge-1", Definition: "billing", Revision: 1, Input: "x",
				Parent: &events.ParentRef{WorkflowID: "wf-1", Path: "charge", Gen: 1},
			}},
		},
		{
			in: events.Event{Type: events.TypeStepCompleted, Time: at(13 * time.Second), StepCompleted: &events.StepCompleted{
				Path: "init", Output: map[string]any{"total": 0}, Vars: map[string]any{"total": 0, "names": []any{"a"}},
			}},
			want: events.Event{Type: events.TypeStepCompleted, Time: at(13 * time.Second), StepCompleted: &events.StepCompleted{
				Path: "init", Output: map[string]any{"total": int64(0)}, Vars: map[string]any{"total": int64(0), "names": []any{"a"}},
			}},
		},
		{
			in: events.Event{Type: events.TypeStepStarted, Time: at(14 * time.Second), StepStarted: &events.StepStarted{
				Path: "each", Kind: "foreach", Items: []any{1, map[string]any{"sku": "A", "qty": 300}},
			}},
			want: events.Event{Type: events.TypeStepStarted, Time: at(14 * time.Second), StepStarted: &events.StepStarted{
				Path: "each", Kind: "foreach", Items: []any{int64(1), map[string]any{"sku": "A", "qty": int64(300)}},
			}},
		},
		{
			in: events.Event{Type: events.TypeStepStarted, Time: at(14 * time.Second), StepStarted: &events.StepStarted{
				Path: "route", Kind: "switch", Case: -1,
			}},
		},
		{
			in: events.Event{Type: events.TypeStepSkipped, Time: at(15 * time.Second), StepSkipped: &events.StepSkipped{Path: "each[2].one"}},
		},
		{
			in: events.Event{Type: events.TypeStepIterated, Time: at(16 * time.Second), StepIterated: &events.StepIterated{Path: "poll", Iteration: 4}},
		},
		{
			in: events.Event{Type: events.TypeTimerScheduled, Time: at(17 * time.Second), TimerScheduled: &events.TimerScheduled{
				Path: "nap", TimerID: "t1_nap", Due: at(36 * time.Hour),
			}},
		},
		{
			in: events.Event{Type: events.TypeTimerScheduled, Time: at(17 * time.Second), TimerScheduled: &events.TimerScheduled{
				TimerID: "workflow_timeout_0", Due: at(24 * time.Hour),
			}},
		},
		{
			in: events.Event{Type: events.TypeChildStarted, Time: at(18 * time.Second), ChildStarted: &events.ChildStarted{
				Path: "charge", Gen: 1, WorkflowID: "wf-1-charge-1", Definition: "billing", Input: map[string]any{"amount": 250},
			}},
			want: events.Event{Type: events.TypeChildStarted, Time: at(18 * time.Second), ChildStarted: &events.ChildStarted{
				Path: "charge", Gen: 1, WorkflowID: "wf-1-charge-1", Definition: "billing", Input: map[string]any{"amount": int64(250)},
			}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowRetried, Time: at(19 * time.Second), WorkflowRetried: &events.WorkflowRetried{Reason: "fixed the card"}},
		},
		{
			in: events.Event{Type: events.TypeWorkflowExpired, Time: at(19 * time.Second), WorkflowExpired: &events.WorkflowExpired{Retention: 720 * time.Hour}},
		},
		{
			in: events.Event{Type: events.TypeStepCanceled, Time: at(20 * time.Second), StepCanceled: &events.StepCanceled{Path: "each[3].charge", Cause: "each"}},
		},
		{
			in: events.Event{Type: events.TypeStepCanceled, Time: at(20 * time.Second), StepCanceled: &events.StepCanceled{Path: "nap"}},
		},
		{
			in: events.Event{Type: events.TypeStepReopened, Time: at(21 * time.Second), StepReopened: &events.StepReopened{Path: "poll", BudgetFrom: 5}},
		},
		{
			in: events.Event{Type: events.TypeStepReopened, Time: at(21 * time.Second), StepReopened: &events.StepReopened{Path: "fan"}},
		},
		{
			in: events.Event{Type: events.TypeSearchAttributesSet, Time: at(22 * time.Second), SearchAttributesSet: &events.SearchAttributesSet{
				Attributes: map[string]any{"customer": "ann", "amount": 250, "ratio": 0.5, "vip": true,
					"due": time.Date(2025, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))},
			}},
			want: events.Event{Type: events.TypeSearchAttributesSet, Time: at(22 * time.Second), SearchAttributesSet: &events.SearchAttributesSet{
				Attributes: map[string]any{"customer": "ann", "amount": int64(250), "ratio": 0.5, "vip": true,
					"due": time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)},
			}},
		},
		{
			in: events.Event{Type: events.TypeSearchAttributesSet, Time: at(23 * time.Second), SearchAttributesSet: &events.SearchAttributesSet{
				Path: "each[2].charge", Attributes: map[string]any{"charged": uint64(1) << 40},
			}},
			want: events.Event{Type: events.TypeSearchAttributesSet, Time: at(23 * time.Second), SearchAttributesSet: &events.SearchAttributesSet{
				Path: "each[2].charge", Attributes: map[string]any{"charged": int64(1) << 40},
			}},
		},
	}
}

// utcTimes returns e with its payload times in UTC, so that events compare
// with reflect.DeepEqual however their times were decoded.
func utcTimes(e events.Event) events.Event {
	if e.WaitStarted != nil {
		w := *e.WaitStarted
		w.TimeoutAt = w.TimeoutAt.UTC()
		e.WaitStarted = &w
	}
	if e.TimerFired != nil {
		f := *e.TimerFired
		f.Due = f.Due.UTC()
		e.TimerFired = &f
	}
	if e.TimerScheduled != nil {
		f := *e.TimerScheduled
		f.Due = f.Due.UTC()
		e.TimerScheduled = &f
	}
	return e
}

// show renders an event with its payload for failure messages.
func show(e events.Event) string {
	return fmt.Sprintf("%s@%s %+v", e.Type, e.Time.Format(time.RFC3339Nano), e.Payload())
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	seen := map[events.Type]bool{}
	for i, tc := range sample() {
		seen[tc.in.Type] = true
		want := tc.want
		if want.Type == "" {
			want = tc.in
		}
		t.Run(fmt.Sprintf("%d_%s", i, tc.in.Type), func(t *testing.T) {
			b, err := events.Encode(tc.in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			rec, err := events.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if rec.V != events.RecordVersion {
				t.Errorf("V = %d, want %d", rec.V, events.RecordVersion)
			}
			if len(rec.Events) != 1 {
				t.Fatalf("decoded %d events, want 1", len(rec.Events))
			}
			got := rec.Events[0]
			if got.Time.Location() != time.UTC {
				t.Errorf("Time location = %v, want UTC", got.Time.Location())
			}
			if !reflect.DeepEqual(utcTimes(got), want) {
				t.Errorf("round trip:\n got %s\nwant %s", show(utcTimes(got)), show(want))
			}
		})
	}
	for _, typ := range allTypes {
		if !seen[typ] {
			t.Errorf("no round-trip case for %s", typ)
		}
	}
}

// allTypes lists every event type: a new type must be added here, which
// makes the tests ask for its round trip and its recording.
var allTypes = []events.Type{
	events.TypeWorkflowStarted, events.TypeStepScheduled, events.TypeStepAttemptFailed, events.TypeStepCompleted,
	events.TypeStepFailed, events.TypeWaitStarted, events.TypeSignalReceived, events.TypeTimerFired,
	events.TypeCancelRequested, events.TypeWorkflowCompleted, events.TypeWorkflowFailed, events.TypeWorkflowCanceled,
	events.TypeStepStarted, events.TypeStepSkipped, events.TypeStepIterated, events.TypeTimerScheduled,
	events.TypeChildStarted, events.TypeWorkflowRetried, events.TypeStepCanceled,
	events.TypeStepReopened, events.TypeSearchAttributesSet, events.TypeWorkflowExpired,
}

func TestEncodeDecodeMultiEventRecord(t *testing.T) {
	var in, want []events.Event
	for _, tc := range sample() {
		in = append(in, tc.in)
		w := tc.want
		if w.Type == "" {
			w = tc.in
		}
		want = append(want, w)
	}
	b, err := events.Encode(in...)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Events) != len(want) {
		t.Fatalf("decoded %d events, want %d", len(rec.Events), len(want))
	}
	if n, last, err := events.Peek(b); err != nil || n != len(want) || last != want[len(want)-1].Type {
		t.Fatalf("Peek = %d, %s, %v; want %d, %s", n, last, err, len(want), want[len(want)-1].Type)
	}
	if _, _, err := events.Peek(b[:len(b)-3]); !errors.Is(err, events.ErrCorrupt) {
		t.Fatalf("Peek of a truncated record: %v", err)
	}
	for i := range want {
		if got := utcTimes(rec.Events[i]); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("event %d:\n got %s\nwant %s", i, show(got), show(want[i]))
		}
	}
}

func TestDecodeZeroTime(t *testing.T) {
	b, err := events.Encode(events.Event{Type: events.TypeCancelRequested, CancelRequested: &events.CancelRequested{}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.Events[0].Time; !got.IsZero() || got != (time.Time{}) {
		t.Errorf("Time = %v, want the zero time", got)
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		evs     []events.Event
		corrupt bool // the error wraps ErrCorrupt
	}{
		{"empty record", nil, false},
		{"unknown type", []events.Event{{Type: "StepExploded", Time: t0}}, true},
		{"missing payload", []events.Event{{Type: events.TypeStepScheduled, Time: t0}}, true},
		{"payload of another type", []events.Event{{Type: events.TypeStepScheduled, Time: t0, StepCompleted: &events.StepCompleted{Path: "a"}}}, true},
		{"one bad event among good ones", []events.Event{
			{Type: events.TypeCancelRequested, Time: t0, CancelRequested: &events.CancelRequested{}},
			{Type: events.TypeWorkflowCanceled, Time: t0},
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := events.Encode(tc.evs...)
			if err == nil {
				t.Fatalf("Encode = %x, want an error", b)
			}
			if got := errors.Is(err, events.ErrCorrupt); got != tc.corrupt {
				t.Errorf("errors.Is(%v, ErrCorrupt) = %v, want %v", err, got, tc.corrupt)
			}
		})
	}
}

// raw encodes v with msgpack as a foreign or older writer might.
func raw(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawEvent is an encoded event's map: its type, time and payload keys
// and values in pairs.
func rawEvent(typ string, payload ...any) map[string]any {
	m := map[string]any{"t": typ, "at": t0}
	for i := 0; i+1 < len(payload); i += 2 {
		m[payload[i].(string)] = payload[i+1]
	}
	return m
}

func TestDecodeRejects(t *testing.T) {
	valid, err := events.Encode(sample()[1].in)
	if err != nil {
		t.Fatal(err)
	}
	ev := rawEvent
	rec := func(v int, evs ...any) []byte { return raw(t, map[string]any{"v": v, "e": evs}) }
	tests := []struct {
		name string
		b    []byte
		msg  string // part of the error message
	}{
		{"nil", nil, ""},
		{"empty", []byte{}, ""},
		{"garbage", []byte("this is not msgpack at all"), ""},
		{"invalid code", []byte{0xc1}, ""},
		{"truncated", valid[:len(valid)/2], ""},
		{"one byte short", valid[:len(valid)-1], ""},
		{"not a map", raw(t, []any{1, 2, 3}), ""},
		{"string", raw(t, "hello"), ""},
		{"no version", raw(t, map[string]any{"e": []any{ev("CancelRequested", "cr", map[string]any{})}}), "version 0"},
		{"version 0", rec(0, ev("CancelRequested", "cr", map[string]any{})), "version 0"},
		{"version 2", rec(2, ev("CancelRequested", "cr", map[string]any{})), "version 2"},
		{"version -1", rec(-1, ev("CancelRequested", "cr", map[string]any{})), "version -1"},
		{"no events key", raw(t, map[string]any{"v": 1}), "no events"},
		{"empty events", rec(1), "no events"},
		{"nil events", raw(t, map[string]any{"v": 1, "e": nil}), "no events"},
		{"events not a list", raw(t, map[string]any{"v": 1, "e": "x"}), ""},
		{"event not a map", rec(1, "x"), ""},
		{"unknown event type", rec(1, ev("StepExploded", "ss", map[string]any{"p": "a"})), "unknown event type"},
		{"empty event type", rec(1, ev("", "cr", map[string]any{})), "unknown event type"},
		{"missing payload", rec(1, ev("StepScheduled")), "without its payload"},
		{"nil payload", rec(1, ev("WorkflowStarted", "ws", nil)), "without its payload"},
		{"payload of another type", rec(1, ev("StepFailed", "sc", map[string]any{"p": "a"})), "without its payload"},
		{"bad second event", rec(1, ev("CancelRequested", "cr", map[string]any{}), ev("WorkflowCanceled")), "event 1"},
		{"payload of wrong shape", rec(1, ev("StepScheduled", "ss", "not a map")), ""},
		{"field of wrong type", rec(1, ev("StepScheduled", "ss", map[string]any{"p": []any{1}})), ""},
		{"time of wrong type", rec(1, map[string]any{"t": "CancelRequested", "at": true, "cr": map[string]any{}}), ""},
		{"type of wrong type", rec(1, map[string]any{"t": 7, "at": t0, "cr": map[string]any{}}), ""},
		{"non-string map key in input", rec(1, ev("WorkflowStarted", "ws", map[string]any{"id": "wf", "in": map[int]any{1: "x"}})), ""},
		{"non-string nested map key in output", rec(1, ev("StepCompleted", "sc", map[string]any{"p": "a", "out": []any{map[any]any{"k": "v", true: 1}}})), ""},
		// Inputs that make the msgpack decoder panic.
		{"nil time", rec(1, map[string]any{"t": "CancelRequested", "at": nil, "cr": map[string]any{}}), ""},
		{"nil payload time", rec(1, ev("WaitStarted", "wst", map[string]any{"p": "a", "sig": "s", "due": nil})), ""},
		{"repeated value key", unhex(t, "82a17601a1659182a174af576f726b666c6f7753746172746564a2777382a2696e81a16101a2696e81a16202"), ""},
		{"found by fuzzing", []byte("\x82\xa1e\xdc00\x83\xa100\xa2at\xc0"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := events.Decode(tc.b)
			if err == nil {
				t.Fatalf("Decode(%x) = %+v, want an error", tc.b, r)
			}
			if !errors.Is(err, events.ErrCorrupt) {
				t.Errorf("Decode error %v does not wrap ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Decode error %q does not mention %q", err, tc.msg)
			}
			if r.V != 0 || r.Events != nil {
				t.Errorf("Decode returned %+v with its error, want the zero Record", r)
			}
		})
	}
}

// A record a newer version wrote is told apart from a corrupt one
// (ErrNewer): a higher record version, whether or not the rest decodes,
// or an event type this build does not know. A reader that can wait
// leaves such a record to an upgraded part instead of failing the run.
func TestDecodeTellsANewerRecord(t *testing.T) {
	ev := rawEvent
	rec := func(v int, evs ...any) []byte { return raw(t, map[string]any{"v": v, "e": evs}) }
	tests := []struct {
		name  string
		b     []byte
		newer bool
	}{
		{"version 2", rec(2, ev("CancelRequested", "cr", map[string]any{})), true},
		{"version 2 of another layout", raw(t, map[string]any{"v": 2, "e": map[string]any{"x": 1}}), true},
		{"version 2 last", raw(t, map[string]any{"e": "elsewhere", "v": 2}), true},
		{"unknown event type", rec(1, ev("StepExploded", "ss", map[string]any{"p": "a"})), true},
		{"version 0", rec(0, ev("CancelRequested", "cr", map[string]any{})), false},
		{"empty event type", rec(1, ev("", "cr", map[string]any{})), false},
		{"garbage", []byte("this is not msgpack at all"), false},
		{"missing payload", rec(1, ev("StepScheduled")), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := events.Decode(tc.b)
			if !errors.Is(err, events.ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			if got := errors.Is(err, events.ErrNewer); got != tc.newer {
				t.Fatalf("Decode error %v: newer %v, want %v", err, got, tc.newer)
			}
		})
	}
}

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// A record written by a later release may carry fields this one does not
// know: they are skipped (fields are only ever added).
func TestDecodeIgnoresUnknownFields(t *testing.T) {
	b := raw(t, map[string]any{"v": 1, "future": "x", "e": []any{map[string]any{
		"t": "StepFailed", "at": t0, "later": []any{1, 2},
		"sf": map[string]any{"p": "a", "err": map[string]any{"m": "boom", "t": "x", "hint": "retry later"}, "new": true},
	}}})
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	want := events.Event{Type: events.TypeStepFailed, Time: t0, StepFailed: &events.StepFailed{Path: "a", Error: events.Error{Message: "boom", Type: "x"}}}
	if !reflect.DeepEqual(rec.Events, []events.Event{want}) {
		t.Errorf("got %s, want %s", show(rec.Events[0]), show(want))
	}
}

// A record written before events carried an identity has no "who" key: it
// decodes with Identity empty, and an event without one is written without
// the key, as before.
func TestDecodeWithoutIdentity(t *testing.T) {
	b := raw(t, map[string]any{"v": 1, "e": []any{
		map[string]any{"t": "WorkflowStarted", "at": t0, "ws": map[string]any{"id": "wf", "def": "d", "rev": 1, "in": nil}},
		map[string]any{"t": "SignalReceived", "at": t0, "sr": map[string]any{"n": "go", "pl": nil}},
	}})
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range rec.Events {
		if e.Identity != "" {
			t.Errorf("event %d: Identity = %q, want empty", i, e.Identity)
		}
	}
	again, err := events.Encode(rec.Events...)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(again, []byte("\xa3who")) {
		t.Errorf("an event without an identity was written with a \"who\" key: %x", again)
	}
	rec.Events[1].Identity = "bob"
	with, err := events.Encode(rec.Events...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(with)
	if err != nil || got.Events[0].Identity != "" || got.Events[1].Identity != "bob" {
		t.Fatalf("round trip of an identity: %+v, %v", got.Events, err)
	}
}

// The wire names of fields are the stored format: this pins them for one
// event whose encoding has no maps (whose key order msgpack leaves open).
func TestEncodeWireFormat(t *testing.T) {
	b, err := events.Encode(events.Event{Type: events.TypeStepAttemptFailed, Time: time.Unix(1700000000, 0).UTC(),
		StepAttemptFailed: &events.StepAttemptFailed{Path: "a", Gen: 1, Attempt: 2, Error: events.Error{Message: "m", Type: "t"}, RetryDelay: 3}})
	if err != nil {
		t.Fatal(err)
	}
	// {"v":1,"e":[{"t":"StepAttemptFailed","at":ext(-1, 1700000000),
	//   "saf":{"p":"a","g":1,"a":2,"err":{"m":"m","t":"t"},"d":3}}]}
	want := "82a17601a16591" +
		"83a174b153746570417474656d70744661696c6564" +
		"a26174d6ff6553f100" +
		"a3736166" + "85a170a161a16701a16102a3657272" + "82a16da16da174a174" + "a164d30000000000000003"
	if got := fmt.Sprintf("%x", b); got != want {
		t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
	}
}

func TestEventMethods(t *testing.T) {
	for _, tc := range sample() {
		e := tc.in
		terminal := e.Type == events.TypeWorkflowCompleted || e.Type == events.TypeWorkflowFailed || e.Type == events.TypeWorkflowCanceled
		if got := e.Terminal(); got != terminal {
			t.Errorf("%s.Terminal() = %v, want %v", e.Type, got, terminal)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%s.Validate() = %v", e.Type, err)
		}
		if p := e.Payload(); p == nil || reflect.ValueOf(p).IsNil() {
			t.Errorf("%s.Payload() = %v, want its payload", e.Type, p)
		}
	}
	attempts := []struct {
		e    events.Event
		want int
	}{
		{events.Event{Type: events.TypeStepScheduled, StepScheduled: &events.StepScheduled{FirstAttempt: 1}}, 1},
		{events.Event{Type: events.TypeStepAttemptFailed, StepAttemptFailed: &events.StepAttemptFailed{Attempt: 2}}, 2},
		{events.Event{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Attempt: 3}}, 3},
		{events.Event{Type: events.TypeStepFailed, StepFailed: &events.StepFailed{Attempt: 4}}, 4},
		{events.Event{Type: events.TypeSignalReceived, SignalReceived: &events.SignalReceived{}}, 0},
		{events.Event{Type: "Bogus"}, 0},
	}
	for _, tc := range attempts {
		if got := tc.e.Attempt(); got != tc.want {
			t.Errorf("%s.Attempt() = %d, want %d", tc.e.Type, got, tc.want)
		}
	}
	if p := (events.Event{Type: "Bogus"}).Payload(); p != nil {
		t.Errorf("Payload of an unknown type = %v, want nil", p)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    events.Error
		want string
	}{
		{events.Error{Message: "boom"}, "boom"},
		{events.Error{Message: "boom", Type: "io"}, "io: boom"},
	}
	for _, tc := range tests {
		var err error = &tc.e
		if got := err.Error(); got != tc.want {
			t.Errorf("%+v.Error() = %q, want %q", tc.e, got, tc.want)
		}
	}
}

// Fit keeps an error valid UTF-8 and within its bounds, cut at a rune
// boundary with a note of how much was cut; a short one is kept as it is.
func TestErrorFit(t *testing.T) {
	if got := (events.Error{Type: "io", Message: "boom"}).Fit(); got != (events.Error{Type: "io", Message: "boom"}) {
		t.Errorf("a short error became %+v", got)
	}
	if got := (events.Error{Type: "b\xff", Message: "caf\xe9"}).Fit(); got != (events.Error{Type: "b\uFFFD", Message: "caf\uFFFD"}) {
		t.Errorf("invalid UTF-8 became %+v", got)
	}
	long := strings.Repeat("\u00e9", events.MaxErrorMessage) // 2 bytes each
	got := (events.Error{Type: strings.Repeat("t", 1000), Message: long}).Fit()
	if len(got.Type) > events.MaxErrorType || !strings.HasSuffix(got.Type, " bytes cut)") {
		t.Errorf("type of %d bytes cut to %d: %q", 1000, len(got.Type), got.Type)
	}
	m := got.Message
	if len(m) > events.MaxErrorMessage || !utf8.ValidString(m) || !strings.HasPrefix(m, "\u00e9\u00e9") {
		t.Fatalf("message of %d bytes cut to %d bytes, valid UTF-8 %v", len(long), len(m), utf8.ValidString(m))
	}
	kept := strings.Index(m, "...")
	if want := fmt.Sprintf("... (%d bytes cut)", len(long)-kept); m[kept:] != want {
		t.Errorf("message ends %q, want %q", m[kept:], want)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	p := events.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: 10 * time.Second}
	tests := []struct {
		name    string
		p       events.RetryPolicy
		attempt int
		want    time.Duration
	}{
		{"first attempt", p, 1, time.Second},
		{"attempt 0 is the first", p, 0, time.Second},
		{"negative attempt is the first", p, -3, time.Second},
		{"second", p, 2, 2 * time.Second},
		{"third", p, 3, 4 * time.Second},
		{"fourth", p, 4, 8 * time.Second},
		{"capped", p, 5, 10 * time.Second},
		{"stays capped", p, 50, 10 * time.Second},
		{"stays capped far out", p, 100000, 10 * time.Second},
		{"exactly the cap", events.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: 4 * time.Second}, 3, 4 * time.Second},
		{"fractional coefficient", events.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 1.5, MaxInterval: time.Minute}, 3, 2250 * time.Millisecond},
		{"coefficient 1 is constant", events.RetryPolicy{InitialInterval: 3 * time.Second, BackoffCoefficient: 1, MaxInterval: time.Minute}, 10, 3 * time.Second},
		{"coefficient below 1 is 1", events.RetryPolicy{InitialInterval: 3 * time.Second, BackoffCoefficient: 0.5, MaxInterval: time.Minute}, 10, 3 * time.Second},
		{"coefficient 0 is 1", events.RetryPolicy{InitialInterval: 3 * time.Second, MaxInterval: time.Minute}, 4, 3 * time.Second},
		{"negative coefficient is 1", events.RetryPolicy{InitialInterval: 3 * time.Second, BackoffCoefficient: -2, MaxInterval: time.Minute}, 4, 3 * time.Second},
		{"no cap", events.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 3}, 5, 81 * time.Second},
		{"initial above the cap", events.RetryPolicy{InitialInterval: time.Minute, BackoffCoefficient: 2, MaxInterval: time.Second}, 1, time.Second},
		{"zero policy", events.RetryPolicy{}, 5, 0},
		{"default-like policy", events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: time.Minute}, 7, time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Delay(tc.attempt); got != tc.want {
				t.Errorf("%+v.Delay(%d) = %v, want %v", tc.p, tc.attempt, got, tc.want)
			}
		})
	}
}

// Delay must never be negative: without a cap, a long backoff grows past
// what time.Duration holds.
func TestRetryPolicyDelayOverflow(t *testing.T) {
	p := events.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2}
	prev := time.Duration(0)
	for attempt := 1; attempt <= 200; attempt++ {
		d := p.Delay(attempt)
		if d < prev {
			t.Fatalf("Delay(%d) = %v, less than Delay(%d) = %v", attempt, d, attempt-1, prev)
		}
		prev = d
	}
	if prev != 365*24*time.Hour {
		t.Errorf("Delay(200) = %v, want the cap of a year", prev)
	}
}

func TestRetryPolicyIsNonRetryable(t *testing.T) {
	p := events.RetryPolicy{NonRetryable: []string{"bad_request", "auth"}}
	tests := []struct {
		p    events.RetryPolicy
		typ  string
		want bool
	}{
		{p, "bad_request", true},
		{p, "auth", true},
		{p, "Auth", false},
		{p, "io", false},
		{p, "", false},
		{events.RetryPolicy{}, "bad_request", false},
		{events.RetryPolicy{}, "", false},
	}
	for _, tc := range tests {
		if got := tc.p.IsNonRetryable(tc.typ); got != tc.want {
			t.Errorf("%v.IsNonRetryable(%q) = %v, want %v", tc.p.NonRetryable, tc.typ, got, tc.want)
		}
	}
}

func TestResultEvent(t *testing.T) {
	base := events.Result{V: 1, WorkflowID: "wf-1", Path: "fetch", Gen: 2, Attempt: 3, Time: at(time.Minute)}
	errv := &events.Error{Message: "boom", Type: "io"}
	tests := []struct {
		name string
		mod  func(r *events.Result)
		want events.Event
	}{
		{"completed", func(r *events.Result) { r.Outcome, r.Output = events.OutcomeCompleted, "out" },
			events.Event{Type: events.TypeStepCompleted, Time: at(time.Minute), StepCompleted: &events.StepCompleted{Path: "fetch", Gen: 2, Attempt: 3, Output: "out"}}},
		{"attempt failed", func(r *events.Result) {
			r.Outcome, r.Error, r.RetryDelay = events.OutcomeAttemptFailed, errv, 4*time.Second
		}, events.Event{Type: events.TypeStepAttemptFailed, Time: at(time.Minute), StepAttemptFailed: &events.StepAttemptFailed{
			Path: "fetch", Gen: 2, Attempt: 3, Error: *errv, RetryDelay: 4 * time.Second}}},
		{"failed", func(r *events.Result) { r.Outcome, r.Error = events.OutcomeFailed, errv },
			events.Event{Type: events.TypeStepFailed, Time: at(time.Minute), StepFailed: &events.StepFailed{Path: "fetch", Gen: 2, Attempt: 3, Error: *errv}}},
		{"failed without an error", func(r *events.Result) { r.Outcome = events.OutcomeFailed },
			events.Event{Type: events.TypeStepFailed, Time: at(time.Minute), StepFailed: &events.StepFailed{Path: "fetch", Gen: 2, Attempt: 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			tc.mod(&r)
			got := r.Event()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Event() = %s, want %s", show(got), show(tc.want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Event() does not validate: %v", err)
			}
		})
	}
}

func TestResultRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   events.Result
		want events.Result
	}{
		{
			name: "completed",
			in: events.Result{WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 2, Outcome: events.OutcomeCompleted,
				Output: map[string]any{"status": 200, "body": "hi", "list": []any{1.0, 2.5}}, Time: at(time.Second)},
			want: events.Result{V: 1, WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 2, Outcome: events.OutcomeCompleted,
				Output: map[string]any{"status": int64(200), "body": "hi", "list": []any{int64(1), 2.5}}, Time: at(time.Second)},
		},
		{
			name: "completed with null output",
			in:   events.Result{WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted, Time: at(time.Second)},
			want: events.Result{V: 1, WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 1, Outcome: events.OutcomeCompleted, Time: at(time.Second)},
		},
		{
			name: "attempt failed",
			in: events.Result{V: 7, WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 1, Outcome: events.OutcomeAttemptFailed,
				Error: &events.Error{Message: "timeout", Type: "io"}, RetryDelay: 1500 * time.Millisecond, Time: at(2 * time.Second)},
			want: events.Result{V: 1, WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 1, Outcome: events.OutcomeAttemptFailed,
				Error: &events.Error{Message: "timeout", Type: "io"}, RetryDelay: 1500 * time.Millisecond, Time: at(2 * time.Second)},
		},
		{
			name: "failed",
			in: events.Result{WorkflowID: "wf-1", Path: "fetch", Gen: 3, Attempt: 5, Outcome: events.OutcomeFailed,
				Error: &events.Error{Message: "nope"}, Time: at(3 * time.Second).In(time.FixedZone("X", 3600))},
			want: events.Result{V: 1, WorkflowID: "wf-1", Path: "fetch", Gen: 3, Attempt: 5, Outcome: events.OutcomeFailed,
				Error: &events.Error{Message: "nope"}, Time: at(3 * time.Second)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := events.EncodeResult(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.DecodeResult(b)
			if err != nil {
				t.Fatalf("DecodeResult: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A task's output is whatever it returned, zero values included.
func TestResultRoundTripZeroOutputs(t *testing.T) {
	for _, out := range []any{false, int64(0), "", []any{}, map[string]any{}, nil} {
		b, err := events.EncodeResult(events.Result{WorkflowID: "wf-1", Path: "fetch", Gen: 1, Attempt: 1,
			Outcome: events.OutcomeCompleted, Output: out, Time: t0})
		if err != nil {
			t.Fatal(err)
		}
		r, err := events.DecodeResult(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Output, out) {
			t.Errorf("output %#v decodes as %#v", out, r.Output)
		}
	}
}

func TestDecodeResultRejects(t *testing.T) {
	good := map[string]any{"v": 1, "wf": "wf-1", "p": "fetch", "g": 1, "a": 1, "o": 1, "at": t0}
	with := func(k string, v any) []byte {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return raw(t, m)
	}
	if _, err := events.DecodeResult(raw(t, good)); err != nil {
		t.Fatalf("the base result does not decode: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"garbage", []byte("garbage")},
		{"truncated", raw(t, good)[:10]},
		{"not a map", raw(t, []any{1})},
		{"no version", with("v", nil)},
		{"version 2", with("v", 2)},
		{"no workflow", with("wf", nil)},
		{"empty workflow", with("wf", "")},
		{"no path", with("p", nil)},
		{"empty path", with("p", "")},
		{"no outcome", with("o", nil)},
		{"outcome 0", with("o", 0)},
		{"outcome 6", with("o", 6)},
		{"outcome 255", with("o", 255)},
		{"outcome too large", with("o", 256)},
		{"error of wrong shape", with("err", "boom")},
		{"nil time", with("at", msgpack.RawMessage{0xc0})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := events.DecodeResult(tc.b)
			if err == nil {
				t.Fatalf("DecodeResult = %+v, want an error", r)
			}
			if !errors.Is(err, events.ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
		})
	}
}

func TestTimerRoundTrip(t *testing.T) {
	in := events.TimerDue{V: 9, WorkflowID: "wf-1", TimerID: "wait_approval", Path: "approval", Due: at(72 * time.Hour).In(time.FixedZone("X", -7200))}
	b, err := events.EncodeTimer(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.DecodeTimer(b)
	if err != nil {
		t.Fatal(err)
	}
	want := events.TimerDue{V: 1, WorkflowID: "wf-1", TimerID: "wait_approval", Path: "approval", Due: at(72 * time.Hour)}
	if got != want {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// The path is optional.
	b, err = events.EncodeTimer(events.TimerDue{WorkflowID: "wf-1", TimerID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err = events.DecodeTimer(b); err != nil || got != (events.TimerDue{V: 1, WorkflowID: "wf-1", TimerID: "t"}) {
		t.Errorf("DecodeTimer without a path = %+v, %v", got, err)
	}
}

func TestDecodeTimerRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"garbage", []byte{0xc1, 0x00}},
		{"not a map", raw(t, "timer")},
		{"no version", raw(t, map[string]any{"wf": "wf-1", "tid": "t", "due": t0})},
		{"version 2", raw(t, map[string]any{"v": 2, "wf": "wf-1", "tid": "t", "due": t0})},
		{"no workflow", raw(t, map[string]any{"v": 1, "tid": "t", "due": t0})},
		{"no timer id", raw(t, map[string]any{"v": 1, "wf": "wf-1", "due": t0})},
		{"due of wrong type", raw(t, map[string]any{"v": 1, "wf": "wf-1", "tid": "t", "due": []any{}})},
		{"nil due", raw(t, map[string]any{"v": 1, "wf": "wf-1", "tid": "t", "due": nil})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			td, err := events.DecodeTimer(tc.b)
			if err == nil {
				t.Fatalf("DecodeTimer = %+v, want an error", td)
			}
			if !errors.Is(err, events.ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
		})
	}
}

// Decode gives times in UTC, payload times included: the workflow core
// formats them into messages, which must not depend on the host's zone.
func TestDecodePayloadTimesUTC(t *testing.T) {
	for _, tc := range sample() {
		if tc.in.WaitStarted == nil && tc.in.TimerFired == nil && tc.in.TimerScheduled == nil {
			continue
		}
		b, err := events.Encode(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := events.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		e := rec.Events[0]
		if e.WaitStarted != nil && e.WaitStarted.TimeoutAt.Location() != time.UTC {
			t.Errorf("WaitStarted.TimeoutAt location = %v, want UTC", e.WaitStarted.TimeoutAt.Location())
		}
		if e.TimerFired != nil && e.TimerFired.Due.Location() != time.UTC {
			t.Errorf("TimerFired.Due location = %v, want UTC", e.TimerFired.Due.Location())
		}
		if e.TimerScheduled != nil && e.TimerScheduled.Due.Location() != time.UTC {
			t.Errorf("TimerScheduled.Due location = %v, want UTC", e.TimerScheduled.Due.Location())
		}
	}
}

// Length prefixes are bounded by the input: a few bytes that claim billions
// of elements are corrupt, not something to allocate.
func TestDecodeHugeLengths(t *testing.T) {
	if _, err := events.Decode(unhex(t, "82a165ddff7fdd91a2777385a2696e")); !errors.Is(err, events.ErrCorrupt) {
		t.Errorf("Decode of a record claiming 4286569873 events: %v, want ErrCorrupt", err)
	}
	if _, err := events.DecodeResult(unhex(t, "85a17601a27766a177a170a161a16f01a36f7574dd7fffffff")); !errors.Is(err, events.ErrCorrupt) {
		t.Errorf("DecodeResult of an output claiming 2147483647 elements: %v, want ErrCorrupt", err)
	}
}

// Values are normalized by the event's type, not by which payload pointers
// happen to be set.
func TestDecodeNormalizesTheTypedPayload(t *testing.T) {
	b, err := events.Encode(events.Event{Type: events.TypeSignalReceived, Time: t0,
		SignalReceived:  &events.SignalReceived{Name: "s", Payload: map[string]any{"n": 200}},
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: "stray"}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Events[0].SignalReceived.Payload, (map[string]any{"n": int64(200)}); !reflect.DeepEqual(got, want) {
		t.Errorf("Payload = %#v, want %#v", got, want)
	}
}

// fuzzSeeds are valid records, one per event type, plus one of all of them.
func fuzzSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	var all []events.Event
	for _, tc := range sample() {
		b, err := events.Encode(tc.in)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, b)
		all = append(all, tc.in)
	}
	b, err := events.Encode(all...)
	if err != nil {
		tb.Fatal(err)
	}
	return append(seeds, b)
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "history_v1.msgpack")); err == nil {
		frames, err := readFrames(data)
		if err != nil {
			f.Fatal(err)
		}
		for _, fr := range frames {
			f.Add(fr)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x82, 0xa1, 0x76, 0x01, 0xa1, 0x65, 0x90})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, last, perr := events.Peek(b)
		if perr != nil && !errors.Is(perr, events.ErrCorrupt) {
			t.Fatalf("Peek error %v does not wrap ErrCorrupt", perr)
		}
		rec, err := events.Decode(b)
		if err != nil {
			if !errors.Is(err, events.ErrCorrupt) {
				t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(rec.Events) == 0 {
			t.Fatal("Decode succeeded with no events")
		}
		if perr != nil || n != len(rec.Events) || last != rec.Events[n-1].Type {
			t.Fatalf("Peek = %d, %s, %v; Decode found %d events ending with %s", n, last, perr, len(rec.Events), rec.Events[len(rec.Events)-1].Type)
		}
		again, err := events.Encode(rec.Events...)
		if err != nil {
			t.Fatalf("Encode of decoded events: %v", err)
		}
		rec2, err := events.Decode(again)
		if err != nil {
			t.Fatalf("Decode of re-encoded events: %v", err)
		}
		if len(rec2.Events) != len(rec.Events) {
			t.Fatalf("re-decoded %d events, want %d", len(rec2.Events), len(rec.Events))
		}
		for i := range rec.Events {
			if rec2.Events[i].Type != rec.Events[i].Type {
				t.Errorf("event %d: type %s after re-encoding, want %s", i, rec2.Events[i].Type, rec.Events[i].Type)
			}
			if !rec2.Events[i].Time.Equal(rec.Events[i].Time) {
				t.Errorf("event %d: time %v after re-encoding, want %v", i, rec2.Events[i].Time, rec.Events[i].Time)
			}
		}
	})
}

// typicalRecord is what one decision usually appends: a step's completion,
// the next step's scheduling and a wait.
func typicalRecord() []events.Event {
	return []events.Event{
		{Type: events.TypeStepCompleted, Time: at(time.Second), StepCompleted: &events.StepCompleted{
			Path: "fetch", Gen: 1, Attempt: 1, Output: map[string]any{"status": int64(200), "body": "hello", "items": []any{int64(1), int64(2), int64(3)}}}},
		{Type: events.TypeStepScheduled, Time: at(time.Second), StepScheduled: &events.StepScheduled{
			Path: "store", Gen: 1, Task: "db.put", Input: map[string]any{"key": "wf-1", "value": "hello"},
			Retry:   events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: time.Minute},
			Timeout: 5 * time.Minute, IdempotencyKey: "wf-1/store", FirstAttempt: 1}},
		{Type: events.TypeWaitStarted, Time: at(time.Second), WaitStarted: &events.WaitStarted{
			Path: "approve", Signal: "approve", TimeoutAt: at(72 * time.Hour), TimerID: "wait_approve"}},
	}
}

func BenchmarkEncode(b *testing.B) {
	evs := typicalRecord()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Encode(evs...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := events.Encode(typicalRecord()...)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// A search attribute value that is not a string, number, bool or time
// does not decode: a record holding one is corrupt.
func TestDecodeRejectsSearchValue(t *testing.T) {
	for _, v := range []any{[]any{"a"}, map[string]any{"a": 1}, nil} {
		b, err := events.Encode(events.Event{Type: events.TypeSearchAttributesSet, Time: at(0),
			SearchAttributesSet: &events.SearchAttributesSet{Attributes: map[string]any{"x": v}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.Decode(b); !errors.Is(err, events.ErrCorrupt) {
			t.Errorf("search value %v: Decode error = %v, want ErrCorrupt", v, err)
		}
	}
}
