package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// smallStoreMiB is the JetStream file store of the no-space tests: far less
// than the trigger failures' TriggerFailuresMaxBytes.
const smallStoreMiB = 8

// startSmall runs a NATS server whose JetStream may store smallStoreMiB.
func startSmall(t *testing.T) *natstest.Server {
	return natstest.StartWith(t, func(o *server.Options) { o.JetStreamMaxStore = smallStoreMiB << 20 })
}

// Weft opens on a JetStream with less room than the trigger failures'
// usual bound (which JetStream reserves when it makes the stream): the
// stream is made with a bound that fits, and the other streams are made.
func TestOpenOnASmallStore(t *testing.T) {
	nc := startSmall(t).Connect(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := eventstore.Open(ctx, nc, eventstore.Config{}); err != nil {
		t.Fatalf("open on a %d MiB store: %v", smallStoreMiB, err)
	}
	// Opening again keeps the bound it has.
	if _, err := eventstore.Open(ctx, nc, eventstore.Config{}); err != nil {
		t.Fatalf("open again: %v", err)
	}
	boundWithinSmallStore(ctx, t, nc)
}

// An append to a JetStream that has no room left fails with ErrNoSpace,
// whose message says so, and succeeds once room is made.
func TestAppendWithoutRoomIsErrNoSpace(t *testing.T) {
	ns := startSmall(t)
	nc := ns.Connect(t)
	ctx := t.Context()
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	makeRoom := natstest.Fill(t, nc)
	_, err = s.Append(ctx, "full-1", 0, started("full-1"))
	if !errors.Is(err, eventstore.ErrNoSpace) || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("append to a full store: %v; want ErrNoSpace", err)
	}
	makeRoom()
	if _, err := s.Append(ctx, "full-1", 0, started("full-1")); err != nil {
		t.Fatalf("append once room is made: %v", err)
	}
}

// On a NATS cluster whose servers have less room than the trigger
// failures' usual bound, the meta leader refuses the stream's placement
// ("no suitable peers for placement", insufficient storage), not with a
// server's no-room error: the stream is made with a bound that fits all
// the same, and the store opens.
func TestOpenOnASmallCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node NATS cluster")
	}
	c := natstest.StartClusterWith(t, 3, func(o *server.Options) { o.JetStreamMaxStore = smallStoreMiB << 20 })
	nc := c.Connect(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// A loaded machine may have the meta leader miss a peer for a moment
	// after the cluster was ready: the open is made again then, within a
	// minute, but never for a placement refused for storage.
	var err error
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if _, err = eventstore.Open(ctx, nc, eventstore.Config{Replicas: 3}); err == nil {
			break
		}
		if strings.Contains(err.Error(), "insufficient storage") || time.Now().After(deadline) {
			t.Fatalf("open on a cluster of %d MiB stores: %v", smallStoreMiB, err)
		}
		t.Logf("open on the cluster: %v; again", err)
	}
	boundWithinSmallStore(ctx, t, nc)
}

// boundWithinSmallStore fails t unless the trigger failures stream nc
// reaches is bounded within a small store's room.
func boundWithinSmallStore(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, eventstore.TriggerFailuresStream)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.MaxBytes <= 0 || c.MaxBytes > smallStoreMiB<<20 {
		t.Errorf("trigger failures MaxBytes %d; want a bound within the %d MiB store", c.MaxBytes, smallStoreMiB)
	}
}
