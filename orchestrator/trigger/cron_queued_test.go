package trigger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/definition"
)

// Cron ticks share one handler. One that waits behind another's handling
// (slow for seconds while a NATS node is lost, say) for longer than its
// trigger's period was judged by when the handler got to it, not by when
// it came: "late when first delivered", as if Weft had been down, and
// skipped. Here a per-second cron's tick waits 2.5 s behind another
// definition's: it arrived on time, and its run is started.
func TestACronTickQueuedBehindAnotherIsNotSkipped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srcs := map[string]string{
		"slow":   "name: slow\ntriggers:\n  - cron: \"* * * * * *\"\nsteps:\n  - { id: a, task: echo }\n",
		"queued": "name: queued\ntriggers:\n  - cron: \"* * * * * *\"\nsteps:\n  - { id: a, task: echo }\n",
	}
	defs := map[string]*definition.Definition{}
	for name, src := range srcs {
		def, err := definition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		defs[name] = def
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// The first tick of slow to reach the handler holds it 2.5 s; the
	// ticks of queued handled after that are kept.
	var mu sync.Mutex
	held := false
	var behind []time.Time
	testHookTick = func(tk *eventstore.CronTick) {
		mu.Lock()
		hold := tk.Definition == "slow" && !held
		held = held || hold
		if tk.Definition == "queued" && held {
			behind = append(behind, tk.Tick)
		}
		mu.Unlock()
		if hold {
			time.Sleep(2500 * time.Millisecond) // a store call that takes its time
		}
	}
	t.Cleanup(func() { testHookTick = nil })
	runEngine(ctx, t, store)
	var first time.Time
	for deadline := time.Now().Add(30 * time.Second); first.IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no tick of queued was handled behind slow's")
		}
		mu.Lock()
		if len(behind) > 0 {
			first = behind[0]
		}
		mu.Unlock()
	}
	id := RunID("queued", defs["queued"].Triggers[0], TickIdentity(first))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := store.LastSeq(ctx, id); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tick of %s, which waited behind slow's tick, started no run (%s): it was taken for missed", first.Format(time.TimeOnly), id)
		}
	}
}
