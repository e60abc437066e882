package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/metrics"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// calls counts a task handler's calls and the attempt numbers it ran.
type calls struct {
	mu       sync.Mutex
	n        int
	attempts []int
}

func (c *calls) handler(_ context.Context, t *executor.Task) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.attempts = append(c.attempts, t.Attempt)
	return t.Input, nil
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// onlyFirstAttempts fails the test unless every call ran attempt 1.
func (c *calls) onlyFirstAttempts(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.attempts {
		if a != 1 {
			t.Fatalf("attempt numbers %v: holding used attempts", c.attempts)
		}
	}
}

const pausedDef = `
name: held
steps:
  - { id: a, task: count, input: "${ input }" }
  - { id: b, task: count, input: "${ steps.a.output }" }
`

func (e *env) pause(name, reason string) {
	e.t.Helper()
	if _, err := e.defs.PauseDefinition(ctx(e.t), connect.NewRequest(&weftv1.PauseDefinitionRequest{Name: name, Reason: reason})); err != nil {
		e.t.Fatalf("PauseDefinition %s: %v", name, err)
	}
}

func (e *env) resume(name string) {
	e.t.Helper()
	if _, err := e.defs.ResumeDefinition(ctx(e.t), connect.NewRequest(&weftv1.ResumeDefinitionRequest{Name: name})); err != nil {
		e.t.Fatalf("ResumeDefinition %s: %v", name, err)
	}
}

// holding waits until every node's executor holds def's commands (or, with
// want false, no longer does).
func holding(t *testing.T, def string, want bool, nodes ...*node.Node) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("executors to hold %s: %v", def, want), func() bool {
		for _, n := range nodes {
			if n.Worker.Holds(def) != want {
				return false
			}
		}
		return true
	})
}

// noCallsFor fails the test if c is called within d.
func noCallsFor(t *testing.T, c *calls, d time.Duration) {
	t.Helper()
	callsStayFor(t, c, 0, d)
}

// callsStayFor fails the test if c's calls are not n throughout d.
func callsStayFor(t *testing.T, c *calls, n int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := c.count(); got != n {
			t.Fatalf("%d attempts started while the definition was paused", got-n)
		}
	}
}

// A paused definition starts no attempt for 3 seconds, on either of two
// executors, though its new runs are recorded; GetDefinition and
// ListDefinitions say paused, by whom and why; after resume every run
// completes with attempt 1 throughout.
func TestPauseHoldsEveryAttemptUntilResume(t *testing.T) {
	c := &calls{}
	reg := metrics.NewRegistry()
	o := envOpts{handlers: map[string]executor.Handler{"count": c.handler}, metrics: reg}
	e := newEnv(t, o)
	second := e.startNode(envOpts{handlers: o.handlers}, false, false)
	e.putDef(pausedDef)

	e.pause("held", "downstream is down")
	holding(t, "held", true, e.node, second)
	got, err := e.defs.GetDefinition(ctx(t), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: "held"}))
	if err != nil {
		t.Fatal(err)
	}
	p := got.Msg.Definition.GetPause()
	if p == nil || p.By != "anonymous" || p.Reason != "downstream is down" || time.Since(p.Time.AsTime()) > time.Minute {
		t.Fatalf("GetDefinition pause = %v", p)
	}
	list, err := e.defs.ListDefinitions(ctx(t), connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
	if err != nil || len(list.Msg.Definitions) != 1 || list.Msg.Definitions[0].GetPause().GetReason() != "downstream is down" {
		t.Fatalf("ListDefinitions = %v, %v", list, err)
	}

	var ids []string
	for i := range 4 {
		ids = append(ids, e.start("held", fmt.Sprintf("held-%d", i), fmt.Sprintf(`{"n": %d}`, i)))
	}
	noCallsFor(t, c, 3*time.Second)
	e.healthy() // held runs are waiting for an executor, not stuck
	rep, err := doctor.Check(ctx(t), e.node.Store, doctor.Options{All: true})
	if err != nil || rep.Paused != len(ids) {
		t.Fatalf("doctor: %v paused, %v", rep, err)
	}
	for _, id := range ids {
		if w := e.get(id); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
			t.Fatalf("%s while paused: %v", id, w.Status)
		}
	}
	// This node's executor took some of the held deliveries.
	if held := sample(scrape(t, e.node.APIURL+"/metrics"), metrics.NameTaskHeld, "reason=paused", "task=count"); held < 1 {
		t.Fatalf("%s = %v, want some", metrics.NameTaskHeld, held)
	}

	e.resume("held")
	for _, id := range ids {
		if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("%s after resume: %v", id, w)
		}
	}
	if n := c.count(); n != 2*len(ids) {
		t.Fatalf("%d calls, want %d", n, 2*len(ids))
	}
	c.onlyFirstAttempts(t)
	got, err = e.defs.GetDefinition(ctx(t), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: "held"}))
	if err != nil || got.Msg.Definition.GetPause() != nil {
		t.Fatalf("GetDefinition after resume: %v, %v", got, err)
	}
}

