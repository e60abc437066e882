package events_test

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

var update = flag.Bool("update", false, "record the missing testdata/history_*.msgpack files (recordings are never rewritten)")

// historyV1 is the content of testdata/history_v1.msgpack: records as
// release 1 wrote them, one or more per event type, and two with several
// events. The values are in normalized form, as Decode gives them.
//
// This list describes a file that is already recorded: never edit it.
// A new event type or field gets a new recording (listed in recordings).
func historyV1() [][]events.Event {
	retry := events.RetryPolicy{MaxAttempts: 5, InitialInterval: time.Second, BackoffCoefficient: 1.5,
		MaxInterval: time.Minute, NonRetryable: []string{"bad_request"}}
	return [][]events.Event{
		{{Type: events.TypeWorkflowStarted, Time: at(0), WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: "wf-1", Definition: "onboarding", Revision: 2, RequestID: "req-1",
			Input: map[string]any{"email": "ann@example.com", "count": int64(3), "big": int64(1) << 40, "neg": int64(-7),
				"price": 2.5, "ok": true, "none": nil, "tags": []any{"a", "b"}, "user": map[string]any{"age": int64(40)}},
		}}},
		{{Type: events.TypeStepScheduled, Time: at(0), StepScheduled: &events.StepScheduled{
			Path: "welcome", Gen: 1, Task: "http.post", Input: map[string]any{"to": "ann@example.com"},
			Retry: retry, Timeout: 30 * time.Second, IdempotencyKey: "wf-1/welcome", FirstAttempt: 1,
		}}},
		{{Type: events.TypeStepAttemptFailed, Time: at(1500 * time.Millisecond), StepAttemptFailed: &events.StepAttemptFailed{
			Path: "welcome", Gen: 1, Attempt: 1, Error: events.Error{Message: "connection refused", Type: "io"}, RetryDelay: time.Second,
		}}},
		{
			{Type: events.TypeStepCompleted, Time: at(3*time.Second + 250*time.Microsecond), StepCompleted: &events.StepCompleted{
				Path: "welcome", Gen: 1, Attempt: 2, Output: map[string]any{"status": int64(202), "id": "m-1"},
			}},
			{Type: events.TypeWaitStarted, Time: at(3*time.Second + 250*time.Microsecond), WaitStarted: &events.WaitStarted{
				Path: "approval", Signal: "approve", TimeoutAt: at(72*time.Hour + 3*time.Second + 250*time.Microsecond), TimerID: "wait_approval",
			}},
		},
		{{Type: events.TypeSignalReceived, Time: at(time.Hour + 1), SignalReceived: &events.SignalReceived{
			Name: "approve", Payload: map[string]any{"by": "bob", "ok": true}, RequestID: "sig-1",
		}}},
		{
			{Type: events.TypeStepCompleted, Time: at(time.Hour + 1), StepCompleted: &events.StepCompleted{
				Path: "approval", Output: map[string]any{"by": "bob", "ok": true}, SignalSeq: 6,
			}},
			{Type: events.TypeStepScheduled, Time: at(time.Hour + 1), StepScheduled: &events.StepScheduled{
				Path: "charge", Gen: 1, Task: "billing.charge", Input: []any{int64(100), "EUR"},
				Retry:   events.RetryPolicy{MaxAttempts: 3, InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: time.Minute},
				Timeout: 5 * time.Minute, IdempotencyKey: "wf-1/charge", FirstAttempt: 1,
			}},
		},
		{{Type: events.TypeStepFailed, Time: at(time.Hour + time.Minute), StepFailed: &events.StepFailed{
			Path: "charge", Gen: 1, Attempt: 3, Error: events.Error{Message: "card declined", Type: "declined"},
		}}},
		{{Type: events.TypeWaitStarted, Time: at(2 * time.Hour), WaitStarted: &events.WaitStarted{Path: "review", Signal: "review.done"}}},
		{
			{Type: events.TypeTimerFired, Time: at(75 * time.Hour), TimerFired: &events.TimerFired{
				TimerID: "wait_approval", Path: "approval", Due: at(72*time.Hour + 3*time.Second + 250*time.Microsecond),
			}},
			{Type: events.TypeStepFailed, Time: at(75 * time.Hour), StepFailed: &events.StepFailed{
				Path: "approval", Error: events.Error{Message: `no "approve" signal before 2025-03-04T12:00:03Z`, Type: "timeout"},
			}},
			{Type: events.TypeWorkflowFailed, Time: at(75 * time.Hour), WorkflowFailed: &events.WorkflowFailed{
				Error: events.Error{Message: `step approval: no "approve" signal before 2025-03-04T12:00:03Z`, Type: "timeout"}, Path: "approval",
			}},
		},
		{{Type: events.TypeCancelRequested, Time: at(76 * time.Hour), CancelRequested: &events.CancelRequested{Reason: "no longer needed"}}},
		{{Type: events.TypeWorkflowCanceled, Time: at(76 * time.Hour), WorkflowCanceled: &events.WorkflowCanceled{Reason: "no longer needed"}}},
		{{Type: events.TypeWorkflowCompleted, Time: at(77 * time.Hour), WorkflowCompleted: &events.WorkflowCompleted{
			Output: map[string]any{"approved": map[string]any{"by": "bob", "ok": true}, "n": 1.25},
		}}},
		{{Type: events.TypeWorkflowFailed, Time: at(78 * time.Hour), WorkflowFailed: &events.WorkflowFailed{
			Error: events.Error{Message: "output: evaluate output: no such key: x", Type: "expression"},
		}}},
		{{Type: events.TypeWorkflowStarted, Time: at(79 * time.Hour), WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: "wf-1-charge-1", Definition: "billing", Revision: 4, Input: map[string]any{"amount": int64(250)},
			Parent: &events.ParentRef{WorkflowID: "wf-1", Path: "charge", Gen: 1},
		}}},
		{
			{Type: events.TypeTimerScheduled, Time: at(80 * time.Hour), TimerScheduled: &events.TimerScheduled{
				TimerID: "workflow_timeout_0", Due: at(104 * time.Hour),
			}},
			{Type: events.TypeStepCompleted, Time: at(80 * time.Hour), StepCompleted: &events.StepCompleted{
				Path: "init", Output: map[string]any{"total": int64(0), "names": []any{"a"}},
				Vars: map[string]any{"total": int64(0), "names": []any{"a"}},
			}},
			{Type: events.TypeStepStarted, Time: at(80 * time.Hour), StepStarted: &events.StepStarted{
				Path: "each", Kind: "foreach", Items: []any{map[string]any{"sku": "A", "qty": int64(2)}, "B"},
			}},
			{Type: events.TypeStepSkipped, Time: at(80 * time.Hour), StepSkipped: &events.StepSkipped{Path: "each[1].one"}},
		},
		{
			{Type: events.TypeStepStarted, Time: at(81 * time.Hour), StepStarted: &events.StepStarted{Path: "route", Kind: "switch", Case: -1}},
			{Type: events.TypeStepStarted, Time: at(81 * time.Hour), StepStarted: &events.StepStarted{Path: "poll", Kind: "repeat"}},
		},
		{{Type: events.TypeStepIterated, Time: at(82 * time.Hour), StepIterated: &events.StepIterated{Path: "poll", Iteration: 3}}},
		{{Type: events.TypeTimerScheduled, Time: at(83 * time.Hour), TimerScheduled: &events.TimerScheduled{
			Path: "each[0].nap", TimerID: "t1_each[0]_nap", Due: at(84*time.Hour + 500*time.Millisecond),
		}}},
		{{Type: events.TypeChildStarted, Time: at(85 * time.Hour), ChildStarted: &events.ChildStarted{
			Path: "charge", Gen: 2, WorkflowID: "wf-1-charge-2", Definition: "billing", Input: []any{int64(250), "EUR"},
		}}},
		{{Type: events.TypeWorkflowRetried, Time: at(86 * time.Hour), WorkflowRetried: &events.WorkflowRetried{Reason: "card replaced"}}},
	}
}

