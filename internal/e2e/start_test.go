package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// directWait is how long the tests' parts wait for a direct start or result
// to be recorded: long, so that a start meant to go direct does even on a
// slow machine.
const directWait = 10 * time.Second

// firstRecord returns the subject and event types of wf's first record.
func firstRecord(t *testing.T, store *eventstore.Store, wf string) (string, []events.Type) {
	t.Helper()
	m, err := store.First(context.Background(), wf)
	if err != nil || m.Err != nil {
		t.Fatalf("first record of %s: %v %v", wf, err, m.Err)
	}
	var ts []events.Type
	for _, ev := range m.Record.Events {
		ts = append(ts, ev.Type)
	}
	return m.Subject, ts
}

// listed returns wf's status in the listing index, or "" when not listed.
func (e *env) listed(wf string) weftv1.WorkflowStatus {
	e.t.Helper()
	resp, err := e.wf.ListWorkflows(ctx(e.t), connect.NewRequest(&weftv1.ListWorkflowsRequest{PageSize: 1000}))
	if err != nil {
		e.t.Fatalf("ListWorkflows: %v", err)
	}
	for _, w := range resp.Msg.Workflows {
		if w.Id == wf {
			return w.Status
		}
	}
	return weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED
}

// A start whose first decision is one step command is recorded by an
// orchestrator as one record, the start with the command; a start that
// decides more (parallel branches) or no command (a wait) is appended by
// the API and decided from the history stream. All of them run to the end
// and are listed.
func TestDirectStart(t *testing.T) {
	e := newEnv(t, envOpts{replyWait: directWait})
	e.putDef(`
name: seq
steps:
  - { id: one, task: echo, input: "${ input }" }
  - { id: two, task: echo, input: "${ steps.one.output }" }
`)
	e.putDef(`
name: fan
steps:
  - id: both
    parallel:
      branches:
        left:  [ { id: l, task: echo, input: 1 } ]
        right: [ { id: r, task: echo, input: 2 } ]
`)
	e.putDef(approvalDef("1h"))
	store := e.node.Store

	id := e.start("seq", "direct-seq", `{"n": 1}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `{"n":1}` {
		t.Fatalf("seq: %v", w)
	}
	subj, ts := firstRecord(t, store, id)
	if !strings.HasSuffix(subj, ".task.echo") || len(ts) < 2 || ts[0] != events.TypeWorkflowStarted || ts[len(ts)-1] != events.TypeStepScheduled {
		t.Fatalf("seq's first record on %s holds %v; want the start and its first command", subj, ts)
	}

	id = e.start("fan", "direct-fan", "")
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("fan: %v", w)
	}
	if subj, ts := firstRecord(t, store, id); !strings.HasSuffix(subj, ".ext") || len(ts) != 1 {
		t.Fatalf("fan's first record on %s holds %v; want the start alone, appended by the API", subj, ts)
	}

	// approval's first step is a command, so it starts directly; it then
	// waits, and the running workflow is listed.
	id = e.start("approval", "direct-wait", `{"who": "x"}`)
	if subj, _ := firstRecord(t, store, id); !strings.HasSuffix(subj, ".task.echo") {
		t.Fatalf("approval's first record on %s", subj)
	}
	eventually(t, 20*time.Second, "the waiting workflow to be listed as running", func() bool {
		return e.listed(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
	if err := e.signal(id, "approve", `{"by": "y"}`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("approval: %v", w)
	}
	for _, wf := range []string{"direct-seq", "direct-fan", "direct-wait"} {
		eventually(t, 20*time.Second, wf+" to be listed as completed", func() bool {
			return e.listed(wf) == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
		})
	}

	// The same start again finds the run; another request's start of the
	// same id is refused.
	resp, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "seq", WorkflowId: "direct-req", RequestId: "r1"}))
	if err != nil || !resp.Msg.Started {
		t.Fatalf("first start: %v %v", resp, err)
	}
	resp, err = e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "seq", WorkflowId: "direct-req", RequestId: "r1"}))
	if err != nil || resp.Msg.Started {
		t.Fatalf("repeated start: %v %v", resp, err)
	}
	_, err = e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "seq", WorkflowId: "direct-req", RequestId: "r2"}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("another request's start: %v", err)
	}
}

// With no orchestrator running, a start is appended by the API at once,
// and the workflow runs once an orchestrator comes.
func TestStartWithoutOrchestrator(t *testing.T) {
	e := &env{t: t, ns: natstest.Start(t)}
	e.node = e.startNode(envOpts{noExecutor: true, replyWait: directWait}, false, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	e.putDef(`
name: alone
steps:
  - { id: one, task: echo, input: "${ input }" }
`)
	began := time.Now()
	id := e.start("alone", "no-orch", `"x"`)
	if d := time.Since(began); d >= directWait {
		t.Fatalf("a start with no orchestrator took %s; it should not wait for one", d)
	}
	if subj, _ := firstRecord(t, e.node.Store, id); !strings.HasSuffix(subj, ".ext") {
		t.Fatalf("first record on %s; want the API's append", subj)
	}
	e.startNode(envOpts{}, true, false)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"x"` {
		t.Fatalf("no-orch: %v", w)
	}
}

// A direct start's orchestrator that dies before writing the workflow's
// listing entry leaves no input to redeliver; it may even have recorded
// the first step's result itself. The next orchestrator to load the
// workflow from history, for any input, writes the entry unless it exists.
func TestDirectStartListedAfterOrchestratorLoss(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	// a and c are run by no one here: only b's result reaches an orchestrator.
	e.putDef(`
name: lost
steps:
  - { id: a, task: manual }
  - { id: b, task: echo, input: "${ steps.a.output }" }
  - { id: c, task: manual }
`)
	store := e.node.Store
	defs := runs.NewDefinitions(store)
	def, rec, err := defs.Load(ctx(t), "lost", 0)
	if err != nil {
		t.Fatal(err)
	}
	// What an orchestrator records for a direct start and for the first
	// step's result, before it "dies": no listing entry is written.
	wf := "lost-starter"
	start := events.Event{Type: events.TypeWorkflowStarted, Time: time.Now().UTC(), WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: wf, Definition: rec.Name, Revision: rec.Revision, Input: map[string]any{}, RequestID: "r"}}
	st := &workflow.State{}
	if err := st.Apply(start); err != nil {
		t.Fatal(err)
	}
	decided, err := workflow.Advance(st, def)
	if err != nil || len(decided) == 0 || decided[len(decided)-1].StepScheduled == nil {
		t.Fatalf("decided %v, %v", decided, err)
	}
	for _, task := range []string{"manual", "echo"} {
		if err := store.EnsureTaskConsumer(ctx(t), task); err != nil {
			t.Fatal(err)
		}
	}
	seq, err := store.AppendStart(ctx(t), wf, "start/"+wf+"/r", eventstore.AppendOpts{}, append([]events.Event{start}, decided...))
	if err != nil {
		t.Fatal(err)
	}
	done, ok := workflow.AcceptResult(st, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1,
		Outcome: events.OutcomeCompleted, Output: "x", Time: time.Now().UTC(), Cmd: seq})
	if !ok {
		t.Fatal("a's result not accepted")
	}
	if err := st.Apply(done); err != nil {
		t.Fatal(err)
	}
	if decided, err = workflow.Advance(st, def); err != nil || len(decided) == 0 || decided[len(decided)-1].StepScheduled == nil {
		t.Fatalf("decided %v, %v", decided, err)
	}
	if _, err := store.Append(ctx(t), wf, seq, append([]events.Event{done}, decided...)...); err != nil {
		t.Fatal(err)
	}
	if s := e.listed(wf); s != weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED {
		t.Fatalf("listed as %v before any orchestrator saw it", s)
	}
	// An executor runs b; its result reaches the running orchestrator,
	// which has never seen the workflow. The workflow goes on to c, which
	// no one runs: it neither parks nor closes.
	e.startNode(envOpts{}, false, false)
	eventually(t, 20*time.Second, "b to complete", func() bool {
		return stepStatus(e.get(wf), "b") == weftv1.StepStatus_STEP_STATUS_COMPLETED
	})
	eventually(t, 20*time.Second, "the running workflow to be listed", func() bool {
		return e.listed(wf) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
}

// An input that leaves a workflow waiting with nothing in flight (here the
// first step's result, after which it waits for a signal) is settled only
// once the workflow's listing entry is stored: a direct start held no input
// for it, and the workflow may now wait for days with no input to come.
func TestParkingInputWaitsForListing(t *testing.T) {
	e := newEnv(t, envOpts{replyWait: directWait})
	e.putDef(approvalDef("1h"))
	js, err := jetstream.New(e.ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id := e.start("approval", fmt.Sprintf("parked-%d", i), `{"who": "x"}`)
		if subj, _ := firstRecord(t, e.node.Store, id); !strings.HasSuffix(subj, ".task.echo") {
			t.Fatalf("first record on %s; want a direct start", subj)
		}
		// Once the executor's command is acked, the result that parked the
		// workflow was settled, so its entry is stored already.
		eventually(t, 20*time.Second, "the first command to be acked", func() bool {
			cons, err := js.Consumer(ctx(t), eventstore.HistoryStream, "weft-task-echo")
			if err != nil {
				t.Fatal(err)
			}
			// The workflow first (it waits: the result is recorded), then
			// the consumer (the result's command is settled).
			if len(e.get(id).Steps) < 2 {
				return false
			}
			info, err := cons.Info(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			return info.NumAckPending == 0
		})
		// The bucket itself, not the API's copy of it.
		if sum, err := e.node.Store.GetSummary(ctx(t), id); err != nil || sum.Status != "RUNNING" {
			t.Fatalf("%s indexed as %q (%v) once its parking input was settled; want RUNNING", id, sum.Status, err)
		}
	}
}

// A directly started workflow that failed and is retried is listed as
// running again while it reruns, not left listed as failed.
func TestRetriedDirectStartListedRunning(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, envOpts{replyWait: directWait, handlers: map[string]executor.Handler{
		"flaky": func(context.Context, *executor.Task) (any, error) {
			if calls.Add(1) == 1 {
				return nil, executor.NonRetryable(errors.New("down"))
			}
			return "up", nil
		}}})
	e.putDef(`
name: rerun
steps:
  - { id: a, task: flaky }
  - { id: c, task: manual }
`)
	id := e.start("rerun", "rerun-1", "")
	if subj, _ := firstRecord(t, e.node.Store, id); !strings.HasSuffix(subj, ".task.flaky") {
		t.Fatalf("first record on %s; want a direct start", subj)
	}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
		t.Fatalf("first run: %v", w)
	}
	eventually(t, 20*time.Second, "the failed workflow to be listed", func() bool {
		return e.listed(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED
	})
	e.redrive(id, "")
	eventually(t, 20*time.Second, "the rerun to pass a", func() bool {
		return stepStatus(e.get(id), "a") == weftv1.StepStatus_STEP_STATUS_COMPLETED
	})
	eventually(t, 20*time.Second, "the rerun to be listed as running", func() bool {
		return e.listed(id) == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING
	})
}

// A start an orchestrator recorded but whose answer was lost (here sent with
// a reply subject nobody listens on) is reported started by the call that
// made it when that call goes on to append it itself: the record holds
// this call's event. A later retry of the same request reports it existed.
func TestStartAnswerLost(t *testing.T) {
	e := newEnv(t, envOpts{replyWait: directWait})
	e.putDef(`
name: seq
steps:
  - { id: one, task: echo, input: "${ input }" }
`)
	store := e.node.Store
	const wf, reqID = "lost-answer", "r1"
	at := time.Now().UTC().Truncate(time.Millisecond)
	ev := events.Event{Type: events.TypeWorkflowStarted, Time: at, WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: wf, Definition: "seq", Revision: 1, Input: int64(7), RequestID: reqID}}
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	req := nats.NewMsg("weft.ds." + wf)
	req.Data, req.Reply = data, "lost.answer."+wf
	req.Header.Set("Weft-Start-Id", "start/"+wf+"/"+reqID)
	nc := e.ns.Connect(t)
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the orchestrator to record the start", func() bool {
		m, err := store.First(ctx(t), wf)
		return err == nil && m.Err == nil && len(m.Record.Events) == 2
	})

	defs := runs.NewDefinitions(store)
	start := func(at time.Time) runs.StartResult {
		t.Helper()
		res, err := runs.Start(ctx(t), store, defs, runs.StartRequest{
			Definition: "seq", WorkflowID: wf, RequestID: reqID, Input: int64(7), Time: at})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := start(at); !res.Started || res.WorkflowID != wf {
		t.Fatalf("the call whose answer was lost: %+v; want started", res)
	}
	if res := start(at.Add(time.Second)); res.Started {
		t.Fatalf("a later retry of the request: %+v; want not started", res)
	}
	if w := e.waitClosed(wf, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "7" {
		t.Fatalf("%s: %v", wf, w)
	}
	n := 0
	for _, typ := range types(e.history(wf)) {
		if typ == string(events.TypeWorkflowStarted) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d WorkflowStarted events; want 1 (%v)", n, types(e.history(wf)))
	}
}