// An attempt running when the pause begins finishes and is recorded; the
// run's next step waits for the resume.
func TestPauseLetsAnAttemptInFlightFinish(t *testing.T) {
	c := &calls{}
	started, release := make(chan struct{}, 1), make(chan struct{})
	slow := func(_ context.Context, t *executor.Task) (any, error) {
		started <- struct{}{}
		<-release
		return "slow done", nil
	}
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{"count": c.handler, "slow": slow}})
	e.putDef(`
name: inflight
steps:
  - { id: a, task: slow, input: 1 }
  - { id: b, task: count, input: "${ steps.a.output }" }
`)
	id := e.start("inflight", "inflight-1", "")
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first attempt did not start")
	}
	e.pause("inflight", "")
	holding(t, "inflight", true, e.node)
	close(release)
	eventually(t, 10*time.Second, "the attempt in flight to be recorded", func() bool {
		for _, ev := range e.history(id) {
			if ev.Type == "StepCompleted" && ev.StepPath == "a" {
				return true
			}
		}
		return false
	})
	noCallsFor(t, c, time.Second)
	e.resume("inflight")
	if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != `"slow done"` {
		t.Fatalf("after resume: %v", w)
	}
	c.onlyFirstAttempts(t)
}

// A pause outlives the node that saw it put, and a restart of NATS: a
// node started again holds the definition's commands until it is resumed.
func TestPauseSurvivesARestart(t *testing.T) {
	c := &calls{}
	o := envOpts{handlers: map[string]executor.Handler{"count": c.handler}}
	e := newEnv(t, o)
	e.putDef(pausedDef)
	e.pause("held", "maintenance")
	stop, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Stop(stop); err != nil {
		t.Fatal(err)
	}
	e.node = e.startNode(o, true, true)
	e.wf, e.defs = newClients(e.node.APIURL)
	if !e.node.Worker.Holds("held") {
		t.Fatal("the restarted executor does not know the pause")
	}
	id := e.start("held", "after-restart", `{"n": 1}`)
	noCallsFor(t, c, time.Second)
	// And NATS too.
	e.restart(o)
	if !e.node.Worker.Holds("held") {
		t.Fatal("the executor does not know the pause after NATS restarted")
	}
	noCallsFor(t, c, time.Second)
	got, err := e.defs.GetDefinition(ctx(t), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: "held"}))
	if err != nil || got.Msg.Definition.GetPause().GetReason() != "maintenance" {
		t.Fatalf("GetDefinition after restart: %v, %v", got, err)
	}
	e.resume("held")
	if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("after resume: %v", w)
	}
	c.onlyFirstAttempts(t)
}

