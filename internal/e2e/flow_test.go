package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A step's rate limit of 10 a second holds across two executors: the
// outside service sees at most 10 calls (and one more, for a call on its
// way when a second began) in any second, and all runs complete.
func TestStepRateLimitAcrossExecutors(t *testing.T) {
	m := newConcurrencyMeter(t)
	close(m.hold)
	e := newEnv(t, envOpts{})
	e.startNode(envOpts{}, false, false) // a second executor
	e.putDef(`
name: ratey
steps:
  - id: call
    task: http
    input: { method: POST, url: "${ input.url + '?key=r&n=' + string(input.n) }" }
    rate_limit: { limit: 10, per: 1s }
`)
	var ids []string
	for n := range 50 {
		ids = append(ids, e.start("ratey", fmt.Sprintf("ratey-%d", n), fmt.Sprintf(`{"n": %d, "url": %q}`, n, m.srv.URL)))
	}
	for _, id := range ids {
		if w := e.waitClosed(id, 60*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("run %s: %v %v", id, w.Status, w.Error)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	perSecond := map[int64]int{}
	for _, at := range m.at["r"] {
		perSecond[at.Unix()]++
	}
	for sec, n := range perSecond {
		if n > 11 {
			t.Errorf("%d calls in second %d; the limit is 10 a second (calls a second: %v)", n, sec, perSecond)
		}
	}
	if len(m.at["r"]) != 50 || len(perSecond) < 5 {
		t.Errorf("%d calls over %d seconds; want 50 over at least 5 (calls a second: %v)", len(m.at["r"]), len(perSecond), perSecond)
	}
	e.healthy()
}

// A step's concurrency of 2 per key holds across runs: the outside service
// never sees more than 2 calls of one key at once, while another key's
// calls go on beside them.
func TestStepConcurrencyPerKey(t *testing.T) {
	m := newConcurrencyMeter(t)
	close(m.hold)
	e := newEnv(t, envOpts{})
	e.startNode(envOpts{}, false, false)
	e.putDef(`
name: narrow
steps:
  - id: call
    task: http
    input: { method: POST, url: "${ input.url + '?key=' + input.k + '&n=' + string(input.n) }" }
    concurrency: { key: "${ input.k }", limit: 2 }
`)
	var ids []string
	for n := range 12 {
		for _, k := range []string{"x", "y"} {
			ids = append(ids, e.start("narrow", fmt.Sprintf("narrow-%s-%d", k, n), fmt.Sprintf(`{"k": %q, "n": %d, "url": %q}`, k, n, m.srv.URL)))
		}
	}
	for _, id := range ids {
		if w := e.waitClosed(id, 60*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("run %s: %v %v", id, w.Status, w.Error)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.most["x"] > 2 || m.most["y"] > 2 {
		t.Errorf("most calls at once: x %d, y %d; the limit is 2 per key", m.most["x"], m.most["y"])
	}
	if m.mostAt < 3 {
		t.Errorf("at most %d calls at once over both keys: the keys did not run beside each other", m.mostAt)
	}
	e.healthy()
}

// A step whose attempt waits for a concurrency slot is shown WAITING with
// the reason, and RUNNING once it starts; the history says so.
func TestStepWaitingForASlotIsShown(t *testing.T) {
	m := newConcurrencyMeter(t)
	e := newEnv(t, envOpts{})
	e.putDef(`
name: one-at-a-time
steps:
  - id: call
    task: http
    input: { method: POST, url: "${ input.url + '?key=A&n=' + string(input.n) }" }
    concurrency: { limit: 1 }
`)
	first := e.start("one-at-a-time", "slot-0", fmt.Sprintf(`{"n": 0, "url": %q}`, m.srv.URL)) // its call is held
	eventually(t, 10*time.Second, "the first call", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.now["A"] == 1
	})
	second := e.start("one-at-a-time", "slot-1", fmt.Sprintf(`{"n": 1, "url": %q}`, m.srv.URL))
	var waiting *weftv1.StepState
	eventually(t, 10*time.Second, "the second run's step shown waiting", func() bool {
		for _, s := range e.get(second).Steps {
			if s.Path == "call" && s.Status == weftv1.StepStatus_STEP_STATUS_WAITING {
				waiting = s
				return true
			}
		}
		return false
	})
	if !strings.HasPrefix(waiting.WaitingFor, "concurrency: all 1 slots") || waiting.Attempts != 0 {
		t.Fatalf("waiting step: %v", waiting)
	}
	close(m.hold)
	for _, id := range []string{first, second} {
		if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("run %s: %v %v", id, w.Status, w.Error)
		}
	}
	var held []string
	for _, ev := range e.history(second) {
		if ev.Type == "StepHeld" {
			held = append(held, toJSON(ev.Data))
		}
	}
	if len(held) == 0 {
		t.Fatal("no StepHeld in the second run's history")
	}
	e.healthy()
}

// An attempt that heartbeats past its concurrency slot's lease keeps its
// slot: its heartbeats renew the lease (a third of a lease apart at most),
// so a second attempt does not take the slot while it still runs. The
// lease here is 2 minutes (the step's timeout, at least a minute, and a
// minute more); the test looks where the lease ends a third of it in.
func TestAHeartbeatingAttemptRenewsItsSlot(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 1)
	e := newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"beating": func(ctx context.Context, task *executor.Task) (any, error) {
			started <- struct{}{}
			for {
				select {
				case <-release:
					return "done", nil
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(200 * time.Millisecond):
					task.Heartbeat()
				}
			}
		},
	}})
	e.putDef(`
name: renewed
steps:
  - id: long
    task: beating
    timeout: 1s
    concurrency: { limit: 1 }
`)
	id := e.start("renewed", "renewed-1", `{}`)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the attempt never started")
	}
	took := time.Now()
	lease := 2 * time.Minute
	holders := func(at time.Time) []string {
		h, err := e.node.Store.SlotHolders(ctx(t), "renewed/long", "", at)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := holders(took.Add(lease + 5*time.Second)); len(h) != 0 {
		t.Fatalf("the slot's lease ends more than %s after it was taken: %v", lease, h)
	}
	eventually(t, lease/3+30*time.Second, "the lease renewed by the heartbeats", func() bool {
		return len(holders(took.Add(lease+5*time.Second))) == 1
	})
	release <- struct{}{}
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the run: %s %v", w.Status, w.Error)
	}
}

