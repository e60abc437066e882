package eventstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// closingSuffix ends the subject of a record that closes its workflow.
const closingSuffix = ".end"

// Follower tells which workflows' histories grew, from the moment it was
// made on: one ordered consumer on the history stream, however many
// workflows its caller is interested in. It sees records only once the
// stream has stored them, so a read after a record was seen finds it.
type Follower struct {
	cons jetstream.Consumer
}

// FollowClosings returns a Follower of the records that close workflows.
func (s *Store) FollowClosings(ctx context.Context) (*Follower, error) {
	return s.follow(ctx, historyPrefix+"*"+closingSuffix)
}

// FollowHistories returns a Follower of every history record.
func (s *Store) FollowHistories(ctx context.Context) (*Follower, error) {
	return s.follow(ctx, historyPrefix+">")
}

func (s *Store) follow(ctx context.Context, filter string) (*Follower, error) {
	cons, err := s.history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{filter},
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: follow %s: %w", filter, err)
	}
	return &Follower{cons: cons}, nil
}

// Run calls fn with the workflow id and stream sequence of each record
// stored after the Follower was made, in stream order, until ctx ends
// (nil) or the consumer fails (its error: records may have been missed
// since, and a new Follower is needed).
func (f *Follower) Run(ctx context.Context, fn func(wf string, seq uint64)) error {
	it, err := f.cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("eventstore: follow: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("eventstore: follow: %w", err)
		}
		wf, _, _ := strings.Cut(strings.TrimPrefix(m.Subject(), historyPrefix), ".")
		var seq uint64
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
		fn(wf, seq)
	}
}
