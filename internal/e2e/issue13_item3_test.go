package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// victimStream creates a stream on victim.> holding n messages.
func victimStream(t *testing.T, e *env, n int) jetstream.Stream {
	t.Helper()
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(ctx(t), jetstream.StreamConfig{Name: "VICTIM", Subjects: []string{"victim.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx(t), fmt.Sprintf("victim.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// streamState returns how many messages a stream holds and its first sequence.
func streamState(t *testing.T, s jetstream.Stream) (msgs, first uint64) {
	t.Helper()
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs, info.State.FirstSeq
}

// Item 3: a literal nats.publish subject under JetStream's API, another
// run's history or an inbox is refused when the definition is put.
func TestIssue13Item3_LiteralReservedSubjectRefusedAtPut(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, subject := range []string{
		"$JS.API.STREAM.PURGE.WEFT_HISTORY",
		"$JS.API.STREAM.DELETE.WEFT_HISTORY",
		"$KV.weft-definitions.x.latest",
		"$O.bucket.x",
		"$SYS.REQ.SERVER.PING",
		"_INBOX.abc",
		"weft.h.other-run.ext",
		"weft.r.other-run",
	} {
		err := e.putDefErr(fmt.Sprintf(`
name: hostile
steps:
  - id: pub
    task: nats.publish
    input: { subject: %q, data: "x" }
`, subject))
		wantCodeAll(t, err, connect.CodeInvalidArgument, subject, "pub")
	}
	// An ordinary subject is fine.
	e.putDef(`
name: friendly
steps:
  - { id: pub, task: nats.publish, input: { subject: orders.created, data: "x" } }
`)
}

// Item 3: a computed reserved subject fails the step with invalid_input
// and the stream it names is untouched.
func TestIssue13Item3_ComputedReservedSubjectFailsStep(t *testing.T) {
	e := newEnv(t, envOpts{})
	victim := victimStream(t, e, 3)
	e.putDef(`
name: hostile
steps:
  - id: pub
    task: nats.publish
    input: { subject: "${ '$JS.API.STREAM.PURGE.' + input.stream }" }
`)
	for _, stream := range []string{"VICTIM", eventstore.HistoryStream} {
		id := e.start("hostile", "", fmt.Sprintf(`{"stream": %q}`, stream))
		w := e.waitClosed(id, 20*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "invalid_input" || w.Error.StepPath != "pub" {
			t.Fatalf("purge of %s: %v %v; want the step failed with invalid_input", stream, w.Status, w.Error)
		}
		if !strings.Contains(w.Error.Message, "$JS.API.STREAM.PURGE."+stream) {
			t.Fatalf("error %q does not name the subject", w.Error.Message)
		}
	}
	if msgs, first := streamState(t, victim); msgs != 3 || first != 1 {
		t.Fatalf("VICTIM has %d messages from %d; want the 3 it had", msgs, first)
	}
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	hist, err := js.Stream(ctx(t), eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if msgs, first := streamState(t, hist); msgs == 0 || first != 1 {
		t.Fatalf("history stream has %d messages from %d; want it untouched", msgs, first)
	}
}

// Item 3: a step cannot write into another run's history.
func TestIssue13Item3_OtherRunsHistoryRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: victim
steps:
  - { id: hold, wait: { signal: go } }
  - { id: done, task: echo, input: ok }
`)
	e.putDef(`
name: hostile
steps:
  - id: pub
    task: nats.publish
    input: { subject: "${ 'weft.h.' + input.other + '.ext' }", data: "garbage", jetstream: true }
`)
	victim := e.start("victim", "victim-run", "")
	eventually(t, 10*time.Second, "the victim to wait", func() bool {
		return strings.Contains(strings.Join(types(e.history(victim)), ","), "WaitStarted")
	})
	id := e.start("hostile", "", `{"other": "victim-run"}`)
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "invalid_input" {
		t.Fatalf("hostile run: %v %v; want invalid_input", w.Status, w.Error)
	}
	if err := e.signalCtx(ctx(t), victim, "go", ""); err != nil {
		t.Fatalf("signal the victim: %v", err)
	}
	if w := e.waitClosed(victim, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("victim: %v %v; want it completed", w.Status, w.Error)
	}
	e.healthy()
}

// Item 3: the operator's allow-list lets chosen reserved subjects through,
// at put time and at run time, and no others.
func TestIssue13Item3_AllowListPermits(t *testing.T) {
	e := newEnv(t, envOpts{publishAllow: []string{"$JS.API.STREAM.INFO.>"}})
	victimStream(t, e, 1)
	e.putDef(`
name: allowed
steps:
  - { id: pub, task: nats.publish, input: { subject: "$JS.API.STREAM.INFO.VICTIM" } }
  - { id: computed, task: nats.publish, input: { subject: "${ '$JS.API.STREAM.INFO.' + input.stream }" } }
`)
	id := e.start("allowed", "", `{"stream": "VICTIM"}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `{"subject":"$JS.API.STREAM.INFO.VICTIM"}` {
		t.Fatalf("allowed publish: %v %v %s", w.Status, w.Error, toJSON(w.Output))
	}
	err := e.putDefErr(`
name: still-refused
steps:
  - { id: pub, task: nats.publish, input: { subject: "$JS.API.STREAM.PURGE.VICTIM" } }
`)
	wantCodeAll(t, err, connect.CodeInvalidArgument, "$JS.API.STREAM.PURGE.VICTIM")
}
