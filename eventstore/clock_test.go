package eventstore_test

import (
	"context"
	"testing"
	"time"
)

// A clock an hour ahead reads the servers' time once compared with it,
// and never reads earlier than it read before: it stands still instead.
func TestClockBoundedAndMonotonic(t *testing.T) {
	s := open(t)
	ahead := time.Now().Add(time.Hour)
	c := s.NewClock(func() time.Time { return ahead })
	before := c.Now()
	if !before.Equal(ahead) {
		t.Fatalf("before a comparison the clock reads %v, want the local %v", before, ahead)
	}
	if err := c.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.Ahead(); got < 59*time.Minute || got > 61*time.Minute {
		t.Fatalf("found ahead by %v, want about an hour", got)
	}
	if got := c.Now(); got.Before(before) {
		t.Fatalf("the clock went back from %v to %v", before, got)
	}
	// A clock that compared before it read runs on the servers' time.
	c2 := s.NewClock(func() time.Time { return time.Now().Add(time.Hour) })
	if err := c2.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c2.Now()); d > time.Minute || d < -time.Minute {
		t.Fatalf("the bounded clock reads %v from now", d)
	}
}
