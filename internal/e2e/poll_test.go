package e2e

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// GetWorkflow answers polls of a running workflow from the state the API
// keeps current, and still holds everything stored before the call: here
// a signal recorded through one API process is in the very next
// GetWorkflow answered by another, again and again.
func TestGetWorkflowSeesWhatWasStoredBeforeIt(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	other := e.startNode(envOpts{}, false, true)
	reader, _ := newClients(other.APIURL)
	id := e.start("parked", "poll-fresh", `{}`)
	get := func() *weftv1.Workflow {
		t.Helper()
		resp, err := reader.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg.Workflow
	}
	eventually(t, 20*time.Second, "the wait to start", func() bool {
		return stepStatus(get(), "w") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	for i := range 50 {
		before := get().HistoryLength
		// A signal no step waits for yet is recorded and kept: the run
		// stays running, one event longer.
		if err := e.signal(id, "note", `1`); err != nil {
			t.Fatal(err)
		}
		w := get()
		if w.HistoryLength <= before {
			t.Fatalf("round %d: GetWorkflow after the signal shows %d events, as many as before it (%d)", i, w.HistoryLength, before)
		}
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
			t.Fatalf("round %d: the run is %s", i, w.Status)
		}
	}
	if err := e.signal(id, "go", `2`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the run to close", func() bool {
		return get().Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	})
}

// A run started through an API process whose follower runs is folded
// from its first record as the follower passes it on: polling it and
// awaiting its result read nothing from the history stream, and what they
// answer is what a read of the stream answers (another API process, which
// did not start it, reads it).
func TestAStartedRunIsFollowedFromItsFirstRecord(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	e.putDef(`
name: echoed
steps:
  - { id: a, task: echo, input: "${ input }" }
  - { id: b, task: echo, input: "${ steps.a.output }" }
output: "${ steps.b.output }"
`)
	other := e.startNode(envOpts{}, false, true)
	reader, _ := newClients(other.APIURL)
	// An await held open keeps the API's follower running.
	held := e.start("parked", "followed-holder", `{}`)
	go func() { _, _ = await(context.Background(), e.wf, held, 30*time.Second) }()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(e.node) == 1 })

	nc, err := nats.Connect(e.ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var reads atomic.Int64
	for _, subj := range []string{"$JS.API.STREAM.MSG.GET." + eventstore.HistoryStream, "$JS.API.DIRECT.GET." + eventstore.HistoryStream, "$JS.API.DIRECT.GET." + eventstore.HistoryStream + ".>"} {
		if _, err := nc.Subscribe(subj, func(*nats.Msg) { reads.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// The follower may be made after the holder's await registered:
	// a few runs in, starts are followed from their first record.
	var parked string
	eventually(t, 20*time.Second, "a run started, polled and awaited with no read of the stream", func() bool {
		before := reads.Load()
		parked = e.start("parked", "", `{}`)
		w := e.get(parked)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
			t.Fatalf("%s is %s", parked, w.Status)
		}
		id := e.start("echoed", "", `{"n": 7}`)
		done, err := await(ctx(t), e.wf, id, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || done.Output.GetStructValue().GetFields()["n"].GetNumberValue() != 7 {
			t.Fatalf("await of %s: %s with output %v", id, done.Status, done.Output.AsInterface())
		}
		return reads.Load() == before
	})

	// The state followed is the state read, event for event, until the close.
	same := func(what string) {
		t.Helper()
		w := e.get(parked)
		resp, err := reader.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: parked}))
		if err != nil {
			t.Fatal(err)
		}
		r := resp.Msg.Workflow
		if w.HistoryLength != r.HistoryLength || w.Status != r.Status || len(w.Steps) != len(r.Steps) {
			t.Fatalf("%s: followed %s with %d events and %d steps, read %s with %d and %d", what,
				w.Status, w.HistoryLength, len(w.Steps), r.Status, r.HistoryLength, len(r.Steps))
		}
	}
	eventually(t, 20*time.Second, "the wait to start", func() bool {
		return stepStatus(e.get(parked), "w") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	same("waiting")
	if err := e.signal(parked, "note", `1`); err != nil {
		t.Fatal(err)
	}
	same("after a signal")
	if err := e.signal(parked, "go", `{"ok": 2}`); err != nil {
		t.Fatal(err)
	}
	w, err := await(ctx(t), e.wf, parked, 20*time.Second)
	if err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("await of %s: %v %v", parked, w, err)
	}
}

// A poll of a run that is not running reads the run's last record, which
// holds anything stored before the poll: it does not also ask for the
// history stream's last sequence (the read barrier). It still sees what
// another API process stored just before it: here the retry of a failed
// run, through the other process, is in the very next poll.
func TestAClosedRunIsPolledWithoutTheBarrier(t *testing.T) {
	once, fail, gate := failsThenWaits()
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{"once": once}})
	e.putDef(parkedDef)
	e.putDef(`
name: polled-closed
steps:
  - { id: s, task: once }
output: "${ steps.s.output }"
`)
	defer close(gate)
	other := e.startNode(envOpts{}, false, true)
	retrier, _ := newClients(other.APIURL)
	// An await held open keeps the API's follower running.
	held := e.start("parked", "barrier-holder", `{}`)
	go func() { _, _ = await(context.Background(), e.wf, held, 30*time.Second) }()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(e.node) == 1 })

	id := e.start("polled-closed", "polled-closed", `{}`)
	if w, err := await(ctx(t), e.wf, id, 20*time.Second); err != nil || w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("await: %v %v; want FAILED", w, err)
	}
	nc, err := nats.Connect(e.ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var barriers atomic.Int64
	if _, err := nc.Subscribe("$JS.API.STREAM.INFO."+eventstore.HistoryStream, func(*nats.Msg) { barriers.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if w := e.get(id); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
			t.Fatalf("poll of the failed run: %s", w.Status)
		}
	}
	if n := barriers.Load(); n != 0 {
		t.Fatalf("20 polls of a failed run asked for the history stream's last sequence %d times; want 0", n)
	}
	fail.Store(false)
	if _, err := retrier.RetryWorkflow(ctx(t), connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id})); err != nil {
		t.Fatal(err)
	}
	if w := e.get(id); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
		t.Fatalf("the poll right after a retry through another API process: %s; want RUNNING", w.Status)
	}
}