// historyV2 is the content of testdata/history_v2.msgpack: the records
// that brought StepCanceled, as written when it was added. Never edit it.
func historyV2() [][]events.Event {
	return [][]events.Event{
		{
			{Type: events.TypeStepFailed, Time: at(90 * time.Hour), StepFailed: &events.StepFailed{
				Path: "each[1].charge", Gen: 1, Attempt: 3, Error: events.Error{Message: "card declined", Type: "declined"},
			}},
			{Type: events.TypeStepCanceled, Time: at(90 * time.Hour), StepCanceled: &events.StepCanceled{Path: "each[0].charge", Cause: "each"}},
			{Type: events.TypeStepCanceled, Time: at(90 * time.Hour), StepCanceled: &events.StepCanceled{Path: "each[2].approve", Cause: "each"}},
			{Type: events.TypeStepFailed, Time: at(90 * time.Hour), StepFailed: &events.StepFailed{
				Path: "each", Error: events.Error{Message: "step each[1].charge: item 1: card declined", Type: "declined"},
			}},
		},
		{{Type: events.TypeStepCanceled, Time: at(91 * time.Hour), StepCanceled: &events.StepCanceled{Path: "nap"}}},
	}
}

// historyV3 is the content of testdata/history_v3.msgpack: the records
// that brought StepReopened, as written when it was added. Never edit it.
func historyV3() [][]events.Event {
	return [][]events.Event{
		{{Type: events.TypeWorkflowRetried, Time: at(92 * time.Hour), WorkflowRetried: &events.WorkflowRetried{Reason: "fixed"}}},
		{
			{Type: events.TypeStepReopened, Time: at(92 * time.Hour), StepReopened: &events.StepReopened{Path: "fan"}},
			{Type: events.TypeStepReopened, Time: at(92 * time.Hour), StepReopened: &events.StepReopened{Path: "poll", BudgetFrom: 3}},
		},
	}
}

