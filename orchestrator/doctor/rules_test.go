package doctor_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// rulesStore opens a store on a fresh NATS with the definitions given by
// name.
func rulesStore(t *testing.T, defs map[string]string) (context.Context, *eventstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range defs {
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, store
}

// findings checks the store as if a minute later and returns what it
// says of run wf.
func findings(t *testing.T, ctx context.Context, store *eventstore.Store, wf string) string {
	t.Helper()
	later := func() time.Time { return time.Now().Add(time.Minute) }
	rep, err := doctor.Check(ctx, store, doctor.Options{Grace: time.Second, TimerGrace: time.Second, ExecutorGrace: time.Second, All: true, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Runs {
		if r.ID != wf {
			continue
		}
		for _, f := range r.Findings {
			got = append(got, string(f.Kind)+": "+f.Reason)
		}
	}
	return strings.Join(got, "\n")
}

// A sleep whose timer is scheduled but long past its due time and never
// fired is reported: the run would sleep for ever.
func TestAnOverdueTimerIsReported(t *testing.T) {
	ctx, store := rulesStore(t, map[string]string{"nap": "name: nap\nsteps:\n  - { id: nap, sleep: 1s }\n"})
	const wf = "overdue"
	t0 := time.Now().UTC().Add(-time.Minute)
	if _, err := store.Append(ctx, wf, 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "nap", Revision: 1}},
		events.Event{Type: events.TypeTimerScheduled, Time: t0, TimerScheduled: &events.TimerScheduled{Path: "nap", TimerID: "nap/1", Due: t0.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	// Scheduled, but for an hour on: it has not fired by its due time.
	if err := store.ScheduleTimer(ctx, events.TimerDue{WorkflowID: wf, TimerID: "nap/1", Path: "nap", Due: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got := findings(t, ctx, store, wf); !strings.Contains(got, "stuck:") || !strings.Contains(got, "is overdue by") {
		t.Fatalf("a timer long overdue: %q, want it reported stuck, overdue", got)
	}
}

// A task command an executor settled (acked) with no result recorded is
// reported: nothing will ever move the step.
func TestASettledCommandWithoutAResultIsReported(t *testing.T) {
	ctx, store := rulesStore(t, map[string]string{"one": "name: one\nsteps:\n  - { id: a, task: work }\n"})
	const wf = "settled"
	t0 := time.Now().UTC().Add(-time.Minute)
	if err := store.EnsureTaskConsumer(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, wf, 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "one", Revision: 1}},
		events.Event{Type: events.TypeStepScheduled, Time: t0, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "work"}}); err != nil {
		t.Fatal(err)
	}
	p, err := store.TaskPuller(ctx, "work")
	if err != nil {
		t.Fatal(err)
	}
	acked := false
	for deadline := time.Now().Add(10 * time.Second); !acked && time.Now().Before(deadline); {
		if err := p.Fetch(ctx, 1, time.Second, func(d *eventstore.Delivery) {
			acked = d.Ack() == nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !acked {
		t.Fatal("the task command was never handed out")
	}
	if got := findings(t, ctx, store, wf); !strings.Contains(got, "stuck:") || !strings.Contains(got, "no result was recorded") {
		t.Fatalf("a settled command with no result: %q, want it reported stuck", got)
	}
}

// A run whose history holds a record of a newer version (a rolling
// upgrade under way) is not this doctor's to judge: it is reported
// unchecked, naming why, not stuck on a history it "cannot read".
func TestARunWithANewerRecordIsUnchecked(t *testing.T) {
	ctx, store := rulesStore(t, map[string]string{"gate": "name: gate\nsteps:\n  - { id: g, wait: { signal: go } }\n"})
	const wf = "newer"
	t0 := time.Now().UTC().Add(-time.Minute)
	last, err := store.Append(ctx, wf, 0,
		events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "gate", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := msgpack.Marshal(map[string]any{"v": 2, "e": map[string]any{"a layout": "of a later version"}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(store.Conn())
	if err != nil {
		t.Fatal(err)
	}
	msg := nats.NewMsg("weft.h." + wf + ".ext")
	msg.Data = data
	msg.Header.Set("Weft-Prev", strconv.FormatUint(last, 10))
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if got := findings(t, ctx, store, wf); !strings.HasPrefix(got, "unchecked:") || !strings.Contains(got, "newer version") {
		t.Fatalf("a run with a newer record: %q, want it unchecked, naming the newer version", got)
	}
}
