package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
)

// Reads of whole histories (GetHistory, WatchWorkflow, weft export) on a
// three-node cluster each make a consumer, and now and then the first
// request for records of one just made never reaches the node leading
// it: the consumer delivers nothing. A read must then make it again
// promptly, not wait until it gives up: with the client's default
// heartbeat it gave up ("the stream holds records this read was not
// given") about one read in fifty, and weft export stopped there.
func TestReadFromOnAClusterNeverStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node NATS cluster and reads hundreds of histories")
	}
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := openOnCluster(ctx, t, c)
	const runs = 1000
	for i := range runs {
		wf := fmt.Sprintf("run-%d", i)
		var zero uint64
		seq, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf))
		if err != nil {
			t.Fatal(err)
		}
		// A busy cluster may answer an append as a conflict (a leader
		// elected meanwhile): the run's second record is then appended
		// after what its history holds, unless it is there.
		for try := 0; ; try++ {
			_, err := s.Append(ctx, wf, seq, completed(i))
			if err == nil {
				break
			}
			if !errors.Is(err, eventstore.ErrConflict) || try == 3 {
				t.Fatal(err)
			}
			n := 0
			if seq, err = s.ReadFrom(ctx, wf, 1, func(eventstore.Message) bool { n++; return true }); err != nil {
				t.Fatal(err)
			}
			if n == 2 {
				break
			}
		}
	}
	// A read that waits for a stalled consumer until the client's own
	// default heartbeat (5 s) notices takes ten seconds or more.
	const slow = 8 * time.Second
	for i := range runs {
		wf := fmt.Sprintf("run-%d", i)
		begun := time.Now()
		n := 0
		_, err := s.ReadFrom(ctx, wf, 1, func(eventstore.Message) bool { n++; return true })
		if took := time.Since(begun); err != nil || n != 2 || took > slow {
			t.Fatalf("read %d of %d (%s): %d records in %v, %v; want 2 within %v", i+1, runs, wf, n, took.Round(time.Millisecond), err, slow)
		}
	}
}

// A follower (what awaits and watches wait on) is made each time an API
// has someone waiting again, and on a cluster its consumer's first
// request for records may be lost as a read's may: the follower must make
// it again promptly. With the client's default heartbeat, a record then
// reached the API's waiters ten seconds or more after it was stored.
func TestFollowOnAClusterNeverStalls(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node NATS cluster and makes hundreds of followers")
	}
	c := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := openOnCluster(ctx, t, c)
	const followers = 300
	// Two missed heartbeats (2 s) and a consumer made again, on a loaded
	// machine; a follower that waits for the client's default takes 10 s
	// or more.
	const slow = 8 * time.Second
	for i := range followers {
		wf := fmt.Sprintf("run-%d", i)
		f, err := s.FollowHistories(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fctx, stop := context.WithCancel(ctx)
		got := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- f.Run(fctx, func(r eventstore.Followed) {
				if r.Workflow == wf {
					select {
					case got <- struct{}{}:
					default:
					}
				}
			})
		}()
		begun := time.Now()
		// A busy cluster may answer an append as a conflict (a leader
		// elected meanwhile): it is made again unless it was stored.
		for try := 0; ; try++ {
			var zero uint64
			_, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf))
			if err == nil || errors.Is(err, eventstore.ErrDuplicate) {
				break
			}
			if last, lerr := s.LastSeq(ctx, wf); lerr == nil && last > 0 {
				break
			}
			if try == 3 {
				t.Fatal(err)
			}
		}
		select {
		case <-got:
		case err := <-done:
			t.Fatalf("follower %d of %d ended: %v", i+1, followers, err)
		case <-time.After(slow):
			t.Fatalf("follower %d of %d: the record not followed within %v", i+1, followers, slow)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("follower %d: %v", i+1, err)
		}
		if took := time.Since(begun); took > slow {
			t.Fatalf("follower %d took %v", i+1, took)
		}
	}
}

// openOnCluster opens a store of three replicas on c. A loaded machine may
// have the meta leader miss a peer's heartbeat for a moment after the
// cluster was ready ("no suitable peers for placement"): the store is
// opened again until it opens, within a minute.
func openOnCluster(ctx context.Context, t *testing.T, c *natstest.Cluster) *eventstore.Store {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := eventstore.Open(ctx, c.Connect(t), eventstore.Config{Replicas: 3})
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Logf("open on the cluster: %v; again", err)
		time.Sleep(500 * time.Millisecond)
	}
}
