package doctor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// listCanceled stores a canceled run of definition d listed in the index,
// created at t0, and returns its last sequence.
func listCanceled(t *testing.T, ctx context.Context, store *eventstore.Store, id string, t0 time.Time) uint64 {
	t.Helper()
	seq, err := store.Append(ctx, id, 0, events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: id, Definition: "d", Revision: 1}},
		events.Event{Type: events.TypeWorkflowCanceled, Time: t0, WorkflowCanceled: &events.WorkflowCanceled{Reason: "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := store.PutSummaries(ctx, []eventstore.Summary{{ID: id, Definition: "d", Revision: 1, Status: "CANCELED", Created: t0, Seq: seq}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	return seq
}

// Runs that retention deletes while the doctor checks, or is deleting
// (their history gone, their entry not yet), are not reported; a listed
// run with no history and no deletion under way is.
func TestDoctorLeavesRunsBeingDeletedAlone(t *testing.T) {
	nc := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "d", "name: d\nsteps:\n  - { id: a, task: work }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	const n = 150
	for i := range n {
		listCanceled(t, ctx, store, fmt.Sprintf("r%03d", i), t0)
	}
	// Their retention ran out: each deletion has fired, as an
	// orchestrator's begins, and stays under way until it is done (no
	// orchestrator runs here to ack it).
	for i := range n {
		if err := store.ScheduleDeletion(ctx, fmt.Sprintf("r%03d", i), t0); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if under, err := store.DeletionUnderWay(ctx, fmt.Sprintf("r%03d", n-1)); err != nil || under {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deletions never fired")
		}
	}
	// Deleted while the doctor checks.
	var deleted atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			if err := store.DeleteRun(ctx, fmt.Sprintf("r%03d", i), 0); err == nil {
				deleted.Add(1)
			}
		}
	}()
	rep, err := doctor.Check(ctx, store, doctor.Options{Concurrency: 1})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("runs deleted during the check (%d) reported: %s, e.g. %s: %+v", deleted.Load(), rep.Summary(), rep.Problems[0].ID, rep.Problems[0].Findings)
	}

	// Being deleted: the deletion has fired and its history is purged, its
	// entry not yet; an orchestrator holds the deletion.
	f, err := store.Feed(ctx, eventstore.SourceRetention, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	go func() {
		for {
			if _, err := f.Next(); err != nil {
				return
			}
		}
	}()
	js, _ := jetstream.New(nc)
	hist, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"going", "lost"} {
		listCanceled(t, ctx, store, id, t0)
		if err := hist.Purge(ctx, jetstream.WithPurgeSubject("weft.h."+id+".>")); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.ScheduleDeletion(ctx, "going", t0); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if under, err := store.DeletionUnderWay(ctx, "going"); err != nil || under {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deletion never fired")
		}
	}
	rep, err = doctor.Check(ctx, store, doctor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifted != 1 || len(rep.Problems) != 1 || rep.Problems[0].ID != "lost" {
		t.Fatalf("doctor: %s, problems %+v; want only 'lost' (listed, no history, no deletion under way) drifted", rep.Summary(), rep.Problems)
	}
}
