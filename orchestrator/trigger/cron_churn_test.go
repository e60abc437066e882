package trigger_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/trigger"
)

// A per-second catchup cron trigger starts one run for every tick while
// engines crash and start again (their connections cut mid-handling, so
// acks are lost) and its definition is put again and again: no tick is
// lost, none started twice.
func TestACatchupCronLosesNoTickAcrossCrashesAndPuts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	src := func(n int) string {
		return fmt.Sprintf("name: churn\ntriggers:\n  - cron: \"* * * * * *\"\n    catchup: true\nsteps:\n  - { id: a%d, task: echo }\n", n)
	}
	def, err := definition.Parse([]byte(src(0)))
	if err != nil {
		t.Fatal(err)
	}
	key := def.Triggers[0].Key
	admin, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.PutDefinition(ctx, "churn", src(0), "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	type running struct {
		eng  *trigger.Engine
		stop func()
	}
	start := func() running {
		nc := ns.Connect(t)
		store, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := trigger.New(store, trigger.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return running{eng, func() {
			nc.Close() // a crash: nothing more reaches NATS
			sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
			defer c()
			_ = eng.Stop(sctx)
		}}
	}
	a, b := start(), start()
	began := time.Now()
	for i := 1; time.Since(began) < 15*time.Second; i++ {
		time.Sleep(300 * time.Millisecond)
		switch {
		case i == 12:
			// Every engine down for a while: the ticks of then are
			// caught up.
			a.stop()
			b.stop()
			time.Sleep(2500 * time.Millisecond)
			a, b = start(), start()
		case i == 24:
			ns.Restart()
		}
		switch i % 4 {
		case 0:
			a.stop()
			a = start()
		case 2:
			b.stop()
			b = start()
		}
		if _, _, err := admin.PutDefinition(ctx, "churn", src(i), "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	end := time.Now().Truncate(time.Second)
	waitFor(t, "the ticks up to the end handled", func() bool {
		last, err := admin.LastCronTick(ctx, "churn", key)
		if err != nil {
			t.Fatal(err)
		}
		return !last.Before(end)
	})
	a.stop()
	b.stop()
	runs := map[int64]bool{}
	for _, id := range startedWorkflows(t, ctx, ns.Connect(t)) {
		tick, err := time.Parse("20060102T150405Z", strings.TrimPrefix(id, "churn-"+key+"-"))
		if err != nil {
			t.Fatalf("run %s: %v", id, err)
		}
		runs[tick.Unix()] = true
	}
	first := began.Truncate(time.Second).Add(time.Second)
	var missing []string
	for tk := first; !tk.After(end); tk = tk.Add(time.Second) {
		if !runs[tk.Unix()] {
			missing = append(missing, tk.Format(time.TimeOnly))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d ticks of %s-%s started no run: %v", len(missing), first.Format(time.TimeOnly), end.Format(time.TimeOnly), missing)
	}
}