// Pause and resume name a definition that exists; resuming one that is not
// paused does nothing.
func TestPauseErrors(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(pausedDef)
	for _, tc := range []struct {
		name string
		code connect.Code
	}{{"", connect.CodeInvalidArgument}, {"nope", connect.CodeNotFound}, {"no.such/name", connect.CodeNotFound}} {
		_, err := e.defs.PauseDefinition(ctx(t), connect.NewRequest(&weftv1.PauseDefinitionRequest{Name: tc.name, Reason: "x"}))
		if connect.CodeOf(err) != tc.code {
			t.Errorf("PauseDefinition(%q) = %v, want %v", tc.name, err, tc.code)
		}
		_, err = e.defs.ResumeDefinition(ctx(t), connect.NewRequest(&weftv1.ResumeDefinitionRequest{Name: tc.name}))
		if connect.CodeOf(err) != tc.code {
			t.Errorf("ResumeDefinition(%q) = %v, want %v", tc.name, err, tc.code)
		}
	}
	_, err := e.defs.PauseDefinition(ctx(t), connect.NewRequest(&weftv1.PauseDefinitionRequest{Name: "held", Reason: string(make([]byte, 2000))}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("a 2000-byte reason: %v", err)
	}
	e.resume("held") // not paused: nothing to do
	e.pause("held", "first")
	e.pause("held", "second") // replaces the reason
	got, err := e.defs.GetDefinition(ctx(t), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: "held"}))
	if err != nil || got.Msg.Definition.GetPause().GetReason() != "second" {
		t.Fatalf("GetDefinition: %v, %v", got, err)
	}
}

// A child workflow is governed by its own definition's pause: a paused
// parent starts its child, whose tasks run, and holds its own next task; a
// parent that is not paused waits for a paused child.
func TestPauseGovernsEachDefinitionOfAChildTree(t *testing.T) {
	c := &calls{}
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{"count": c.handler}})
	e.putDef("name: kid\nsteps:\n  - { id: k, task: count, input: 7 }\n")
	e.putDef(`
name: mom
steps:
  - { id: child, workflow: kid }
  - { id: after, task: echo, input: "${ steps.child.output }" }
`)
	e.pause("mom", "")
	holding(t, "mom", true, e.node)
	id := e.start("mom", "mom-1", "")
	eventually(t, 10*time.Second, "the child of a paused parent to run its task", func() bool { return c.count() == 1 })
	eventually(t, 10*time.Second, "the child's result to reach the paused parent", func() bool {
		for _, ev := range e.history(id) {
			if ev.Type == "StepCompleted" && ev.StepPath == "child" {
				return true
			}
		}
		return false
	})
	e.pause("kid", "")
	e.resume("mom")
	holding(t, "mom", false, e.node)
	holding(t, "kid", true, e.node)
	if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || toJSON(w.Output) != "7" {
		t.Fatalf("mom-1: %v", w)
	}

	id = e.start("mom", "mom-2", "")
	callsStayFor(t, c, 1, time.Second)
	e.resume("kid")
	if w := e.waitClosed(id, 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("mom-2: %v", w)
	}
}

// Triggers of a paused definition still record their runs, which complete
// after the resume.
func TestPauseTriggerStillRecordsItsRun(t *testing.T) {
	c := &calls{}
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{"count": c.handler}})
	e.putDef(`
name: onevent
triggers:
  - { subject: pause.events, id: "${ 'ev-' + string(event.n) }" }
steps:
  - { id: a, task: count, input: "${ input }" }
`)
	e.pause("onevent", "")
	holding(t, "onevent", true, e.node)
	nc := e.ns.Connect(t)
	js, _ := jetstream.New(nc)
	waitCaptured(t, js, "pause.events")
	if err := nc.Publish("pause.events", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the trigger's run to be recorded", func() bool {
		_, err := e.wf.GetWorkflow(ctx(t), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "ev-1"}))
		return err == nil
	})
	noCallsFor(t, c, time.Second)
	e.resume("onevent")
	if w := e.waitClosed("ev-1", 10*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("ev-1: %v", w)
	}
	c.onlyFirstAttempts(t)
}
