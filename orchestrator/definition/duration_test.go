package definition

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"250ms", 250 * time.Millisecond, true},
		{"3d", 72 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"2d3h4m", 51*time.Hour + 4*time.Minute, true},
		{"-1d", -24 * time.Hour, true},
		{"0", 0, true},
		{"", 0, false},
		{"d", 0, false},
		{"7x", 0, false},
		{"3dd", 0, false},
		{"1.2.3d", 0, false},
		{"30", 0, false},
		{"99999999999d", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	_, err := ParseDuration("7x")
	if want := `invalid duration "7x" (use Go syntax like 90s, 1h30m, or days like 3d)`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
