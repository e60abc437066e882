package eventstore_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// changes counts the requests on nc's server that create or change
// streams and consumers.
func changes(t *testing.T, nc *nats.Conn) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	for _, subj := range []string{"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
		"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>"} {
		sub, err := nc.Subscribe(subj, func(*nats.Msg) { n.Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return &n
}

// retention opens and stops a feed of runs due for deletion, as an
// orchestrator does at start.
func retention(t *testing.T, s *eventstore.Store) {
	t.Helper()
	f, err := s.Feed(context.Background(), eventstore.SourceRetention, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.Stop()
}

// Opening a store that is set up already looks everything up and changes
// nothing: a part starting beside others adds no work for the cluster.
func TestOpenAgainChangesNothing(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTaskConsumer(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	retention(t, s)
	watch := ns.Connect(t)
	n := changes(t, watch)
	again, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := again.EnsureTaskConsumer(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	retention(t, again)
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 0 {
		t.Errorf("opening again made %d create or update requests, want 0", got)
	}
}

// A store opened with another setting updates what lacks it, and keeps
// what others set (the trigger stream's subjects).
func TestOpenUpdatesWhatDiffers(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{DuplicateWindow: time.Minute, OrchestratorAckWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTriggerSubjects(ctx, func(context.Context, []string) []string { return []string{"orders.>"} }); err != nil {
		t.Fatal(err)
	}
	if _, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{DuplicateWindow: 2 * time.Minute, OrchestratorAckWait: 7 * time.Second}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{eventstore.HistoryStream, eventstore.ResultsStream, eventstore.TriggersStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.Duplicates; got != 2*time.Minute {
			t.Errorf("%s: duplicate window %s, want 2m", name, got)
		}
	}
	st, err := js.Stream(ctx, eventstore.TriggersStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != "orders.>" {
		t.Errorf("trigger stream subjects %v, want [orders.>]", got)
	}
	c, err := js.Consumer(ctx, eventstore.HistoryStream, eventstore.ExternalConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.AckWait; got != 7*time.Second {
		t.Errorf("%s: ack wait %s, want 7s", eventstore.ExternalConsumer, got)
	}
}

// Parts started together open the store at once on a fresh server: every
// Open succeeds, and the store they share works.
func TestOpenTogether(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const parts = 6
	stores := make([]*eventstore.Store, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		nc := ns.Connect(t)
		wg.Go(func() {
			if stores[i], errs[i] = eventstore.Open(ctx, nc, eventstore.Config{}); errs[i] == nil {
				errs[i] = stores[i].EnsureTaskConsumer(ctx, "echo")
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
	}
	if _, err := stores[0].Append(ctx, "wf-together", 0, started("wf-together")); err != nil {
		t.Fatal(err)
	}
	msgs, err := stores[parts-1].Read(ctx, "wf-together", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Read = %d records, %v; want 1", len(msgs), err)
	}
}

// The history allows direct gets while it has one replica, and a history
// made without them (by an earlier version) gets them at the next Open.
func TestHistoryDirectWhileAlone(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: eventstore.HistoryStream, Subjects: []string{"weft.h.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := st.CachedInfo().Config; !cfg.AllowDirect || cfg.Replicas != 1 {
		t.Fatalf("history: allow direct %v with %d replicas, want direct gets with one", cfg.AllowDirect, cfg.Replicas)
	}
	// Reads answer through them.
	if _, err := s.Append(ctx, "wf-direct", 0, started("wf-direct")); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Read(ctx, "wf-direct", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Read = %d records, %v; want 1", len(msgs), err)
	}
}

// A store opened while the history allowed direct gets still reads it
// once it no longer does (another part turned them off: a change of
// replicas from 1): the direct get nobody answers refreshes its view of
// the stream, and the read goes to the leader.
func TestHistoryReadAfterDirectGetsStop(t *testing.T) {
	ns := natstest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "wf-stop", 0, started("wf-stop")); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Read(ctx, "wf-stop", 0)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Read = %d records, %v; want 1", len(msgs), err)
	}
	if _, err := s.First(ctx, "wf-stop"); err != nil {
		t.Fatalf("First: %v", err)
	}
}
