package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/weftworks/weft/internal/natstest"
)

// A read whose consumer delivers nothing, though the stream says records
// are still to come, ends with an error its caller can read again after,
// rather than hold the call for as long as its context lets it (a
// GetHistory held a client's whole minute once, under chaos). Here the
// scan waits for a run that has no records while its stalled check says
// there are some.
func TestAScanGivenNothingGivesUp(t *testing.T) {
	defer func(stall time.Duration) { scanStall = stall }(scanStall)
	scanStall = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, natstest.Start(t).Connect(t), Config{})
	if err != nil {
		t.Fatal(err)
	}
	stalls := 0
	begun := time.Now()
	err = s.scan(ctx, "nothing", 1, func(Message) bool { return true }, func() error { stalls++; return nil })
	if !errors.Is(err, errScanStalled) || stalls != scanStalls {
		t.Fatalf("a scan given nothing: %v after %d stalls; want errScanStalled after %d", err, stalls, scanStalls)
	}
	if took := time.Since(begun); took > 30*time.Second {
		t.Fatalf("the scan gave up after %v", took)
	}
}
