package builtin

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A nats.publish step whose subject is longer than the server's
// max_control_line (4 KiB by default) fails as invalid input; the NATS
// server would close the executor's connection for good, which weft server
// shares with the store, the orchestrator, the API and the triggers.
func TestALongPublishSubjectKeepsTheConnection(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(s.Shutdown)
	var disconnects atomic.Int64
	nc, err := nats.Connect(s.ClientURL(), nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
		disconnects.Add(1)
		t.Logf("disconnected: %v", err)
	}), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { t.Logf("async error: %v", err) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subject := "orders." + strings.Repeat("a", 5000)
	_, err = run(t, Config{NATS: nc}, "nats.publish", map[string]any{"subject": subject, "data": "x"})
	_ = nc.Flush() // a round trip: the server has read whatever was sent
	if nc.IsClosed() {
		t.Fatalf("a step's %d-byte subject closed the shared NATS connection for good (no reconnect); step error: %v", len(subject), err)
	}
	if n := disconnects.Load(); n > 0 {
		t.Fatalf("a step's %d-byte subject made the NATS server drop the shared connection (%d disconnects); step error: %v", len(subject), n, err)
	}
	if err == nil {
		t.Fatal("a subject over max_control_line was reported as published")
	}
	taskErr(t, err, "invalid_input", true)
}

// README: "So a step cannot purge or delete a stream". A nats.publish step
// with the header Nats-Rollup: all would purge every other message of a
// stream that allows rollups (allow_rollup_hdrs): the header is refused.
func TestARollupHeaderIsRefused(t *testing.T) {
	nc := startNATS(t)
	ctx, js, st := streamOn(t, nc, jetstream.StreamConfig{Name: "LEDGER", Subjects: []string{"ledger.>"}, AllowRollup: true})
	for i := 0; i < 5; i++ {
		if _, err := js.Publish(ctx, "ledger.entry."+strconv.Itoa(i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := run(t, Config{NATS: nc}, "nats.publish", map[string]any{"subject": "ledger.x", "data": "gone",
		"headers": map[string]any{"nats-rollup": "all"}})
	taskErr(t, err, "invalid_input", true)
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 {
		t.Fatalf("stream LEDGER has %d messages after a step's refused publish, want 5", info.State.Msgs)
	}
}

// JetStream's other control headers are refused too: a schedule would
// make the server publish later to another subject of the stream (one the
// step's own subject checks never saw), a TTL would make the message
// vanish. Nats-Msg-Id, a publisher's dedup, is a step's to set.
func TestJetStreamControlHeadersAreRefused(t *testing.T) {
	nc := startNATS(t)
	ctx, _, st := streamOn(t, nc, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, AllowMsgTTL: true, AllowMsgSchedules: true})
	for _, h := range []map[string]any{
		{"Nats-Schedule": "@at " + time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "Nats-Schedule-Target": "orders.elsewhere"},
		{"nats-ttl": "1s"},
		{"Nats-Expected-Last-Sequence": "0"},
	} {
		_, err := run(t, Config{NATS: nc}, "nats.publish", map[string]any{"subject": "orders.x", "data": "x", "jetstream": true, "headers": h})
		taskErr(t, err, "invalid_input", true)
	}
	if _, err := run(t, Config{NATS: nc}, "nats.publish", map[string]any{"subject": "orders.x", "data": "x", "jetstream": true,
		"headers": map[string]any{"Nats-Msg-Id": "order-1"}}); err != nil {
		t.Fatalf("a publish with Nats-Msg-Id: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream ORDERS has %d messages, want the one published with Nats-Msg-Id", info.State.Msgs)
	}
}

// streamOn makes a stream of cfg on nc for a test, with a context bounded
// for the test's requests.
func streamOn(t *testing.T, nc *nats.Conn, cfg jetstream.StreamConfig) (context.Context, jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, js, st
}
