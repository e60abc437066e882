package eventstore_test

import (
	"context"
	"testing"
	"time"
)

// The last handled tick of a cron trigger only moves forward: an earlier
// tick handled again (a delivery made twice) leaves the later one, so a
// trigger that catches up never goes back over ticks it handled.
func TestLastCronTickOnlyMovesForward(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	at := func(min int) time.Time { return time.Date(2026, 6, 1, 10, min, 0, 0, time.UTC) }
	for _, m := range []int{1, 5, 3, 5} {
		if err := s.SetLastCronTick(ctx, "d", "k", at(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.Equal(at(5)) {
		t.Fatalf("last tick %v (%v), want %v", got, err, at(5))
	}
	if err := s.CancelCron(ctx, "d", "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.IsZero() {
		t.Fatalf("after CancelCron the last tick is %v (%v), want none", got, err)
	}
	if err := s.SetLastCronTick(ctx, "d", "k", at(2)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastCronTick(ctx, "d", "k"); err != nil || !got.Equal(at(2)) {
		t.Fatalf("last tick %v (%v), want %v", got, err, at(2))
	}
}
