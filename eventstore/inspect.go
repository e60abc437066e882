package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// Reads for tools that check a running Weft from outside (weft doctor):
// they look at what JetStream holds and change nothing.

// OpenExisting attaches to the streams and buckets a Weft set up on nc,
// creating and changing nothing. The store serves reads of histories,
// snapshots, the index, definitions, pauses, slots and flow counts,
// timers and step command queues.
//
// Errors: ErrNotFound (wrapped) when NATS holds no Weft streams.
func OpenExisting(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	s, err := newStore(nc, cfg)
	if err != nil {
		return nil, err
	}
	js := s.js
	for _, st := range []struct {
		name string
		dst  *jetstream.Stream
	}{
		{HistoryStream, &s.history}, {ResultsStream, &s.results}, {TimersStream, &s.timers},
		{SnapshotStream, &s.snaps}, {"KV_" + WorkflowsBucket, &s.indexStream},
	} {
		if *st.dst, err = js.Stream(ctx, st.name); err != nil {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return nil, fmt.Errorf("stream %s (is this Weft's NATS?): %w", st.name, ErrNotFound)
			}
			return nil, fmt.Errorf("eventstore: stream %s: %w", st.name, err)
		}
	}
	s.sessionSeq = s.history.CachedInfo().State.LastSeq
	for _, kv := range []struct {
		name string
		dst  *jetstream.KeyValue
	}{{DefinitionsBucket, &s.defs}, {WorkflowsBucket, &s.index}} {
		if *kv.dst, err = js.KeyValue(ctx, kv.name); err != nil {
			if errors.Is(err, jetstream.ErrBucketNotFound) {
				return nil, fmt.Errorf("bucket %s (is this Weft's NATS?): %w", kv.name, ErrNotFound)
			}
			return nil, fmt.Errorf("eventstore: bucket %s: %w", kv.name, err)
		}
	}
	// A Weft from before pauses has no pauses bucket: nothing is paused;
	// likewise for the slots of definitions' concurrency.
	if s.pauses, err = js.KeyValue(ctx, PausesBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("eventstore: bucket %s: %w", PausesBucket, err)
	}
	if s.slots, err = js.KeyValue(ctx, SlotsBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("eventstore: bucket %s: %w", SlotsBucket, err)
	}
	if s.flow, err = js.KeyValue(ctx, FlowBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("eventstore: bucket %s: %w", FlowBucket, err)
	}
	return s, nil
}

// Summaries returns every entry of the workflow index, newest first.
func (s *Store) Summaries(ctx context.Context) ([]Summary, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := s.WatchListing(wctx)
	if err != nil {
		return nil, err
	}
	out, _ := l.Page(0, "", int(^uint(0)>>1), nil)
	return out, nil
}

// TimerState is where a workflow's timer stands in the timers stream.
type TimerState int

// Timer states.
const (
	// TimerMissing: neither scheduled nor fired and waiting.
	TimerMissing TimerState = iota
	// TimerScheduled: its schedule waits for its due time.
	TimerScheduled
	// TimerFired: it fired, and waits for an orchestrator to take it.
	TimerFired
)

// maxFiredScan bounds the schedules of one timer, and the fired timers of
// one workflow, that Timer looks through.
const maxFiredScan = 256

