package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// The embedded NATS server keeps one copy: `weft server --replicas 3`
// without --nats-url is refused at once, naming the flag, rather than
// retried for a minute as a NATS not ready yet.
func TestEmbeddedServerRefusesReplicas(t *testing.T) {
	err := run(context.Background(), []string{"server", "--data", t.TempDir(), "--replicas", "3", "--addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--replicas 3") || !strings.Contains(err.Error(), "embedded") {
		t.Fatalf("weft server --replicas 3 (embedded): %v; want a --replicas error", err)
	}
}
