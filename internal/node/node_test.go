package node_test

import (
	"context"
	"log/slog"
	"strings"
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