// Timer reports where wf's timer timerID stands and, when it is
// scheduled, when its earliest schedule fires (zero if that cannot be
// read). A timer that fired and waits for an orchestrator is fired,
// whatever schedules of it are left (a decision that lost its append
// schedules it at its own, later, time).
func (s *Store) Timer(ctx context.Context, wf, timerID string) (TimerState, time.Time, error) {
	sched := timerSchedPfx + wf + "." + timerID
	// Fired timers wait on the workflow's subject until an orchestrator acks them.
	fired := false
	_, err := scanOn(ctx, s.timers, timerFirePfx+wf, maxFiredScan, func(m *jetstream.RawStreamMsg) bool {
		by := m.Header.Get("Nats-Scheduler")
		t, err := events.DecodeTimer(m.Data)
		fired = by == sched || strings.HasPrefix(by, sched+".") || err == nil && t.TimerID == timerID
		return !fired
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("eventstore: fired timers of %s: %w", wf, err)
	}
	if fired {
		return TimerFired, time.Time{}, nil
	}
	var at time.Time
	scheduled := false
	// The schedules kept per time, and the one a version before that kept
	// under the timer's id alone.
	for _, filter := range []string{sched + ".>", sched} {
		_, err := scanOn(ctx, s.timers, filter, maxFiredScan, func(m *jetstream.RawStreamMsg) bool {
			// Zero when the schedule is not one this version writes.
			t, _ := time.Parse(time.RFC3339, strings.TrimPrefix(m.Header.Get("Nats-Schedule"), "@at "))
			if !scheduled || t.Before(at) {
				at = t
			}
			scheduled = true
			return true
		})
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("eventstore: timer %s of %s: %w", timerID, wf, err)
		}
	}
	if scheduled {
		return TimerScheduled, at, nil
	}
	return TimerMissing, time.Time{}, nil
}

