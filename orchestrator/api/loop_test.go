package api

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// A follower loop stopped (idle) while its follower was being made, and a
// new loop started at once: the stopped loop's follower, made after all,
// is left, and the new loop's stays in place (interest.running). It once
// published its epoch and cleared it as its Run ended at once: no read was
// answered from the cache for as long as the new follower ran.
func TestAStoppedLoopDoesNotClearTheRunningFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := s.interest
	in.setBase(ctx)
	in.linger = 20 * time.Millisecond
	release := make(chan struct{})
	var calls atomic.Int32
	in.follow = func(fctx context.Context) (*eventstore.Follower, error) {
		if calls.Add(1) == 1 {
			// The first loop's follower: its request was answered, but the
			// loop goes on only after the next loop's follower is in place.
			f, err := store.FollowHistories(context.WithoutCancel(fctx))
			<-release
			return f, err
		}
		return store.FollowHistories(fctx)
	}
	in.touch() // the first loop, idle after linger
	for stopped := false; !stopped; time.Sleep(5 * time.Millisecond) {
		in.mu.Lock()
		stopped = in.stop == nil
		in.mu.Unlock()
		if ctx.Err() != nil {
			t.Fatal("the first loop was not stopped by the idle timer")
		}
	}
	w := in.add("wf", true) // the second loop
	defer in.remove(w)
	for in.running.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the second loop's follower never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	time.Sleep(300 * time.Millisecond) // the first loop's follower is handed back meanwhile
	in.touch()
	if in.running.Load() == 0 {
		t.Fatal("a follower runs (a call waits on it), yet interest.running is 0: the cache is never used while it runs")
	}
}
