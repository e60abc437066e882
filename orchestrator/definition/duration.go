package definition

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a duration in Go syntax (time.ParseDuration: "90s",
// "1h30m", "250ms") that may also use a "d" unit for days of 24 hours
// ("3d", "1d12h", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("invalid duration %q (use Go syntax like 90s, 1h30m, or days like 3d)", s)
	if !strings.Contains(s, "d") {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, bad
		}
		return d, nil
	}
	// Rewrite every "<number>d" as hours, leaving the rest to Go.
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		k := j
		for k < len(s) && s[k] != '.' && (s[k] < '0' || s[k] > '9') {
			k++
		}
		if s[j:k] == "d" {
			n, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil || i == j {
				return 0, bad
			}
			b.WriteString(strconv.FormatFloat(n*24, 'f', -1, 64) + "h")
		} else {
			b.WriteString(s[i:k])
		}
		i = k
	}
	d, err := time.ParseDuration(b.String())
	if err != nil {
		return 0, bad
	}
	return d, nil
}