// A concurrency slot held by an attempt whose executor stopped before it
// gave the slot back, of a step since settled (its run canceled), is given
// back when the step's command comes to an executor again: the next run on
// the key starts at once, not when the slot's lease (2 minutes) ends.
func TestASettledStepsSlotIsGivenBackOnRedelivery(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: slotted
steps:
  - id: s
    task: slotted
    timeout: 1s
    concurrency: { limit: 1 }
`)
	started := make(chan struct{}, 1)
	first := e.worker("slotted", func(ctx context.Context, task *executor.Task) (any, error) {
		started <- struct{}{}
		for ctx.Err() == nil {
			task.Heartbeat() // past the step's timeout, until stopped
			time.Sleep(100 * time.Millisecond)
		}
		return nil, ctx.Err()
	})
	held := e.start("slotted", "slot-held", `{}`)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the first attempt never started")
	}
	if _, err := e.wf.CancelWorkflow(ctx(t), connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: held})); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(held, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_CANCELED {
		t.Fatalf("the first run: %s", w.Status)
	}
	// Stopped at once: the attempt's slot is left to its lease.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(stopped)
	e.worker("slotted", func(context.Context, *executor.Task) (any, error) { return "done", nil })
	next := e.start("slotted", "slot-next", `{}`)
	if w := e.waitClosed(next, 30*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the next run on the key: %s; want COMPLETED well before the slot's lease ends", w.Status)
	}
}

// The next attempt of a step whose previous attempt's slot was never given
// back (its executor died after its failure was recorded) gives that slot
// back and runs, rather than wait for the slot's lease (2 minutes).
func TestANextAttemptGivesBackItsPredecessorsSlot(t *testing.T) {
	var e *env
	e = newEnv(t, envOpts{handlers: map[string]executor.Handler{
		"twice": func(ctx context.Context, task *executor.Task) (any, error) {
			if task.Attempt > 1 {
				return "done", nil
			}
			// As if this attempt's executor died before giving its slot
			// back: the slot is held again once its release is done.
			go func() {
				time.Sleep(300 * time.Millisecond)
				_, _, _ = e.node.Store.AcquireSlot(context.Background(), "twice/s", "", 1,
					task.WorkflowID+"/s/1/1", time.Now(), 2*time.Minute)
			}()
			return nil, errors.New("first attempt fails")
		},
	}})
	e.putDef(`
name: twice
steps:
  - id: s
    task: twice
    timeout: 1s
    concurrency: { limit: 1 }
    retry: { max_attempts: 2, initial_interval: 2s }
`)
	id := e.start("twice", "twice-1", `{}`)
	if w := e.waitClosed(id, 30*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the run: %s %v; want COMPLETED by its second attempt", w.Status, w.Error)
	}
}

// A slot that could not be given back after its attempt's result was
// recorded (the flow bucket took no writes) keeps the step's command
// unacked: the command comes back (its ack wait here 2s), to another
// executor when the first stopped, and that one gives the slot back once
// it can, long before the slot's lease (2 minutes) ends.
func TestASlotNotGivenBackComesBackWithItsCommand(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true, taskAckWait: 2 * time.Second})
	e.putDef(`
name: ungiven
steps:
  - id: s
    task: ungiven
    timeout: 1s
    concurrency: { limit: 1 }
`)
	js, err := jetstream.New(e.node.NC)
	if err != nil {
		t.Fatal(err)
	}
	flow, err := js.Stream(ctx(t), "KV_"+eventstore.FlowBucket)
	if err != nil {
		t.Fatal(err)
	}
	subjects := flow.CachedInfo().Config.Subjects
	// setSubjects points the flow bucket's stream at other subjects (its
	// writes then find no stream) or back.
	setSubjects := func(s []string) {
		cfg := flow.CachedInfo().Config
		cfg.Subjects = s
		if _, err := js.UpdateStream(ctx(t), cfg); err != nil {
			t.Fatal(err)
		}
	}
	first := e.worker("ungiven", func(ctx context.Context, task *executor.Task) (any, error) {
		setSubjects([]string{"weft-test.nowhere.>"}) // the slot is held; its give-back will fail
		return "done", nil
	})
	id := e.start("ungiven", "ungiven-1", `{}`)
	if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the run: %s %v", w.Status, w.Error)
	}
	holders := func() []string {
		h, err := e.node.Store.SlotHolders(ctx(t), "ungiven/s", "", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	if h := holders(); len(h) != 1 {
		t.Fatalf("slot holders while the bucket takes no writes: %v; want the attempt's", h)
	}
	// The first executor stops at once: nothing of it tries again.
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	_ = first.Stop(stopped)
	setSubjects(subjects)
	e.worker("ungiven", func(context.Context, *executor.Task) (any, error) { return "done", nil })
	eventually(t, 30*time.Second, "the slot given back by the command's next delivery", func() bool {
		return len(holders()) == 0
	})
	next := e.start("ungiven", "ungiven-2", `{}`)
	if w := e.waitClosed(next, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("the next run on the key: %s", w.Status)
	}
}
