package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/runs"
)

// A direct start is answered once its listing entry is stored: an
// orchestrator that dies at once after it (its in-memory writes lost)
// leaves the run listed, and `weft doctor` finds it stuck when nothing
// will move it (its task queue deleted).
func TestADirectStartIsListedWhenItIsAnswered(t *testing.T) {
	nc := natstest.Start(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "one", oneTask, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	o, err := New(store, Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !store.StartDirect(ctx, "lost", "start/lost", startEvent("lost", "one")) {
		t.Fatal("the start was not taken directly")
	}
	// The crash: what the indexer holds in memory is gone.
	o.ix.mu.Lock()
	o.ix.pending, o.ix.later, o.ix.now = map[string]*indexWrite{}, nil, nil
	o.ix.mu.Unlock()
	_ = o.Stop(ctx)
	if _, err := store.GetSummary(ctx, "lost"); err != nil {
		t.Fatalf("a direct start answered is not listed: %v", err)
	}
	js, _ := jetstream.New(nc)
	if err := js.DeleteConsumer(ctx, eventstore.HistoryStream, eventstore.TaskConsumer("work")); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatal(err)
	}
	rep, err := doctor.Check(ctx, store, doctor.Options{Now: func() time.Time { return time.Now().Add(time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stuck != 1 || len(rep.Problems) != 1 || rep.Problems[0].ID != "lost" {
		t.Fatalf("doctor: %s, problems %+v; want the run 'lost' stuck", rep.Summary(), rep.Problems)
	}
}

// A run whose task type no executor serves (none deployed, or a typo in
// the task type) is stuck to `weft doctor` once no executor has asked for
// its command for the grace period.
func TestDoctorFindsATaskTypeNoExecutorServes(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	r.run()
	r.start("orphan", "one")
	eventually(t, 10*time.Second, "the run listed", func() bool {
		_, err := r.store.GetSummary(r.ctx, "orphan")
		return err == nil
	})
	rep, err := doctor.Check(r.ctx, r.store, doctor.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stuck != 1 || len(rep.Problems) != 1 || len(rep.Problems[0].Findings) != 1 {
		t.Fatalf("doctor: %s, problems %+v; want the run stuck", rep.Summary(), rep.Problems)
	}
	t.Log(rep.Problems[0].Findings[0].Reason)
	// An executor that was handed the command moves it (it gave it back
	// for an hour: a paused definition, say).
	p, err := r.store.TaskPuller(r.ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	pulled := make(chan struct{})
	go func() {
		defer close(pulled)
		_ = p.Fetch(r.ctx, 1, 3*time.Second, func(d *eventstore.Delivery) { _ = d.Nak(time.Hour) })
	}()
	<-pulled
	rep, err = doctor.Check(r.ctx, r.store, doctor.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil || !rep.OK() {
		t.Fatalf("doctor once an executor took the command: %v %s %+v", err, rep.Summary(), rep.Problems)
	}
}

// A start an orchestrator recorded directly but whose answer was lost (it
// died before it stored the run's listing entry) is listed by the API's
// own retry of the start, which finds it recorded.
func TestARecordedDirectStartIsListedByTheRetryThatFindsIt(t *testing.T) {
	r := newRig(t)
	r.putDef("one", oneTask)
	const wf, req = "w1", "req-1"
	at := time.Now().UTC()
	start := events.Event{Type: events.TypeWorkflowStarted, Time: at, WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: wf, Definition: "one", Revision: 1, RequestID: req}}
	cmd := events.Event{Type: events.TypeStepScheduled, Time: at, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "work", FirstAttempt: 1}}
	if _, err := r.store.AppendStart(r.ctx, wf, "start/"+wf+"/"+req, eventstore.AppendOpts{Owner: "gone"}, []events.Event{start, cmd}); err != nil {
		t.Fatal(err)
	}
	res, err := runs.Start(r.ctx, r.store, runs.NewDefinitions(r.store), runs.StartRequest{Definition: "one", WorkflowID: wf, RequestID: req})
	if err != nil || res.WorkflowID != wf || res.Started {
		t.Fatalf("the retried start: %+v, %v", res, err)
	}
	sum, err := r.store.GetSummary(r.ctx, wf)
	if err != nil || sum.Status != "RUNNING" || sum.Definition != "one" || !sum.Created.Equal(at) {
		t.Fatalf("the run's listing entry: %+v, %v", sum, err)
	}
}
