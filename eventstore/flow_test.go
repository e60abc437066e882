package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
)

// A rate limit counts the attempts of each period and says how long until
// the next; a concurrency slot is a holder's until it gives it back or its
// lease ends, and the same holder takes its own back.
func TestFlowTokensAndSlots(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Unix(1000, 200_000_000)
	for i := range 3 {
		ok, _, err := s.TakeToken(ctx, "d/step", "k", 3, time.Second, now)
		if err != nil || !ok {
			t.Fatalf("token %d: %v %v", i, ok, err)
		}
	}
	ok, wait, err := s.TakeToken(ctx, "d/step", "k", 3, time.Second, now)
	if err != nil || ok || wait != 800*time.Millisecond {
		t.Fatalf("a fourth token in the period: %v, wait %v, %v", ok, wait, err)
	}
	if ok, _, err := s.TakeToken(ctx, "d/step", "k", 3, time.Second, now.Add(time.Second)); err != nil || !ok {
		t.Fatalf("a token in the next period: %v %v", ok, err)
	}
	for _, k := range []string{"other", ""} {
		if ok, _, err := s.TakeToken(ctx, "d/step", k, 3, time.Second, now); err != nil || !ok {
			t.Fatalf("key %q's token: %v %v", k, ok, err)
		}
	}
	// A definition's concurrency without a key: one entry for every run.
	if _, took, err := s.UpdateSlots(ctx, "d", "", 1, func(sl *eventstore.Slots) { sl.Enqueue("r1", eventstore.RunOf(now, 0)) }); err != nil || len(took) != 1 {
		t.Fatalf("a slot of the empty key: %v %v", took, err)
	}

	lease := time.Minute
	for _, h := range []string{"a", "b", "a"} {
		if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 2, h, now, lease); err != nil || !ok {
			t.Fatalf("slot for %s: %v %v", h, ok, err)
		}
	}
	if ok, wait, err := s.AcquireSlot(ctx, "d/step", "k", 2, "c", now, lease); err != nil || ok || wait != lease {
		t.Fatalf("a third slot: %v, wait %v, %v", ok, wait, err)
	}
	// A release of a take the holder made again since (later) is no
	// release of that take.
	if err := s.ReleaseSlot(ctx, "d/step", "k", "a", now.Add(lease-time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 2, "c", now, lease); err != nil || ok {
		t.Fatalf("a slot released by an earlier take of its holder: %v %v", ok, err)
	}
	if err := s.ReleaseSlot(ctx, "d/step", "k", "a", now.Add(lease)); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 2, "c", now, lease); err != nil || !ok {
		t.Fatalf("a slot given back: %v %v", ok, err)
	}
	if ok, _, err := s.AcquireSlot(ctx, "d/step", "k", 2, "d", now.Add(2*lease), lease); err != nil || !ok {
		t.Fatalf("a slot whose lease ended: %v %v", ok, err)
	}
}
