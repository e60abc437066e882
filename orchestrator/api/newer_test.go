package api

import (
	"strconv"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// A run whose history holds a record a newer version wrote (a rolling
// upgrade under way) is not shown FAILED with corrupt_history, nor acted
// on, by an API that cannot read it: the answer is Unavailable, and an
// upgraded API answers.
func TestARunWithANewerRecordIsUnavailableNotFailed(t *testing.T) {
	ctx := t.Context()
	ns := natstest.Start(t)
	store, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	const wf = "newer"
	if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: wf, RequestId: "r1"})); err != nil {
		t.Fatal(err)
	}
	last, err := store.LastSeq(ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	data, err := msgpack.Marshal(map[string]any{"v": 2, "e": map[string]any{"a layout": "of a later version"}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
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