// scanOn calls fn with st's messages on subject (a filter), oldest first,
// until fn returns false or max of them were read, each read retried as
// retryRead does. It reports whether it read to the last of them.
func scanOn(ctx context.Context, st jetstream.Stream, subject string, max int, fn func(*jetstream.RawStreamMsg) bool) (all bool, err error) {
	for seq, n := uint64(1), 0; n < max; n++ {
		m, err := retryRead(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
			return st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		if !fn(m) {
			return false, nil
		}
		seq = m.Sequence + 1
	}
	return false, nil
}

// LastTaskCommand returns the history sequence of wf's latest step command
// of task type taskType.
//
// Errors: ErrNotFound when wf has none.
func (s *Store) LastTaskCommand(ctx context.Context, wf, taskType string) (uint64, error) {
	return s.lastOn(ctx, s.historyGet, historyPrefix+wf+".task."+taskType)
}

// LastExternal returns the history sequence of wf's latest record appended
// from outside the orchestrator (a start, signal or cancel).
//
// Errors: ErrNotFound when wf has none.
func (s *Store) LastExternal(ctx context.Context, wf string) (uint64, error) {
	return s.lastOn(ctx, s.historyGet, historyPrefix+wf+externalSuffix)
}

// LastClose returns the history sequence of wf's latest record that
// closed it (completed, failed or canceled it).
//
// Errors: ErrNotFound when none has.
func (s *Store) LastClose(ctx context.Context, wf string) (uint64, error) {
	return s.lastOn(ctx, s.historyGet, historyPrefix+wf+closingSuffix)
}

// ResultWaiting reports whether a result for wf waits in the results
// stream for an orchestrator to record it.
func (s *Store) ResultWaiting(ctx context.Context, wf string) (bool, error) {
	_, err := s.lastOn(ctx, s.resultsGet, resultsPrefix+wf)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// maxResultScan bounds the waiting results of one workflow
// AttemptReported looks through.
const maxResultScan = 32

// AttemptReported reports whether an outcome of attempt attempt (or a
// later one) of the step command at sequence cmd (path, scheduling gen)
// may wait in the results stream for an orchestrator to record it:
// reported, and not yet in history. A result held for flow control is not
// an attempt's outcome. It counts the workflow's waiting results first
// (one request): with none it answers false, and with more than
// maxResultScan (the orchestrators lag far behind the run) true without
// looking through them, so a command's delivery never reads them all.
func (s *Store) AttemptReported(ctx context.Context, wf string, cmd uint64, path string, gen, attempt int) (bool, error) {
	subject := resultsPrefix + wf
	info, err := retryRead(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) {
		return s.results.Info(ctx, jetstream.WithSubjectFilter(subject))
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, nil // no stream, no result waiting in it
	}
	if err != nil {
		return false, fmt.Errorf("eventstore: results waiting for %s: %w", wf, err)
	}
	switch waiting := info.State.Subjects[subject]; {
	case waiting == 0:
		return false, nil
	case waiting > maxResultScan:
		return true, nil
	}
	found := false
	all, err := scanOn(ctx, s.results, subject, maxResultScan, func(m *jetstream.RawStreamMsg) bool {
		r, err := events.DecodeResult(m.Data)
		found = err == nil && r.Cmd == cmd && r.Path == path && r.Gen == gen && r.Attempt >= attempt && attempted(r.Outcome)
		return !found
	})
	if err != nil {
		return false, fmt.Errorf("eventstore: results waiting for %s: %w", wf, err)
	}
	// Not all read: more came while it looked, and the orchestrators lag.
	return found || !all, nil
}

// attempted reports whether o is an attempt's outcome, not word of its
// flow control.
func attempted(o events.Outcome) bool {
	return o == events.OutcomeCompleted || o == events.OutcomeAttemptFailed || o == events.OutcomeFailed
}

// resultsGet is retryRead of get on the results stream.
func (s *Store) resultsGet(ctx context.Context, get func(context.Context, jetstream.Stream) (*jetstream.RawStreamMsg, error)) (*jetstream.RawStreamMsg, error) {
	return retryRead(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) { return get(ctx, s.results) })
}

// streamGet reads a message of one stream with get, retried as retryRead
// does (historyGet, resultsGet).
type streamGet func(ctx context.Context, get func(context.Context, jetstream.Stream) (*jetstream.RawStreamMsg, error)) (*jetstream.RawStreamMsg, error)

// lastOn returns the sequence of the last message on subject, read
// through a stream's streamGet.
func (s *Store) lastOn(ctx context.Context, through streamGet, subject string) (uint64, error) {
	m, err := through(ctx, func(ctx context.Context, st jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return st.GetLastMsgForSubject(ctx, subject)
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("%s: %w", subject, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("eventstore: last message on %s: %w", subject, err)
	}
	return m.Sequence, nil
}

// TaskQueue is what a task type's consumer tells of its step commands
// and the executors that take them.
type TaskQueue struct {
	// AckFloor: every command up to this history sequence was settled.
	AckFloor uint64
	// Delivered is the history sequence of the last command handed out.
	Delivered uint64
	// LastDelivery is when a command was last handed out; zero: never.
	LastDelivery time.Time
	// Pulls is how many requests for commands executors have open now,
	// and InFlight how many commands they hold unsettled.
	Pulls, InFlight int
	// Deliveries is how many times commands were handed out (the
	// consumer's delivery sequence): kept by NATS, where LastDelivery is
	// zero again once a server restarts or the consumer's leader changes.
	Deliveries uint64
}

// TaskQueueOf reads the state of taskType's consumer. Executors of an
// earlier version that still take the type's commands through the
// consumer it had then count too: their pulls, the commands they hold,
// the last handed to them (AckFloor stays the consumer's own).
//
// Errors: ErrNotFound when the task type has no consumer.
func (s *Store) TaskQueueOf(ctx context.Context, taskType string) (TaskQueue, error) {
	info, err := s.consumerInfo(ctx, TaskConsumerName(taskType))
	if err != nil {
		return TaskQueue{}, err
	}
	q := TaskQueue{AckFloor: info.AckFloor.Stream}
	add := func(info *jetstream.ConsumerInfo) {
		q.Delivered = max(q.Delivered, info.Delivered.Stream)
		q.Pulls += info.NumWaiting
		q.InFlight += info.NumAckPending
		q.Deliveries += info.Delivered.Consumer
		if last := info.Delivered.Last; last != nil && last.After(q.LastDelivery) {
			q.LastDelivery = *last
		}
	}
	add(info)
	if old := legacyTaskConsumerName(taskType); old != TaskConsumerName(taskType) {
		switch info, err := s.consumerInfo(ctx, old); {
		case err == nil:
			add(info)
		case !errors.Is(err, ErrNotFound):
			return TaskQueue{}, err
		}
	}
	return q, nil
}

// DeletionUnderWay reports whether wf's deletion (its retention ran out)
// has begun and not ended: what is left of a run being deleted.
func (s *Store) DeletionUnderWay(ctx context.Context, wf string) (bool, error) {
	_, err := s.lastOn(ctx, s.timersGet, retentionFirePfx+wf)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// HistoryRuns returns the id of every workflow with a history, from the
// history stream's subjects (one request a page of them): what exists,
// whatever the listing says.
func (s *Store) HistoryRuns(ctx context.Context) ([]string, error) {
	info, err := s.history.Info(ctx, jetstream.WithSubjectFilter(historyPrefix+"*.>"))
	if err != nil {
		return nil, fmt.Errorf("eventstore: the history's subjects: %w", err)
	}
	seen := make(map[string]bool, len(info.State.Subjects)/3)
	var ids []string
	for subj := range info.State.Subjects {
		if id := token(subj, 2); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// HistoryRecordGone reports whether wf's history record at seq is gone
// for good (its run deleted since): the stream, as its leader holds it,
// has reached seq, yet holds no record of wf there. A record that is
// there, or a stream behind seq (a leader just elected that has not
// applied it yet), is not gone: a read that missed it was behind.
//
// The stream's state is asked for before the record, and again after a
// record not found: a leader applies in order, so one that has reached
// seq and then finds no record there had it purged. (Asked the other way
// round, a leader that applied seq between the two answers made a record
// on its way read as gone.) The second look makes sure the same leader
// answered both times: a leader elected in between may be behind.
func (s *Store) HistoryRecordGone(ctx context.Context, wf string, seq uint64) (bool, error) {
	state := func() (*jetstream.StreamInfo, error) {
		info, err := retryRead(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return s.history.Info(ctx) })
		if err != nil {
			return nil, fmt.Errorf("eventstore: the history's state: %w", err)
		}
		return info, nil
	}
	before, err := state()
	if err != nil || before.State.LastSeq < seq {
		return false, err
	}
	if s.betweenGoneReads != nil {
		s.betweenGoneReads()
	}
	m, err := s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetMsg(ctx, seq)
	})
	switch {
	case err == nil:
		return !strings.HasPrefix(m.Subject, historyPrefix+wf+"."), nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return false, fmt.Errorf("eventstore: history record %d: %w", seq, err)
	}
	after, err := state()
	if err != nil || after.State.LastSeq < seq {
		return false, err
	}
	return leaderOf(before) == leaderOf(after), nil
}

// leaderOf names the server that answered for a stream ("" alone).
func leaderOf(info *jetstream.StreamInfo) string {
	if info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}

// DeletionScheduled reports whether wf's deletion is scheduled (its
// retention not run out yet) or came due and waits for an orchestrator.
func (s *Store) DeletionScheduled(ctx context.Context, wf string) (bool, error) {
	state, err := s.Deletion(ctx, wf)
	return state != TimerMissing, err
}

// Deletion reports where wf's deletion stands, as Timer does a timer's:
// fired (it came due and waits for an orchestrator, or one is deleting
// the run), scheduled, or missing.
func (s *Store) Deletion(ctx context.Context, wf string) (TimerState, error) {
	for _, sub := range []struct {
		subject string
		state   TimerState
	}{{retentionFirePfx + wf, TimerFired}, {retentionSchedPfx + wf, TimerScheduled}} {
		switch _, err := s.lastOn(ctx, s.timersGet, sub.subject); {
		case err == nil:
			return sub.state, nil
		case !errors.Is(err, ErrNotFound):
			return 0, err
		}
	}
	return TimerMissing, nil
}

// timersGet is retryRead of get on the timers stream.
func (s *Store) timersGet(ctx context.Context, get func(context.Context, jetstream.Stream) (*jetstream.RawStreamMsg, error)) (*jetstream.RawStreamMsg, error) {
	return retryRead(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) { return get(ctx, s.timers) })
}

// ExternalInputs is what the orchestrators' consumer of starts, signals
// and cancels tells of them.
type ExternalInputs struct {
	// AckFloor: every input up to this history sequence was settled.
	AckFloor uint64
	// Delivered is the history sequence of the last input handed out.
	Delivered uint64
}

// ExternalInputsOf reads the state of the orchestrators' consumer of the
// starts, signals and cancels appended from outside.
func (s *Store) ExternalInputsOf(ctx context.Context) (ExternalInputs, error) {
	info, err := s.consumerInfo(ctx, ExternalConsumer)
	if err != nil {
		return ExternalInputs{}, err
	}
	return ExternalInputs{AckFloor: info.AckFloor.Stream, Delivered: info.Delivered.Stream}, nil
}

// Takers is what one of the orchestrators' consumers tells of who takes
// its messages.
type Takers struct {
	// Pulls is how many requests for messages orchestrators have open
	// now (one that runs keeps one open), and InFlight how many messages
	// were handed out and not settled: held by an orchestrator, or by one
	// that died holding them (JetStream counts a message so until it is
	// handed out again and acked, which takes a request for it).
	Pulls, InFlight int
	// Waiting is how many messages wait to be settled: not handed out
	// yet, or in flight.
	Waiting uint64
	// LastDelivery is when a message was last handed out, LastAck when
	// one was last acked; zero: never (or not since the consumer's
	// leader changed).
	LastDelivery, LastAck time.Time
}

// OrchestratorTakers reads who takes the messages of the orchestrators'
// consumer of src: SourceExternal, SourceResults, SourceTimers or
// SourceRetention.
//
// Errors: ErrNotFound when the consumer does not exist.
func (s *Store) OrchestratorTakers(ctx context.Context, src Source) (Takers, error) {
	var stream jetstream.Stream
	var name string
	switch src {
	case SourceExternal:
		stream, name = s.history, ExternalConsumer
	case SourceResults:
		stream, name = s.results, ResultsConsumer
	case SourceTimers:
		stream, name = s.timers, TimersConsumer
	case SourceRetention:
		stream, name = s.timers, RetentionConsumer
	default:
		return Takers{}, fmt.Errorf("eventstore: no orchestrator consumer of source %d", src)
	}
	info, err := s.consumerInfoOn(ctx, stream, name)
	if err != nil {
		return Takers{}, err
	}
	t := Takers{Pulls: info.NumWaiting, InFlight: info.NumAckPending, Waiting: info.NumPending + uint64(info.NumAckPending)}
	if info.Delivered.Last != nil {
		t.LastDelivery = *info.Delivered.Last
	}
	if info.AckFloor.Last != nil {
		t.LastAck = *info.AckFloor.Last
	}
	return t, nil
}

// TaskBacklogs returns, for every task type with a consumer, how many of
// its step commands wait for an executor: those the consumer has not
// delivered yet (NumPending). It reads the history stream's consumers
// once.
func (s *Store) TaskBacklogs(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	l := s.history.ListConsumers(ctx)
	for info := range l.Info() {
		typ, ok := strings.CutPrefix(info.Config.FilterSubject, historyPrefix+"*.task.")
		// Consumers of earlier versions of a type's consumer are left out.
		if ok && info.Name == TaskConsumerName(typ) {
			out[typ] = info.NumPending
		}
	}
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("eventstore: task consumers: %w", err)
	}
	return out, nil
}

// consumerInfo reads the state of the history stream's consumer.
func (s *Store) consumerInfo(ctx context.Context, consumer string) (*jetstream.ConsumerInfo, error) {
	return s.consumerInfoOn(ctx, s.history, consumer)
}

// consumerInfoOn reads the info of stream's durable consumer.
func (s *Store) consumerInfoOn(ctx context.Context, stream jetstream.Stream, consumer string) (*jetstream.ConsumerInfo, error) {
	info, err := retryRead(ctx, func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
		c, err := stream.Consumer(ctx, consumer)
		if err != nil {
			return nil, err
		}
		return c.CachedInfo(), nil
	})
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s: %w", consumer, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: consumer %s: %w", consumer, err)
	}
	return info, nil
}

// TaskConsumer returns the name of the durable consumer that delivers
// taskType's step commands to executors.
func TaskConsumer(taskType string) string { return TaskConsumerName(taskType) }
