package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
)

// followCheck follows every history record through a disturbance, as the
// API's follower of histories does (eventstore.Follower), and then
// compares what it was given with what the stream holds: a record stored
// while the follower ran without failing must have been given to it.
type followCheck struct {
	nc     *nats.Conn
	from   uint64
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	got map[uint64]bool
	// err is the follower's failure (nil while it runs or after it was
	// stopped), and last the last record given to it before.
	err  error
	last uint64
}

// startFollowCheck starts a Follower of the histories on a connection of
// its own.
func (h *Harness) startFollowCheck(ctx context.Context) (*followCheck, error) {
	nc, store, err := h.openStore(ctx)
	if err != nil {
		return nil, err
	}
	f, err := store.FollowHistories(ctx)
	if err != nil {
		nc.Close()
		return nil, err
	}
	fctx, cancel := context.WithCancel(context.Background())
	fc := &followCheck{nc: nc, from: f.From(), cancel: cancel, done: make(chan struct{}), got: map[uint64]bool{}}
	go func() {
		defer close(fc.done)
		err := f.Run(fctx, func(r eventstore.Followed) {
			fc.mu.Lock()
			fc.got[r.Seq], fc.last = true, r.Seq
			fc.mu.Unlock()
		})
		fc.mu.Lock()
		fc.err = err
		fc.mu.Unlock()
	}()
	return fc, nil
}

// check stops the follower once it has been given every record stored
// (or within a minute), and returns the history records stored after it
// began that it was not given while it ran (none may be missing) and how
// many it compared. A follower that failed reports its error; records
// after its failure are not counted (its user makes a new follower,
// which reads them).
func (fc *followCheck) check(ctx context.Context) (missed []uint64, compared int, failed error, err error) {
	defer fc.nc.Close()
	js, err := jetstream.New(fc.nc)
	if err != nil {
		return nil, 0, nil, err
	}
	stream, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		return nil, 0, nil, err
	}
	last := stream.CachedInfo().State.LastSeq
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	_ = poll(wctx, 100*time.Millisecond, func() (bool, error) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		return fc.last >= last || fc.err != nil, nil
	})
	wcancel()
	fc.cancel()
	<-fc.done
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if last <= fc.from {
		return nil, 0, fc.err, nil
	}
	// A stream just through a node's kill may not answer at once (no
	// responders while its leader is elected): those errors are tried
	// again, for up to a minute without a record read.
	var cons jetstream.Consumer
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	retryUntil := time.Now().Add(time.Minute)
	if perr := poll(rctx, 200*time.Millisecond, func() (bool, error) {
		cons, err = stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{"weft.h.>"},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    fc.from + 1,
		})
		return err == nil || !errors.Is(err, nats.ErrNoResponders), nil
	}); perr != nil || err != nil {
		return nil, 0, nil, fmt.Errorf("read the histories back: %w", cmp.Or(err, perr))
	}
	upTo := last
	if fc.err != nil {
		upTo = fc.last
	}
	for seq, empty := uint64(0), 0; seq < upTo; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if errors.Is(err, nats.ErrNoResponders) && time.Now().Before(retryUntil) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, 0, nil, fmt.Errorf("read the histories back: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, 0, nil, err
			}
			seq = md.Sequence.Stream
			if seq <= upTo {
				compared++
			}
			if seq <= upTo && !fc.got[seq] {
				missed = append(missed, seq)
			}
		}
		switch err := batch.Error(); {
		case err == nil, errors.Is(err, nats.ErrTimeout):
		case errors.Is(err, nats.ErrNoResponders) && time.Now().Before(retryUntil):
			time.Sleep(200 * time.Millisecond)
			continue
		default:
			return nil, 0, nil, fmt.Errorf("read the histories back: %w", err)
		}
		if n > 0 {
			retryUntil = time.Now().Add(time.Minute)
		}
		if n == 0 {
			if empty++; empty == 3 {
				break // the rest was deleted (retention)
			}
		} else {
			empty = 0
		}
	}
	slices.Sort(missed)
	return missed, compared, fc.err, nil
}
