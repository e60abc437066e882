package trigger_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// Events published while trigger engines crash and start again, NATS
// restarts and the definition is put again and again each start exactly
// one run: none is lost, none started twice.
func TestSubjectEventsStartOneRunEachAcrossCrashesAndPuts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	src := func(n int) string {
		return fmt.Sprintf("name: churnev\ntriggers:\n  - subject: churn.ev\n    input: \"${ {'n': event.n, 'rev': %d} }\"\nsteps:\n  - { id: a, task: echo }\n", n)
	}
	def, err := definition.Parse([]byte(src(0)))
	if err != nil {
		t.Fatal(err)
	}
	adminNC := ns.Connect(t)
	admin, err := eventstore.Open(ctx, adminNC, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.PutDefinition(ctx, "churnev", src(0), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := admin.AddTriggerSubjects(ctx, []string{"churn.ev"}); err != nil {
		t.Fatal(err)
	}
	start := func() func() {
		nc := ns.Connect(t)
		store, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := trigger.New(store, trigger.Config{Logger: slog.New(slog.DiscardHandler), Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return func() {
			nc.Close()
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = eng.Stop(sctx)
		}
	}
	stopA, stopB := start(), start()
	js, err := jetstream.New(adminNC)
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	for i := range n {
		for {
			pctx, c := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "churn.ev", fmt.Appendf(nil, `{"n": %d}`, i), jetstream.WithMsgID(fmt.Sprintf("ev-%d", i)))
			c()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		switch {
		case i%97 == 50:
			stopA()
			stopA = start()
		case i%97 == 0 && i > 0:
			stopB()
			stopB = start()
		case i == 300:
			ns.Restart()
		}
		if i%40 == 0 {
			for {
				if _, _, err := admin.PutDefinition(ctx, "churnev", src(i), "test", time.Now()); err == nil {
					break
				} else if ctx.Err() != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	want := map[string]bool{}
	for i := range n {
		want[trigger.RunID("churnev", def.Triggers[0], trigger.MessageIdentity(&eventstore.TriggerEvent{
			Headers: eventstore.Header{eventstore.MsgIDHeader: {fmt.Sprintf("ev-%d", i)}}}))] = true
	}
	var got []string
	check := ns.Connect(t)
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = startedWorkflows(t, ctx, check)
		have := 0
		for _, id := range got {
			if want[id] {
				have++
			}
		}
		if have == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events started their runs", have, n)
		}
	}
	stopA()
	stopB()
	if len(got) != n {
		t.Errorf("%d runs for %d events", len(got), n)
	}
	fs, _, err := admin.ListTriggerFailures(ctx, 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Errorf("trigger failure: %s: %s", f.Subject, f.Reason)
	}
}
