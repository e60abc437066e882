package eventstore_test

import (
	"context"
	"testing"
	"time"
)

// A new revision of a step that counts its rate limit in longer periods
// (per: 1s -> per: 1m, same scope and key) must still get tokens: its
// periods are minutes, whatever an earlier revision counted in seconds.
func TestARateLimitPerChangedByARevisionStartsAfresh(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	// Revision 1: 2 a second; one attempt.
	if ok, _, err := s.TakeToken(ctx, "d/call", "k", 2, time.Second, now); err != nil || !ok {
		t.Fatalf("revision 1's token: %v %v", ok, err)
	}
	// Revision 2: 2 a minute. Its first two attempts are due tokens.
	for i := range 2 {
		ok, wait, err := s.TakeToken(ctx, "d/call", "k", 2, time.Minute, now.Add(time.Duration(i)*time.Millisecond))
		if err != nil || !ok {
			t.Errorf("revision 2's token %d: ok %v, wait %v, err %v", i, ok, wait, err)
		}
	}
	// And the next minute's, whatever happened before.
	later := now.Add(2 * time.Minute)
	ok, wait, err := s.TakeToken(ctx, "d/call", "k", 2, time.Minute, later)
	if err != nil || !ok {
		t.Errorf("revision 2's token two minutes on: ok %v, wait %v (%.0f years), err %v", ok, wait, wait.Hours()/24/365, err)
	}
}

// The same with per: 1s -> per: 2s, where nothing overflows.
func TestARateLimitPerDoubledByARevisionStartsAfresh(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	if ok, _, err := s.TakeToken(ctx, "d/call", "k", 2, time.Second, now); err != nil || !ok {
		t.Fatalf("revision 1's token: %v %v", ok, err)
	}
	for i := range 2 {
		ok, wait, err := s.TakeToken(ctx, "d/call", "k", 2, 2*time.Second, now.Add(time.Duration(i)*time.Millisecond))
		t.Logf("revision 2's token %d: ok %v, wait %v, err %v", i, ok, wait, err)
	}
	later := now.Add(10 * time.Second)
	ok, wait, err := s.TakeToken(ctx, "d/call", "k", 2, 2*time.Second, later)
	if err != nil || !ok {
		t.Errorf("revision 2's token 10 s on: ok %v, wait %v (%.0f years), err %v", ok, wait, wait.Hours()/24/365, err)
	}
}

// Runs of two revisions of a step, with per 1s and per 1m, take tokens in
// turn (a rollout): each counts its own, and neither resets the other's.
func TestTwoRateLimitPersInFlightStayBounded(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	// Within one second (and minute): periods are whole multiples of
	// their length, and 20 ms that cross a second's end are two periods.
	now := time.Now().Truncate(time.Second).Add(100 * time.Millisecond)
	took := 0
	for i := range 20 {
		per := time.Second
		if i%2 == 1 {
			per = time.Minute
		}
		ok, _, err := s.TakeToken(ctx, "d/call", "k", 2, per, now.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			took++
		}
	}
	if took > 4 {
		t.Errorf("20 takes within 20 ms, limit 2 per period, two pers: %d tokens", took)
	}
}

// An executor whose clock is 3 periods behind another's (the node clock
// is bounded only from above) alternates with it: it counts in the later
// period, and neither resets the other's count.
func TestARateLimitTakerBehindStaysBounded(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	took := 0
	for i := range 20 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		if i%2 == 1 {
			at = at.Add(-3 * time.Second)
		}
		ok, _, err := s.TakeToken(ctx, "d/call", "k", 2, time.Second, at)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			took++
		}
	}
	if took > 4 {
		t.Errorf("20 takes within 20 ms, limit 2 a second, one clock 3 s behind: %d tokens", took)
	}
}
