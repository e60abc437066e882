package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// closingSuffix ends the subject of a record that closes its workflow,
// externalSuffix that of one appended from outside (a start, signal,
// cancel or redrive).
const (
	closingSuffix  = ".end"
	externalSuffix = ".ext"
)

// Follower delivers every history record stored from the moment it was
// made on, in stream order: one ordered consumer on the history stream,
// however many workflows its caller is interested in. It sees records
// only once the stream has stored them, so a read after a record was
// seen finds it.
type Follower struct {
	cons    jetstream.Consumer
	from    uint64
	stream  jetstream.Stream
	created time.Time
}

// ErrHistoryReplaced: the history stream a Follower followed was deleted
// and made again (an operator recreated it). Its sequences start over:
// whatever was read or followed from the old one must be forgotten.
var ErrHistoryReplaced = errors.New("eventstore: the history stream was made again")

// followCheck is how often a Follower asks whether its stream is still
// the one it began on.
var followCheck = 5 * time.Second

// From is the stream sequence the Follower began after: it delivers every
// record stored after it, and none up to it.
func (f *Follower) From() uint64 { return f.from }

// Created is when the history stream the Follower follows was made: a
// history stream made again (an operator recreated it) has another, and
// its sequences started over.
func (f *Follower) Created() time.Time { return f.created }

// HistoriesLastSeq returns the history stream's last sequence, as its
// leader has it: every record stored before the call is at or below it.
// The API's read barrier asks for it on behalf of every poll, so of the
// stream's info it decodes the last sequence alone.
func (s *Store) HistoriesLastSeq(ctx context.Context) (uint64, error) {
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.INFO."+HistoryStream, nil)
	if err != nil {
		return 0, fmt.Errorf("eventstore: histories' last sequence: %w", err)
	}
	var info struct {
		State struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
		Error *jetstream.APIError `json:"error"`
	}
	switch err := json.Unmarshal(m.Data, &info); {
	case err != nil:
		return 0, fmt.Errorf("eventstore: histories' last sequence: stream info answered %q: %w", m.Data, err)
	case info.Error != nil:
		return 0, fmt.Errorf("eventstore: histories' last sequence: %w", info.Error)
	}
	return info.State.LastSeq, nil
}

// Followed is a history record as a Follower delivers it.
type Followed struct {
	// Workflow is the id of the workflow whose history it is.
	Workflow string
	// Seq is its stream sequence and Prev that of the workflow's record
	// before it (0 for the first); HasPrev is false when the record
	// carries no link.
	Seq, Prev uint64
	HasPrev   bool

	subject string
	time    time.Time
	data    []byte
}

// Closes reports whether the record closes its workflow: it is stored
// under the workflow's closing subject, or (written before there was one)
// its last event closes the workflow.
func (f Followed) Closes() bool {
	switch f.subject {
	case historyPrefix + f.Workflow + closingSuffix:
		return true
	case historyPrefix + f.Workflow + ".ev":
		_, last, err := events.Peek(f.data)
		return err == nil && last.Terminal()
	}
	return false
}

// Message decodes the record.
func (f Followed) Message() Message { return decodeMsg(f.Seq, f.subject, f.time, f.data) }

// HistoryCreated returns when the history stream the store opened was
// made (zero when not known).
func (s *Store) HistoryCreated() time.Time { return s.history.CachedInfo().Created }

// FollowHistories returns a Follower of every history record stored from
// now on. It starts at an explicit sequence, so a consumer the client
// makes again (after a reconnect, say) resumes there rather than at the
// records new by then.
func (s *Store) FollowHistories(ctx context.Context) (*Follower, error) {
	info, err := s.history.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventstore: follow the histories: %w", err)
	}
	cons, err := s.history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{historyPrefix + ">"},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       info.State.LastSeq + 1,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: follow the histories: %w", err)
	}
	return &Follower{cons: cons, from: info.State.LastSeq, stream: s.history, created: info.Created}, nil
}

// followHeartbeat is how often a follower's consumer says it is there
// while it has nothing to deliver; two missed make the client make it
// again.
const followHeartbeat = time.Second

// Run calls fn with each record stored after the Follower was made, in
// stream order, until ctx ends (nil) or the consumer fails (its error:
// records may have been missed since, and a new Follower is needed). A
// history stream made again since the Follower began ends it with
// ErrHistoryReplaced (it looks every few seconds): a consumer would
// otherwise wait, silent, for the new stream to reach the old one's
// sequences.
func (f *Follower) Run(ctx context.Context, fn func(Followed)) error {
	// On a cluster the first request of a consumer just made is now and
	// then not passed on to the node that leads it, and the consumer
	// delivers nothing; two missed heartbeats make the client make it
	// again (with its default, 5 s, records reached the waiters ten
	// seconds late).
	it, err := f.cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return fmt.Errorf("eventstore: follow: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var replaced atomic.Bool
	checked := make(chan struct{})
	defer func() { <-checked }()
	watch, unwatch := context.WithCancel(ctx)
	defer unwatch()
	go func() {
		defer close(checked)
		f.watchStream(watch, func() {
			replaced.Store(true)
			it.Stop()
		})
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if replaced.Load() {
				return ErrHistoryReplaced
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("eventstore: follow: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			// Never passed by: a record skipped could be a run's close.
			return fmt.Errorf("eventstore: follow: a record's metadata: %w", err)
		}
		subj := m.Subject()
		wf, _, _ := strings.Cut(strings.TrimPrefix(subj, historyPrefix), ".")
		r := Followed{Workflow: wf, Seq: md.Sequence.Stream, subject: subj, time: md.Timestamp, data: m.Data()}
		if v := m.Headers().Get(prevHeader); v != "" {
			if prev, err := strconv.ParseUint(v, 10, 64); err == nil && prev < r.Seq {
				r.Prev, r.HasPrev = prev, true
			}
		}
		fn(r)
	}
}

// watchStream calls gone once the history stream is not the one f began
// on (made again since: another creation time), and returns then or when
// ctx ends. A look that fails is made again at the next tick.
func (f *Follower) watchStream(ctx context.Context, gone func()) {
	t := time.NewTicker(followCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		info, err := f.stream.Info(ctx)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			// Deleted, not made again yet: the next look tells.
		case err == nil && !info.Created.Equal(f.created):
			gone()
			return
		}
	}
}
