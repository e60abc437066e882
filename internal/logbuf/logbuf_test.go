package logbuf

import (
	"strings"
	"sync"
	"testing"
)

// Writers and a reader at once lose nothing (run with -race).
func TestConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "x"); got != 400 {
		t.Fatalf("%d bytes written, want 400", got)
	}
}
