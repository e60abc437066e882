package node_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
)

// A NATS connection the server closes for good (here: a subject longer
// than its control line) closes Lost, for the process to stop and be
// started again; a node stopped by its owner does not.
func TestLostIsClosedWhenTheConnectionIs(t *testing.T) {
	ns := natstest.Start(t)
	start := func() *node.Node {
		n, err := node.Start(context.Background(), node.Config{NATSURL: ns.URL(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	stopped := start()
	if err := stopped.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped.Lost():
		t.Fatal("Lost closed by Stop")
	default:
	}

	n := start()
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	_ = n.NC.Publish("x."+strings.Repeat("a", 5000), nil)
	_ = n.NC.Flush()
	select {
	case <-n.Lost():
	case <-time.After(10 * time.Second):
		t.Fatalf("Lost not closed; the connection is closed: %v", n.NC.IsClosed())
	}
}

// A node says when it loses NATS and when it has it back, once each: the
// calls failing meanwhile do not say that the connection is the cause.
func TestLosingNATSIsLoggedOnceAndSoIsReconnecting(t *testing.T) {
	ns := natstest.Start(t)
	var logs lockedBuffer
	n, err := node.Start(context.Background(), node.Config{NATSURL: ns.URL(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ns.Restart()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "reconnected to NATS"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reconnection logged; logs:\n%s", logs.String())
		}
	}
	out := logs.String()
	if c := strings.Count(out, "lost the connection to NATS"); c != 1 || strings.Count(out, "reconnected to NATS") != 1 ||
		strings.Index(out, "lost the connection") > strings.Index(out, "reconnected") {
		t.Errorf("want one loss, then one reconnection, logged; logs:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
