package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const longDef = `
name: long
steps:
  - id: init
    set: { marker: "'folded'" }
  - id: work
    foreach: input.items
    concurrency: 4
    do:
      - { id: e, task: echo, input: "${ item }" }
  - id: approve
    wait: { signal: go }
output: "${ {'marker': vars.marker, 'n': size(steps.work.output), 'go': steps.approve.output} }"
`

// A long workflow is loaded again from its latest snapshot and the records
// after it, not from its whole history; a snapshot that cannot be read is
// passed by and the history folded instead.
func TestLoadFromSnapshot(t *testing.T) {
	o := envOpts{snapshotEvery: 20}
	e := newEnv(t, o)
	e.putDef(longDef)
	items := `{"items": [` + strings.Repeat(`1,`, 39) + `1]}`
	for _, id := range []string{"snap-used", "snap-bad"} {
		e.start("long", id, items)
	}
	for _, id := range []string{"snap-used", "snap-bad"} {
		eventually(t, 30*time.Second, id+" to wait", func() bool {
			return stepStatus(e.get(id), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
		})
	}
	store, err := eventstore.Open(context.Background(), e.ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	// The history names a snapshot, and reading from it skips most records.
	full, err := store.Read(c, "snap-used", 0)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := store.ReadTail(c, "snap-used", 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail.Snapshot == nil || len(tail.Msgs) >= 20 {
		t.Fatalf("ReadTail: snapshot %d bytes at seq %d and %d records; want a snapshot and fewer than 20 of the %d records",
			len(tail.Snapshot), tail.SnapshotSeq, len(tail.Msgs), len(full))
	}

	// The API reads from the snapshot too, and counts the whole history.
	n := 0
	for _, m := range full {
		n += len(m.Record.Events)
	}
	if w := e.get("snap-used"); w.HistoryLength != uint64(n) || stepStatus(w, "approve") != weftv1.StepStatus_STEP_STATUS_WAITING {
		t.Fatalf("GetWorkflow: history length %d, approve %v; want %d, waiting", w.HistoryLength, stepStatus(w, "approve"), n)
	}

	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	// With Weft stopped, mark the snapshot of one workflow (a state no
	// history folds to, so its output shows where the state came from),
	// and make the other's unreadable.
	st, err := workflow.DecodeSnapshot(tail.Snapshot, tail.SnapshotSeq)
	if err != nil {
		t.Fatal(err)
	}
	st.Vars["marker"] = "from-snapshot"
	st.Steps["init"].Output = "marked"
	marked, err := workflow.EncodeSnapshot(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutSnapshot(c, "snap-used", tail.SnapshotSeq, marked); err != nil {
		t.Fatal(err)
	}
	bad, err := store.ReadTail(c, "snap-bad", 0)
	if err != nil || bad.Snapshot == nil {
		t.Fatalf("snap-bad has no snapshot: %v", err)
	}
	if err := store.PutSnapshot(c, "snap-bad", bad.SnapshotSeq, []byte("not a snapshot")); err != nil {
		t.Fatal(err)
	}

	e.node = e.startNode(o, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	// The API shows the marked state: it read the snapshot.
	for _, s := range e.get("snap-used").Steps {
		if s.Path == "init" && toJSON(s.Output) != `"marked"` {
			t.Errorf("GetWorkflow after the snapshot was marked: init output %s, want \"marked\"", toJSON(s.Output))
		}
	}
	for _, id := range []string{"snap-used", "snap-bad"} {
		if err := e.signal(id, "go", `"yes"`); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{
		"snap-used": `{"go":"yes","marker":"from-snapshot","n":40}`,
		"snap-bad":  `{"go":"yes","marker":"folded","n":40}`,
	} {
		w := e.waitClosed(id, 30*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != want {
			t.Errorf("%s: status %v output %s error %v; want output %s", id, w.Status, toJSON(w.Output), w.Error, want)
		}
	}
}
