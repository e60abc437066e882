package main

import (
	"runtime"
	"testing"
)

// Beside an embedded NATS server reads take turns, one a core, unless
// --max-reads says otherwise (0: no bound).
func TestEmbeddedReads(t *testing.T) {
	for _, c := range []struct {
		given bool
		flag  int
		want  int
	}{{false, 0, runtime.GOMAXPROCS(0)}, {true, 0, 0}, {true, 3, 3}} {
		if got := embeddedReads(c.given, c.flag); got != c.want {
			t.Errorf("embeddedReads(%v, %d) = %d, want %d", c.given, c.flag, got, c.want)
		}
	}
}
