package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRetentionFlag(t *testing.T) {
	for _, cmd := range []string{"server", "orchestrator"} {
		for _, bad := range []string{"0s", "-1d", "soon"} {
			err := run(context.Background(), []string{cmd, "--retention", bad}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "--retention "+bad) {
				t.Errorf("weft %s --retention %s: %v, want a --retention error", cmd, bad, err)
			}
		}
	}
	for in, want := range map[string]time.Duration{"": 0, "30d": 30 * 24 * time.Hour, "2s": 2 * time.Second} {
		o := orchFlags{retention: in}
		if got := o.config().Retention; got != want {
			t.Errorf("--retention %q: Retention %v, want %v", in, got, want)
		}
	}
}
