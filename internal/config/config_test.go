package config

import (
	"log/slog"
	"testing"
	"time"
)

func TestDefaultFillsOnlyZeroFields(t *testing.T) {
	n, m := 0, 3
	Default(&n, 16)
	Default(&m, 16)
	var log *slog.Logger
	Default(&log, slog.Default())
	var now func() time.Time
	DefaultClock(&now)
	if n != 16 || m != 3 || log == nil || now == nil {
		t.Fatalf("got n=%d m=%d log=%v now set=%v", n, m, log, now != nil)
	}
	fixed := func() time.Time { return time.Unix(1, 0) }
	now = fixed
	DefaultClock(&now)
	if !now().Equal(time.Unix(1, 0)) {
		t.Fatal("DefaultClock replaced a clock")
	}
}

func TestNonNegativeNamesTheFirstNegativeField(t *testing.T) {
	if err := NonNegative("part", Int("A", 0), Int("B", 1)); err != nil {
		t.Fatal(err)
	}
	err := NonNegative("part", Int("A", 0), Int("B", -2), Int("C", -1))
	if err == nil || err.Error() != "part: B must not be negative, got -2" {
		t.Fatalf("got %v", err)
	}
}
