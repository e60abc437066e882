package trigger

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
)

// Two engines share a per-second cron trigger (not catchup). One dies
// while it handles a tick, before that tick's run is started. Weft is up
// all along (the other engine runs), so the ticks that follow are not
// missed ones: their runs start on time. The next tick used to be
// scheduled only after the run was started, so nothing came until the
// dead engine's tick was delivered again, an ack wait (10 s) later, and
// the ticks of the time between were skipped as missed.
func TestATickHandlerThatDiesLeavesTheNextTicksScheduled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ns := natstest.Start(t)
	src := "name: beat\ntriggers:\n  - cron: \"* * * * * *\"\nsteps:\n  - { id: a, task: echo }\n"
	def, err := definition.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.PutDefinition(ctx, "beat", src, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	start := func() (*Engine, func(), func()) {
		nc := ns.Connect(t)
		store, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		e, err := New(store, Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return e, nc.Close, func() {
			nc.Close()
			stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = e.Stop(stop)
		}
	}
	// The first engine to start a tick's run hangs there, and is then cut
	// off from NATS: a process that died.
	var mu sync.Mutex
	var dead *Engine
	var diedAt time.Time
	hung := make(chan struct{})
	release := make(chan struct{})
	testHookFireTick = func(e *Engine, tk *eventstore.CronTick) {
		mu.Lock()
		first := dead == nil
		if first {
			dead, diedAt = e, tk.Tick
			close(hung)
		}
		hang := e == dead
		mu.Unlock()
		if hang {
			<-release
		}
	}
	t.Cleanup(func() { testHookFireTick = nil })
	a, cutA, stopA := start()
	_, cutB, stopB := start()
	defer stopA()
	defer stopB()
	defer close(release)
	select {
	case <-hung:
	case <-ctx.Done():
		t.Fatal("no tick was handled")
	}
	mu.Lock()
	tick := diedAt
	if dead == a {
		cutA()
	} else {
		cutB()
	}
	mu.Unlock()
	// The ticks 2 to 5 seconds after the one the dead engine held start
	// their runs (late, on a loaded machine, is fine: skipped, they never
	// do).
	for k := 2; k <= 5; k++ {
		tk := tick.Add(time.Duration(k) * time.Second)
		id := RunID("beat", def.Triggers[0], TickIdentity(tk))
		for deadline := tk.Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if _, err := admin.LastSeq(ctx, id); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tick of %s, %d s after the one a dead engine held, started no run by %s: Weft was up, and it was skipped",
					tk.Format(time.TimeOnly), k, deadline.Format(time.TimeOnly))
			}
		}
	}
}
