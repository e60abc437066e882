package workflow_test

import (
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/orchestrator/workflow"
)

func TestDecodeSnapshotRejects(t *testing.T) {
	st := fold(t, hist(started(0, map[string]any{"n": 1}), task(1, "a", "echo", nil), completed(2, "a", 1, "x")))
	good, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := msgpack.Marshal(map[string]any{"v": workflow.SnapshotVersion + 1, "s": map[string]any{"Events": 3}})
	unstarted, _ := msgpack.Marshal(map[string]any{"v": workflow.SnapshotVersion, "s": map[string]any{"Events": 0}})
	for name, b := range map[string][]byte{
		"empty":         nil,
		"truncated":     good[:len(good)/2],
		"not msgpack":   []byte("{\"v\":1}"),
		"other version": other,
		"not started":   unstarted,
	} {
		if _, err := workflow.DecodeSnapshot(b); !errors.Is(err, workflow.ErrBadSnapshot) {
			t.Errorf("%s: DecodeSnapshot error = %v, want ErrBadSnapshot", name, err)
		}
	}
	if _, err := workflow.EncodeSnapshot(&workflow.State{}); err == nil {
		t.Error("EncodeSnapshot of an unstarted state: no error")
	}
}
