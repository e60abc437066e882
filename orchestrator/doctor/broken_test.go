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

// breakAndFail appends to wf's history, after its record at seq, a record
// that does not decode (as the API appends), then the failure an
// orchestrator records on the history read afresh, and returns the
// failure's sequence.
func breakAndFail(t *testing.T, r *rig, wf string, seq uint64) uint64 {
	t.Helper()
	msg := nats.NewMsg("weft.h." + wf + ".ext")
	msg.Data = []byte("not a record")
	msg.Header.Set("Weft-Prev", strconv.FormatUint(seq, 10))
	ack, err := r.js.PublishMsg(r.ctx, msg, jetstream.WithExpectLastSequenceForSubject(seq, "weft.h."+wf+".>"))
	if err != nil {
		t.Fatal(err)
	}
	seq, err = r.store.Append(r.ctx, wf, ack.Sequence, events.Event{Type: events.TypeWorkflowFailed, Time: r.t0,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "corrupt_history", Message: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// settleInputs acks every outside input waiting: none is left that would
// move a run.
func settleInputs(t *testing.T, r *rig) {
	t.Helper()
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
}

// A run whose history holds a record that cannot be read is failed by
// an orchestrator (WorkflowFailed appended after it), and its follow-ups
// are run on the history folded as far as it folds (runs.FoldMessages:
// FAILED, closed at its last folded event), so a definition with a
// retention has its deletion scheduled (orchestrator/retention.go
// scheduleDeletion). That schedule skipped, the run is kept for good, and
// the doctor must say so as it does for any closed run. Its load sets the
// status to FAILED but leaves st.Closed zero, so deletion() returns "".
func TestABrokenFailedRunsRetentionNotScheduledIsReported(t *testing.T) {
	r := newRig(t, map[string]string{"kept": "name: kept\nretention: 1h\nsteps:\n  - { id: g, wait: { signal: go } }\n"})
	r.t0 = time.Now().UTC().Add(-3 * time.Hour)
	seq := breakAndFail(t, r, "bad", r.decided(r.start("bad", "kept", nil)))
	r.index("bad", "kept", "FAILED", seq)
	settleInputs(t, r)
	rep := r.check()
	t.Logf("%s: %s", rep.Summary(), stuckIDs(rep))
	if !strings.Contains(stuckIDs(rep), "deletion is not scheduled") {
		t.Errorf("a broken, failed run of a definition with a retention of 1h, closed 3h ago, with no deletion scheduled, is not reported (%s)", rep.Summary())
	}
}

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
	seq := breakAndFail(t, r, "p", r.decided(r.start("p", "parent", nil))) // ChildStarted recorded
	r.index("p", "parent", "FAILED", seq)
	// The child afterBroken's reconcile started, since closed (it told the
	// parent; the parent's orchestrator took the result and acked it).
	kid := workflow.ChildID("p", "kid", 1)
	kseq := r.decided(r.start(kid, "gate", &events.ParentRef{WorkflowID: "p", Path: "kid", Gen: 1, Created: r.t0}))
	kseq, err := r.store.Append(r.ctx, kid, kseq, events.Event{Type: events.TypeWorkflowCanceled, Time: r.t0,
		WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	if err != nil {
		t.Fatal(err)
	}
	r.index(kid, "gate", "CANCELED", kseq)
	settleInputs(t, r)
	rep := r.check()
	t.Logf("%s: %s", rep.Summary(), stuckIDs(rep))
	if strings.Contains(stuckIDs(rep), "the parent was not told") {
		t.Errorf("a broken, failed parent whose child closed and told it is reported stuck (%s):\n%s", rep.Summary(), stuckIDs(rep))
	}
}
