package api

import (
	"strconv"
	"testing"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A run whose history holds a record a newer version wrote (a rolling
// upgrade under way) is not shown FAILED with corrupt_history, nor acted
// on, by an API that cannot read it: the answer is Unavailable, and an
// upgraded API answers.
func TestARunWithANewerRecordIsUnavailableNotFailed(t *testing.T) {
	const wf = "newer"
	ctx, store, s := startGate(t, wf, "go")
	last, err := store.LastSeq(ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	data, err := msgpack.Marshal(map[string]any{"v": 2, "e": map[string]any{"a layout": "of a later version"}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("weft.h." + wf + ".ext")
	msg.Data = data
	msg.Header.Set("Weft-Prev", strconv.FormatUint(last, 10))
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequenceForSubject(last, "weft.h."+wf+".>")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: wf}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("GetWorkflow of a run with a newer record: %v, %v; want Unavailable", got, err)
	}
	_, err = s.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf, RequestId: "c1"}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("CancelWorkflow of a run with a newer record: %v; want Unavailable", err)
	}
}
