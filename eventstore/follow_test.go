package eventstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

// A follower made again by the client before it delivered anything (the
// server restarted, say) resumes where it began: a close stored while it
// was away is delivered, and seen to close the workflow.
func TestFollowerResumesAfterARestart(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	slow, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close)
	follower, err := eventstore.Open(ctx, slow, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	writer, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	seq, err := writer.AppendExternal(ctx, "f", &zero, "start/f", started("f"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := follower.FollowHistories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []eventstore.Followed
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = f.Run(rctx, func(r eventstore.Followed) {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
		})
	}()
	ns.Restart()
	// The writer is back long before the follower's connection is.
	var closeSeq uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		closeSeq, err = writer.Append(ctx, "f", seq, completed("done"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("append after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the close stored at %d while the follower was away was never delivered", closeSeq)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	r := got[0]
	if r.Workflow != "f" || r.Seq != closeSeq || !r.HasPrev || r.Prev != seq || !r.Closes() {
		t.Fatalf("delivered %+v; want the close of f at %d after %d", r, closeSeq, seq)
	}
	if m := r.Message(); m.Err != nil || len(m.Record.Events) != 1 || m.Record.Events[0].Type != events.TypeWorkflowCompleted {
		t.Fatalf("the record reads %+v", m)
	}
}

// HistoriesLastSeq is the history stream's last sequence: each append
// moves it to the appended record's, and a stream that is gone is an
// error, not a sequence of 0.
func TestHistoriesLastSeqIsTheLastAppend(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	nc := ns.Connect(t)
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	seq, err := s.AppendExternal(ctx, "l", &zero, "start/l", started("l"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if got, err := s.HistoriesLastSeq(ctx); err != nil || got != seq {
			t.Fatalf("after append %d at %d: HistoriesLastSeq = %d, %v", i, seq, got, err)
		}
		if seq, err = s.Append(ctx, "l", seq, completed(i)); err != nil {
			t.Fatal(err)
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, eventstore.HistoryStream); err != nil {
		t.Fatal(err)
	}
	if got, err := s.HistoriesLastSeq(ctx); err == nil {
		t.Fatalf("with the stream deleted: HistoriesLastSeq = %d and no error", got)
	}
}
