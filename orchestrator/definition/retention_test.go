package definition

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		field string
		want  time.Duration
	}{
		{"", 0},
		{"retention: 30d\n", 30 * 24 * time.Hour},
		{"retention: 2s\n", 2 * time.Second},
		{"retention: 1d12h\n", 36 * time.Hour},
		{"retention: 90m\n", 90 * time.Minute},
	} {
		d, err := Parse([]byte("name: r\n" + tc.field + "steps: [{id: a, task: t}]\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.field, err)
		}
		if d.Retention != tc.want {
			t.Errorf("%q: Retention = %v, want %v", tc.field, d.Retention, tc.want)
		}
	}
}

func TestParseRetentionInvalid(t *testing.T) {
	for _, tc := range []struct{ field, want string }{
		{"retention: 0s", `field "retention": must be positive`},
		{"retention: -1d", `field "retention": must be positive`},
		{"retention: 30", `field "retention": must be a duration string`},
		{"retention: soon", `field "retention": invalid duration "soon"`},
		{"retention: [1d]", `field "retention"`},
		{"retension: 1d", `retention`},
	} {
		_, err := Parse([]byte("name: r\n" + tc.field + "\nsteps: [{id: a, task: t}]\n"))
		var perr *Error
		if !errors.As(err, &perr) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.field, err, tc.want)
		}
	}
}
