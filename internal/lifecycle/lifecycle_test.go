package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGuardStartsOnceAndStopsTwice(t *testing.T) {
	var g Guard
	starts, stops := 0, 0
	start := func() error { starts++; return nil }
	stop := func() error { stops++; return nil }
	if err := g.Stop(stop); err != nil || stops != 0 {
		t.Fatalf("Stop before Start: err %v, stop ran %d times", err, stops)
	}
	if err := g.Start("part", start); err != nil {
		t.Fatal(err)
	}
	if err := g.Start("part", start); err == nil || err.Error() != "part: already started" || starts != 1 {
		t.Fatalf("second Start: err %v, start ran %d times", err, starts)
	}
	if err := g.Locked(func(running bool) error {
		if !running {
			return errors.New("not running")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := g.Stop(stop); err != nil {
			t.Fatal(err)
		}
	}
	if stops != 1 {
		t.Fatalf("stop ran %d times, want 1", stops)
	}
}

func TestGuardFailedStartLeavesItStopped(t *testing.T) {
	var g Guard
	boom := errors.New("boom")
	if err := g.Start("part", func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Start: %v", err)
	}
	if err := g.Start("part", func() error { return nil }); err != nil {
		t.Fatalf("Start after a failed one: %v", err)
	}
}

func TestDrainCancelsAfterTheWork(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	finished := false
	wait := func() { time.Sleep(20 * time.Millisecond); finished = true }
	var sawFinished bool
	if err := Drain(context.Background(), wait, func() { sawFinished = finished; cancel() }); err != nil {
		t.Fatal(err)
	}
	if !sawFinished || ctx.Err() == nil {
		t.Fatalf("cancel ran before the work finished (%v) or not at all (%v)", sawFinished, ctx.Err())
	}
}

func TestDrainCutsShortWhenCtxEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	work, stopWork := context.WithCancel(context.Background())
	returned := false
	err := Drain(ctx, func() { <-work.Done(); returned = true }, stopWork)
	if !errors.Is(err, context.Canceled) || !returned {
		t.Fatalf("Drain: err %v, waited for the work: %v", err, returned)
	}
}

func TestAwaitLeavesTheWorkWhenCtxEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	release := make(chan struct{})
	defer close(release)
	if err := Await(ctx, func() { <-release }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Await: %v", err)
	}
	if err := Await(context.Background(), func() {}); err != nil {
		t.Fatalf("Await of finished work: %v", err)
	}
}
