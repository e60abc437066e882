package executor

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// While a worker's watched copy lags a pause (its watch stopped), the
// bucket read that refreshes the definition's pause each second is in
// flight at times: deliveries meanwhile take the read before (paused), not
// the copy's word (it once let 11-13 of a burst of 48 commands run).
func TestAPauseReadInFlightHoldsCommands(t *testing.T) {
	b, calls := countingBench(t)
	b.pauseSeen("other")
	b.stopWatch()
	if err := b.store.PauseDefinition(b.ctx, "d", eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pauseReadEvery)
	// One command first: held, its deliveries read the bucket (paused).
	b.commandOf("wf-first", "t", "d", events.RetryPolicy{MaxAttempts: 1})
	time.Sleep(pauseReadEvery + 200*time.Millisecond)
	if n := calls.Load(); n > 0 {
		t.Fatalf("the first command ran")
	}
	for round := range 5 {
		var wg sync.WaitGroup
		for i := range 48 {
			wg.Go(func() { b.commandOf(fmt.Sprintf("wf-%d-%d", round, i), "t", "d", events.RetryPolicy{MaxAttempts: 1}) })
		}
		wg.Wait()
		time.Sleep(pauseReadEvery + 100*time.Millisecond)
		if n := calls.Load(); n > 0 {
			t.Fatalf("round %d: %d commands of a paused definition ran, a second or more after the pause", round, n)
		}
	}
}

// The same read in flight, when the read before it is older than a
// second and said "not paused": a pause put since, which the lagging copy
// does not show, holds every command of the burst. The deliveries that
// came while the read was on its way once took that old read's word and
// ran (chaos seed 52: a run of a paused definition called the ledger 3 s
// after the pause).
func TestAPauseReadInFlightAfterAnOldReadHoldsCommands(t *testing.T) {
	b, calls := countingBench(t)
	b.pauseSeen("other")
	b.stopWatch()
	// A command of d runs: its delivery read the bucket (not paused).
	b.commandOf("wf-before", "t", "d", events.RetryPolicy{MaxAttempts: 1})
	for deadline := time.Now().Add(10 * time.Second); calls.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the command before the pause did not run")
		}
	}
	time.Sleep(2 * pauseReadEvery) // that read is old now
	if err := b.store.PauseDefinition(b.ctx, "d", eventstore.Pause{Time: time.Now(), By: "test"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Go(func() { b.commandOf(fmt.Sprintf("wf-%d", i), "t", "d", events.RetryPolicy{MaxAttempts: 1}) })
	}
	wg.Wait()
	time.Sleep(pauseReadEvery + 200*time.Millisecond)
	if n := calls.Load() - 1; n > 0 {
		t.Fatalf("%d commands of a paused definition ran: they took a read older than a second while a new one was on its way", n)
	}
}
