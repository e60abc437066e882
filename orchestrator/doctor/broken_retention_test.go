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
)

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
	seq := r.decided(r.start("bad", "kept", nil))
	// A record that does not decode, appended as the API appends.
	msg := nats.NewMsg("weft.h.bad.ext")
	msg.Data = []byte("not a record")
	msg.Header.Set("Weft-Prev", strconv.FormatUint(seq, 10))
	ack, err := r.js.PublishMsg(r.ctx, msg, jetstream.WithExpectLastSequenceForSubject(seq, "weft.h.bad.>"))
	if err != nil {
		t.Fatal(err)
	}
	// The orchestrator's failWorkflow, on the history read afresh.
	seq, err = r.store.Append(r.ctx, "bad", ack.Sequence, events.Event{Type: events.TypeWorkflowFailed, Time: r.t0,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "corrupt_history", Message: "x"}}})
	if err != nil {
		t.Fatal(err)
	}
	r.index("bad", "kept", "FAILED", seq)
	// The external consumer has settled everything: no input waits.
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
	if !strings.Contains(stuckIDs(rep), "deletion is not scheduled") {
		t.Errorf("a broken, failed run of a definition with a retention of 1h, closed 3h ago, with no deletion scheduled, is not reported (%s)", rep.Summary())
	}
}