// historyV4 is the content of testdata/history_v4.msgpack: the records
// that brought Event.Identity, as written when it was added. Never edit it.
func historyV4() [][]events.Event {
	return [][]events.Event{
		{{Type: events.TypeWorkflowStarted, Time: at(93 * time.Hour), Identity: "alice", WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: "wf-4", Definition: "onboarding", Revision: 1, RequestID: "req-4", Input: map[string]any{"n": int64(1)},
		}}},
		{{Type: events.TypeSignalReceived, Time: at(94 * time.Hour), Identity: "cert:CN=bob,O=Example", SignalReceived: &events.SignalReceived{
			Name: "approve", Payload: true, RequestID: "sig-4",
		}}},
		{{Type: events.TypeCancelRequested, Time: at(95 * time.Hour), Identity: "parent:wf-3", CancelRequested: &events.CancelRequested{Reason: "parent done"}}},
		{
			{Type: events.TypeWorkflowRetried, Time: at(96 * time.Hour), Identity: "anonymous", WorkflowRetried: &events.WorkflowRetried{}},
			{Type: events.TypeStepReopened, Time: at(96 * time.Hour), StepReopened: &events.StepReopened{Path: "fan"}},
		},
		{{Type: events.TypeWorkflowStarted, Time: at(97 * time.Hour), Identity: "webhook:signup", WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: "wf-5", Definition: "signup", Revision: 2, RequestID: "trigger/abc/def",
		}}},
	}
}

// historyV5 is the content of testdata/history_v5.msgpack: the records
// that brought SearchAttributesSet, as written when it was added. Never
// edit it.
func historyV5() [][]events.Event {
	return [][]events.Event{
		{
			{Type: events.TypeWorkflowStarted, Time: at(98 * time.Hour), Identity: "alice", WorkflowStarted: &events.WorkflowStarted{
				WorkflowID: "wf-6", Definition: "orders", Revision: 3, Input: map[string]any{"customer": "ann"},
			}},
			{Type: events.TypeSearchAttributesSet, Time: at(98 * time.Hour), SearchAttributesSet: &events.SearchAttributesSet{
				Attributes: map[string]any{"customer": "ann", "priority": int64(2), "vip": false, "score": 0.25,
					"due": time.Date(2025, 3, 10, 9, 30, 0, 0, time.UTC)},
			}},
		},
		{{Type: events.TypeSearchAttributesSet, Time: at(99 * time.Hour), SearchAttributesSet: &events.SearchAttributesSet{
			Path: "lines[1].charge", Attributes: map[string]any{"vip": true, "charged": int64(-3)},
		}}},
	}
}

