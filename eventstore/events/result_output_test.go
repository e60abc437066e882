package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
)

// A result that is read but whose output is no value Weft holds (from an
// executor of another language: a map key that is not a string, a whole
// number beyond an int64) decodes as the step failed with invalid_output,
// saying why, rather than as corrupt: a corrupt result is given back for
// an orchestrator of a newer version, for ever, and its step never ends.
// A result of another version, or one whose envelope is unreadable, stays
// corrupt.
func TestAResultWhoseOutputIsNoValueFailsItsStep(t *testing.T) {
	at := time.Now().UTC()
	for _, c := range []struct {
		out  any
		want string
	}{
		{map[string]any{"m": map[any]any{int64(1): "a"}}, "output: m: map key 1 is not a string"},
		{map[any]any{true: 1}, "output: map key true is not a string"},
		{[]any{uint64(1 << 63)}, "output: [0]: whole number 9223372036854775808 is beyond ±2^53"},
	} {
		b, err := events.EncodeResult(events.Result{WorkflowID: "wf", Path: "a", Gen: 2, Attempt: 3, Outcome: events.OutcomeCompleted, Output: c.out, Time: at})
		if err != nil {
			t.Fatal(err)
		}
		r, err := events.DecodeResult(b)
		if err != nil || r.Outcome != events.OutcomeFailed || r.Error == nil || r.Error.Type != "invalid_output" || !strings.HasPrefix(r.Error.Message, c.want) ||
			r.Output != nil || r.WorkflowID != "wf" || r.Path != "a" || r.Gen != 2 || r.Attempt != 3 || !r.Time.Equal(at) {
			t.Errorf("%v: %+v %v; want the step failed with invalid_output saying %q", c.out, r, err, c.want)
		}
	}
	newer, _ := msgpack.Marshal(map[string]any{"v": 2, "wf": "wf", "p": "a", "g": 1, "a": 1, "o": 1, "out": map[any]any{int64(1): "a"}})
	broken, _ := msgpack.Marshal(map[string]any{"v": 1, "wf": 7, "p": "a", "g": 1, "a": 1, "o": 1, "out": map[any]any{int64(1): "a"}})
	for name, b := range map[string][]byte{"newer": newer, "broken": broken} {
		if _, err := events.DecodeResult(b); !errors.Is(err, events.ErrCorrupt) {
			t.Errorf("%s: %v; want corrupt", name, err)
		}
	}
}
