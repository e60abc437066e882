package doctor_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A parent whose history stops folding (a record that does not decode)
// after it recorded ChildStarted is failed by an orchestrator
// (failWorkflow), and its follow-ups run on the history folded as far as
// it folds (afterBroken: FAILED, the child step RUNNING), so the child is
// started. When the child closes it tells the parent, but that history
// cannot take the result: every input to it ends in failBroken, which
// acks it (afterBroken) and records nothing. The step stays RUNNING in
// the fold for good. The doctor must not report the parent stuck with
// "the parent was not told": it was, and nothing can record it.
func TestABrokenFailedParentsClosedChildIsNotReportedUntold(t *testing.T) {
	r := newRig(t, map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	})
	seq := r.decided(r.start("p", "parent", nil)) // ChildStarted recorded
	msg := nats.NewMsg("weft.h.p.ext")
	msg.Data = []byte("not a record")
	msg.Header.Set("Weft-Prev", strconv.FormatUint(seq, 10))
	ack, err := r.js.PublishMsg(r.ctx, msg, jetstream.WithExpectLastSequenceForSubject(seq, "weft.h.p.>"))
	if err != nil {
		t.Fatal(err)
	}
	seq, err = r.store.Append(r.ctx, "p", ack.Sequence, events.Event{Type: events.TypeWorkflowFailed, Time: r.t0,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "corrupt_history", Message: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("p", "parent", "FAILED", seq)
	// The child afterBroken's reconcile started, since closed (it told the
	// parent; the parent's orchestrator took the result and acked it).
	kid := workflow.ChildID("p", "kid", 1)
	kseq := r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: 1, Created: r.t0}))
	if kseq, err = r.store.Append(r.ctx, kid, kseq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}}); err != nil {
		t.Fatal(err)
	}
	r.index(kid, "gate", "CANCELED", kseq)
	// Every outside input settled.
	c, err := r.js.Consumer(r.ctx, eventstore.HistoryStream, eventstore.ExternalConsumer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if err := m.DoubleAck(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	rep := r.check()
	t.Logf("%s: %s", rep.Summary(), stuckIDs(rep))
	if strings.Contains(stuckIDs(rep), "the parent was not told") {
		t.Errorf("a broken, failed parent whose child closed and told it is reported stuck (%s):\n%s", rep.Summary(), stuckIDs(rep))
	}
}