// historyV6 is the content of testdata/history_v6.msgpack: the records
// that brought WorkflowExpired, as written when it was added. Never edit
// it.
func historyV6() [][]events.Event {
	return [][]events.Event{
		{
			{Type: events.TypeStepFailed, Time: at(100 * time.Hour), StepFailed: &events.StepFailed{
				Path: "charge", Gen: 1, Attempt: 2, Error: events.Error{Message: "card declined", Type: "declined"},
			}},
			{Type: events.TypeWorkflowFailed, Time: at(100 * time.Hour), WorkflowFailed: &events.WorkflowFailed{
				Path: "charge", Error: events.Error{Message: "step charge: card declined", Type: "declined"},
			}},
		},
		{{Type: events.TypeWorkflowExpired, Time: at(130 * time.Hour), WorkflowExpired: &events.WorkflowExpired{Retention: 30 * time.Hour}}},
	}
}

// recordings are the recorded histories under testdata: each file with the
// records it holds. Only ever add to this list.
var recordings = []struct {
	file    string
	records func() [][]events.Event
}{
	{"history_v1.msgpack", historyV1},
	{"history_v2.msgpack", historyV2},
	{"history_v3.msgpack", historyV3},
	{"history_v4.msgpack", historyV4},
	{"history_v5.msgpack", historyV5},
	{"history_v6.msgpack", historyV6},
}

// writeFrames writes records as a recording: for each, its length as 4
// bytes big-endian, then its bytes.
func writeFrames(records [][]byte) []byte {
	var out []byte
	for _, r := range records {
		out = binary.BigEndian.AppendUint32(out, uint32(len(r)))
		out = append(out, r...)
	}
	return out
}

// readFrames splits a recording into records.
func readFrames(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%d stray bytes at the end", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("frame of %d bytes with %d left", n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// record writes path from records unless it exists: a recording stands
// for histories already stored, so it is never rewritten.
func record(t *testing.T, path string, records [][]events.Event) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Logf("%s exists and is kept: recorded histories are never rewritten", path)
		return
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var frames [][]byte
	for i, evs := range records {
		b, err := events.Encode(evs...)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		frames = append(frames, b)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, writeFrames(frames), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", path)
}

// TestRecordedHistories decodes the histories recorded by earlier
// releases: events are forever, so they must decode to the same events on
// every release.
func TestRecordedHistories(t *testing.T) {
	seen := map[events.Type]bool{}
	for _, rc := range recordings {
		t.Run(rc.file, func(t *testing.T) {
			path := filepath.Join("testdata", rc.file)
			want := rc.records()
			if *update {
				record(t, path, want)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestRecordedHistories -update to record it)", err)
			}
			frames, err := readFrames(data)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if len(frames) != len(want) {
				t.Fatalf("%s holds %d records, want %d", path, len(frames), len(want))
			}
			multi := 0
			for i, f := range frames {
				rec, err := events.Decode(f)
				if err != nil {
					t.Errorf("record %d: %v", i, err)
					continue
				}
				if rec.V != 1 {
					t.Errorf("record %d: V = %d, want 1", i, rec.V)
				}
				if len(rec.Events) > 1 {
					multi++
				}
				if len(rec.Events) != len(want[i]) {
					t.Errorf("record %d: %d events, want %d", i, len(rec.Events), len(want[i]))
					continue
				}
				for j, e := range rec.Events {
					seen[e.Type] = true
					if got := utcTimes(e); !reflect.DeepEqual(got, want[i][j]) {
						t.Errorf("record %d event %d:\n got %s\nwant %s", i, j, show(got), show(want[i][j]))
					}
				}
			}
			if multi == 0 {
				t.Errorf("%s holds no record of several events", path)
			}
		})
	}
	for _, typ := range allTypes {
		if !seen[typ] {
			t.Errorf("no recorded history holds a %s event: add a recording that does", typ)
		}
	}
}

func TestFrames(t *testing.T) {
	recs := [][]byte{[]byte("ab"), {}, []byte("cde")}
	b := writeFrames(recs)
	got, err := readFrames(b)
	if err != nil || len(got) != 3 || string(got[0]) != "ab" || len(got[1]) != 0 || string(got[2]) != "cde" {
		t.Errorf("readFrames(writeFrames) = %q, %v", got, err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(b[:len(b):len(b)], 0, 0)} {
		if _, err := readFrames(bad); err == nil {
			t.Errorf("readFrames(%x) succeeded, want an error", bad)
		}
	}
}
