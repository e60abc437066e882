package embedded

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Two weft server processes given the same --data (and different
// --nats-addr: the default address only refuses the second by accident)
// must not both run JetStream on it: each keeps its own idea of every
// stream's state and writes the same block files. The second start is
// refused. Without that, both acknowledged a write at the same sequence,
// and after a restart at most one of them was there.
func TestASecondServerOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stopA := func() { a.Shutdown(); a.WaitForShutdown() }
	defer stopA()
	jsA := connect(t, a)
	if _, err := jsA.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := jsA.Publish(ctx, "t.1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	// Written to its block file (not fsynced: the interval setting).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if si, err := jsA.Stream(ctx, "T"); err == nil && si.CachedInfo().State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first message is not stored")
		}
		time.Sleep(10 * time.Millisecond)
	}

	b, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		if !strings.Contains(err.Error(), "in use by another weft server") {
			t.Fatalf("the second server is refused with %q; want it to say the directory is in use", err)
		}
		// Once the first stops, the directory starts again.
		stopA()
		c, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir})
		if err != nil {
			t.Fatalf("the data directory does not start again once its server stopped: %v", err)
		}
		c.Shutdown()
		c.WaitForShutdown()
		return
	}
	stopB := func() { b.Shutdown(); b.WaitForShutdown() }
	defer stopB()
	// What the second server costs: each acknowledges its own write.
	jsB := connect(t, b)
	ackA, errA := jsA.Publish(ctx, "t.1", []byte("from-a"))
	ackB, errB := jsB.Publish(ctx, "t.1", []byte("from-b"))
	stopA()
	stopB()
	c, err := Start(Config{Addr: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("a second server started on the data directory in use; afterwards the directory no longer starts: %v", err)
	}
	defer func() { c.Shutdown(); c.WaitForShutdown() }()
	var held []string
	if s, err := connect(t, c).Stream(ctx, "T"); err == nil {
		for seq := uint64(1); seq <= 3; seq++ {
			if m, err := s.GetMsg(ctx, seq); err == nil {
				held = append(held, fmt.Sprintf("%d:%s", seq, m.Data))
			}
		}
	} else {
		held = append(held, "stream: "+err.Error())
	}
	t.Fatalf("a second server started on a data directory another one runs on: a write to each was acknowledged "+
		"(a: %s %v, b: %s %v); after a restart the stream holds %v", seqOf(ackA), errA, seqOf(ackB), errB, held)
}

func connect(t *testing.T, ns *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func seqOf(a *jetstream.PubAck) string {
	if a == nil {
		return "no ack"
	}
	return fmt.Sprintf("seq %d", a.Sequence)
}
