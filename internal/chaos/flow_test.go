package chaos

import (
	"testing"
	"time"
)

// A call may be charged to its own second or the one before: a second
// may take twice the limit after one that took none, but k seconds in a
// row no more than limit*(k+1) calls (a limit kept per executor of two
// lets through twice the limit).
func TestOverRate(t *testing.T) {
	base := time.Unix(1000, 0)
	at := func(spec ...float64) []RatedCall {
		var out []RatedCall
		for _, s := range spec {
			out = append(out, RatedCall{At: base.Add(time.Duration(s * float64(time.Second)))})
		}
		return out
	}
	burst := func(start float64, n int) []float64 {
		var out []float64
		for j := range n {
			out = append(out, start+float64(j)*0.01)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		calls []float64
		over  int
	}{
		{"within the limit", append(burst(0.1, 5), burst(1.1, 5)...), 0},
		{"twice after an idle second", burst(1.1, 10), 0},
		{"one beyond limit*(k+1)", append(append(burst(0.1, 5), burst(1.1, 5)...), burst(2.1, 11)...), 1},
		{"per executor", append(append(burst(1.1, 10), burst(2.1, 10)...), burst(3.1, 10)...), 10},
	} {
		if got := len(overRate(at(tc.calls...), 5, time.Second)); got != tc.over {
			t.Errorf("%s: %d calls over; want %d", tc.name, got, tc.over)
		}
	}
}
