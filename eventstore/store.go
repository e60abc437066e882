package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// Names of the streams, buckets and durable consumers Weft keeps in JetStream.
const (
	HistoryStream = "WEFT_HISTORY"
	ResultsStream = "WEFT_RESULTS"
	TimersStream  = "WEFT_TIMERS"
	// SnapshotStream holds snapshots of long workflows' folded state.
	SnapshotStream = "WEFT_SNAPSHOTS"

	DefinitionsBucket = "weft-definitions"
	WorkflowsBucket   = "weft-workflows"

	ExternalConsumer = "weft-orchestrator-external"
	ResultsConsumer  = "weft-orchestrator-results"
	TimersConsumer   = "weft-orchestrator-timers"
	taskConsumerPfx  = "weft-task-"
)

// Subject layout. A workflow's history is the subject tree weft.h.<id>.>:
// events the API appends (start, signal, cancel) go to weft.h.<id>.ext,
// step commands to weft.h.<id>.task.<type> (a start an orchestrator
// records together with its first command among them), a record that
// closes the workflow to weft.h.<id>.end (so closings can be followed
// alone), everything else the orchestrator decides to weft.h.<id>.ev.
const (
	historyPrefix = "weft.h."
	resultsPrefix = "weft.r."
	timerSchedPfx = "weft.t.s."
	timerFirePfx  = "weft.t.f."
)

// Sentinel errors callers branch on.
var (
	// ErrConflict: the workflow's history moved past the expected sequence
	// (another writer appended first). Re-read and decide again.
	ErrConflict = errors.New("eventstore: history changed since it was read")
	// ErrNotFound: no such workflow, definition or revision.
	ErrNotFound = errors.New("eventstore: not found")
	// ErrDuplicate: the message id was already appended (dedup window).
	ErrDuplicate = errors.New("eventstore: duplicate append")
	// ErrSuperseded: an index entry was not written because the stored one
	// reflects the same or a later point of its workflow's history.
	ErrSuperseded = errors.New("eventstore: a newer index entry is stored")
	// ErrTooLarge: the message is larger than the NATS server accepts
	// (MaxPayload).
	ErrTooLarge = errors.New("eventstore: message too large")
	// ErrNoSpace: JetStream has no room to store the write (the server's
	// max_file_store or max_memory_store is reached, or the account's
	// storage limit). Nothing was stored: make the write again once an
	// operator has made room.
	ErrNoSpace = errors.New("eventstore: JetStream has no room left to store it (its storage limit is reached): nothing was stored")
)

// noSpaceCodes are the JetStream API error codes of a store without room:
// insufficient resources (a write past the server's limit), storage or
// memory resources exceeded (a stream that cannot reserve what it asks
// for), and an account's resource limits.
var noSpaceCodes = []jetstream.ErrorCode{10023, 10047, 10028, 10002}

// natsErr maps what NATS reports to the sentinels callers branch on,
// keeping its message: callers outside eventstore never test NATS errors.
func natsErr(err error) error {
	if errors.Is(err, nats.ErrMaxPayload) {
		return tooLarge{err}
	}
	if isNoSpace(err) {
		return noSpace{err}
	}
	return err
}

// isNoSpace reports whether err is JetStream's answer that it has no room.
func isNoSpace(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && slices.Contains(noSpaceCodes, apiErr.ErrorCode)
}

// noSpace is a NATS error that is ErrNoSpace.
type noSpace struct{ err error }

func (e noSpace) Error() string        { return ErrNoSpace.Error() + ": " + e.err.Error() }
func (e noSpace) Unwrap() error        { return e.err }
func (e noSpace) Is(target error) bool { return target == ErrNoSpace }

// tooLarge is a NATS error that is ErrTooLarge.
type tooLarge struct{ err error }

func (e tooLarge) Error() string        { return e.err.Error() }
func (e tooLarge) Unwrap() error        { return e.err }
func (e tooLarge) Is(target error) bool { return target == ErrTooLarge }

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,128}$`)

// ValidWorkflowID reports whether id can name a workflow: 1-128 characters
// of letters, digits, '_', '-' and '='.
func ValidWorkflowID(id string) bool { return idPattern.MatchString(id) }

// Config sets up a Store.
type Config struct {
	// Replicas of every stream and bucket. Default 1.
	Replicas int
	// Storage is where JetStream keeps the data. Default jetstream.FileStorage.
	Storage jetstream.StorageType
	// TaskAckWait is how long an executor may go silent (no heartbeat) before
	// its step command is redelivered to another executor. Default 30s.
	TaskAckWait time.Duration
	// TaskMaxAckPending bounds step commands in flight (incl. waiting for a
	// retry) per task type. Default 20000.
	TaskMaxAckPending int
	// OrchestratorAckWait is the ack wait of the orchestrator's consumers: how long an input handed to an orchestrator that died waits before another takes it. Default 10s.
	OrchestratorAckWait time.Duration
	// DuplicateWindow is the streams' dedup window. Default 2m.
	DuplicateWindow time.Duration
	// ResultReplyWait is how long an executor waits for an orchestrator to
	// record a result sent directly before it publishes the result to the
	// results stream instead, and how long a start waits for an
	// orchestrator to record it directly before the API appends it.
	// Default 2s; negative: always use the streams.
	ResultReplyWait time.Duration
	// MarkerTTL is how long the listing keeps a deleted run's marker (a
	// late write of the run's entry within it is refused), and how long a
	// concurrency or rate-limit entry no longer in use stays before it
	// goes. Default 1h; at least 1s. Servers before NATS 2.11 keep both
	// for good.
	MarkerTTL time.Duration
}

// defaults fills in unset fields. It does not use internal/config, the
// parts' helper: here a negative duration or count also takes its default
// (the parts refuse one), and eventstore imports nothing from internal.
func (c *Config) defaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.TaskAckWait <= 0 {
		c.TaskAckWait = 30 * time.Second
	}
	if c.TaskMaxAckPending <= 0 {
		c.TaskMaxAckPending = 20000
	}
	if c.OrchestratorAckWait <= 0 {
		c.OrchestratorAckWait = 10 * time.Second
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.ResultReplyWait == 0 {
		c.ResultReplyWait = directDefaultWait
	}
	if c.MarkerTTL <= 0 {
		c.MarkerTTL = time.Hour
	}
	c.MarkerTTL = max(c.MarkerTTL.Round(time.Second), time.Second)
}

// Store is Weft's view of JetStream: histories, results, timers,
// definitions and the workflow index. It is safe for concurrent use.
type Store struct {
	// betweenPurges, when set (by tests), runs in DeleteRun after the
	// listing entry's purge and before the history's.
	betweenPurges func()
	// afterHistoryPurge, when set (by tests), runs in DeleteRun after its
	// purge of the history up to the last record read.
	afterHistoryPurge func()
	// betweenGoneReads, when set (by tests), runs in HistoryRecordGone
	// between its two reads of the history stream.
	betweenGoneReads func()

	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	history jetstream.Stream
	// historyLooked is when historyGet may next refresh the history's
	// handle (Unix nanoseconds).
	historyLooked atomic.Int64
	slots         jetstream.KeyValue
	flow          jetstream.KeyValue
	// indexTTL, slotsTTL, flowTTL and cronTTL report whether the bucket's
	// messages may carry a TTL (NATS 2.11 on; see ensureTTLBucket).
	indexTTL, slotsTTL, flowTTL, cronTTL bool

	results jetstream.Stream
	timers  jetstream.Stream
	snaps   jetstream.Stream
	// session is the history stream's last sequence when the connection
	// last (re)connected, as seen (StoredBeforeSession).
	sessionMu         sync.Mutex
	sessionReconnects uint64
	sessionSeq        uint64
	// indexStream is the workflow index bucket's stream.
	indexStream jetstream.Stream
	defs        jetstream.KeyValue
	index       jetstream.KeyValue
	cron        jetstream.KeyValue
	hooks       jetstream.KeyValue
	pauses      jetstream.KeyValue

	taskMu    sync.Mutex
	taskReady map[string]bool
}

// newStore returns a store over nc that has opened nothing yet.
func newStore(nc *nats.Conn, cfg Config) (*Store, error) {
	cfg.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventstore: %w", err)
	}
	s := &Store{nc: nc, js: js, cfg: cfg, taskReady: map[string]bool{}}
	s.sessionReconnects = nc.Stats().Reconnects
	return s, nil
}

// Open connects the store to JetStream, creating or updating its streams,
// buckets and the orchestrator's consumers. It is idempotent: every process
// calls it at start, and parts may call it at once. It looks each up
// first, creates only what is missing and updates only what lacks a
// setting of cfg (see ensure.go).
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	s, err := newStore(nc, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.openStreams(ctx); err != nil {
		return nil, err
	}
	if err := s.openConsumers(ctx); err != nil {
		return nil, err
	}
	if err := s.openTriggers(ctx); err != nil {
		return nil, err
	}
	if err := s.openSnapshots(ctx); err != nil {
		return nil, err
	}
	if err := s.openBuckets(ctx); err != nil {
		return nil, err
	}
	if err := s.openSlots(ctx); err != nil {
		return nil, err
	}
	if err := s.openFlow(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// directWhileAlone allows direct gets on the history exactly while it has
// one replica. A direct get skips the JetStream API's queue and its JSON
// (a read of a run is a get or more per record) and leaves half the
// garbage behind; on a replicated stream a follower that lags may answer
// one, and a decision made on a stale history would drop a result it had
// not seen scheduled, so there reads go to the leader. It is settled in
// the same create or update as the replica count, so the history is never
// replicated with direct gets on; a part opened before a change from one
// replica learns of it at its next read (historyGet).
func directWhileAlone(c *jetstream.StreamConfig) { c.AllowDirect = c.Replicas <= 1 }

// openStreams creates or updates the history, results and timers streams.
func (s *Store) openStreams(ctx context.Context) (err error) {
	cfg := s.cfg
	if s.history, err = s.ensureStream(ctx, jetstream.StreamConfig{
		Name:        HistoryStream,
		Description: "Weft workflow histories: one subject tree per workflow, append-only",
		Subjects:    []string{historyPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		// Records are never deleted one by one; purges are allowed, for
		// retention only (see historyDenyPurge).
		DenyDelete: true,
		DenyPurge:  s.historyDenyPurge(ctx),
	}, nil, directWhileAlone); err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", HistoryStream, err)
	}
	s.sessionSeq = s.history.CachedInfo().State.LastSeq
	if s.results, err = s.ensureStream(ctx, jetstream.StreamConfig{
		Name:        ResultsStream,
		Description: "Weft task attempt results, consumed by orchestrators",
		Subjects:    []string{resultsPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, nil, nil); err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", ResultsStream, err)
	}
	if s.timers, err = s.ensureStream(ctx, jetstream.StreamConfig{
		Name:              TimersStream,
		Description:       "Weft durable timers: pending schedules and fired timers",
		Subjects:          []string{"weft.t.>"},
		Retention:         jetstream.WorkQueuePolicy,
		Storage:           cfg.Storage,
		Replicas:          cfg.Replicas,
		Duplicates:        cfg.DuplicateWindow,
		AllowMsgSchedules: true,
		AllowRollup:       true,
	}, nil, nil); err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", TimersStream, err)
	}
	return nil
}

// openConsumers creates or updates the orchestrators' consumers.
func (s *Store) openConsumers(ctx context.Context) error {
	cfg := s.cfg
	for _, sc := range []struct {
		stream string
		c      jetstream.ConsumerConfig
	}{
		{HistoryStream, jetstream.ConsumerConfig{Durable: ExternalConsumer, FilterSubject: historyPrefix + "*" + externalSuffix, Description: "orchestrator: starts, signals, cancels"}},
		{ResultsStream, jetstream.ConsumerConfig{Durable: ResultsConsumer, FilterSubject: resultsPrefix + ">", Description: "orchestrator: task results"}},
		{TimersStream, jetstream.ConsumerConfig{Durable: TimersConsumer, FilterSubject: timerFirePfx + ">", Description: "orchestrator: fired timers"}},
	} {
		stream, c := sc.stream, sc.c
		c.AckPolicy = jetstream.AckExplicitPolicy
		c.DeliverPolicy = jetstream.DeliverAllPolicy
		c.AckWait = cfg.OrchestratorAckWait
		c.MaxDeliver = -1
		c.MaxAckPending = 20000
		c.Replicas = cfg.Replicas
		if err := s.ensureConsumer(ctx, stream, c, false); err != nil {
			return fmt.Errorf("eventstore: create consumer %s: %w", c.Durable, err)
		}
	}
	return nil
}

// openBuckets creates or updates the definitions, workflow index and
// pauses buckets.
func (s *Store) openBuckets(ctx context.Context) (err error) {
	cfg := s.cfg
	if s.defs, err = s.ensureBucket(ctx, jetstream.KeyValueConfig{
		Bucket:      DefinitionsBucket,
		Description: "Weft workflow definitions: <name>.<revision> and <name>.latest",
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", DefinitionsBucket, err)
	}
	if s.index, s.indexTTL, err = s.ensureTTLBucket(ctx, jetstream.KeyValueConfig{
		Bucket:      WorkflowsBucket,
		Description: "Weft workflow index for listing (rebuildable from history)",
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	}, true); err != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", WorkflowsBucket, err)
	}
	if s.indexStream, err = retry(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return s.js.Stream(ctx, "KV_"+WorkflowsBucket)
	}); err != nil {
		return fmt.Errorf("eventstore: bucket %s: %w", WorkflowsBucket, err)
	}
	return s.openPauses(ctx)
}

// Conn returns the store's NATS connection.
func (s *Store) Conn() *nats.Conn { return s.nc }

// MaxPayload returns the largest message the NATS server accepts, in
// bytes.
func (s *Store) MaxPayload() int64 { return s.nc.MaxPayload() }

// Config returns the store's configuration with defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func historySubject(wf string) string { return historyPrefix + wf + ".>" }

// subjectFor picks the subject of a record: a record that schedules a task
// goes to that task type's subject so executors receive it, and one that
// closes the workflow to its closing subject.
func subjectFor(wf string, evs []events.Event, external bool) (string, error) {
	if external {
		return historyPrefix + wf + externalSuffix, nil
	}
	for i, e := range evs {
		if e.Terminal() {
			return historyPrefix + wf + closingSuffix, nil
		}
		if e.Type == events.TypeStepScheduled {
			if i != len(evs)-1 {
				return "", fmt.Errorf("eventstore: a StepScheduled event must end its record")
			}
			return historyPrefix + wf + ".task." + e.StepScheduled.Task, nil
		}
	}
	return historyPrefix + wf + ".ev", nil
}

// IsConflict reports whether err is a JetStream wrong-last-sequence error
// (API codes 10071, and 10164 on replicated streams).
func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// Append writes evs as one record to workflow wf's history, provided its
// last sequence is still expect (0: the workflow has no history yet). It
// returns the record's stream sequence. The message id is derived from wf
// and expect, so a retried append is deduplicated.
//
// Errors: ErrConflict when the history moved on (or the same append was
// already made).
func (s *Store) Append(ctx context.Context, wf string, expect uint64, evs ...events.Event) (uint64, error) {
	return s.AppendWith(ctx, wf, expect, AppendOpts{}, evs...)
}

// AppendOpts is what an orchestrator's record says besides its events.
type AppendOpts struct {
	// Snapshot is the sequence of the workflow's latest snapshot
	// (PutSnapshot; 0: none): the record names it, so ReadTail can start
	// from it.
	Snapshot uint64
	// Owner is the orchestrator appending (OwnResults): executors send the
	// results of the record's step command to it first.
	Owner string
	// Definition is the workflow's definition: a record that ends with a
	// step command names it in a header, so executors know whose command
	// it is (Delivery.Definition) without reading history.
	Definition string
	// Stored, when set, has the size of the record stored added to it
	// (what Message.Size says of it when read), for a cache that bounds
	// its memory by the records its states were folded from.
	Stored *int64
}

// AppendWith is Append with opts.
func (s *Store) AppendWith(ctx context.Context, wf string, expect uint64, opts AppendOpts, evs ...events.Event) (uint64, error) {
	subj, err := subjectFor(wf, evs, false)
	if err != nil {
		return 0, err
	}
	seq, err := s.append(ctx, wf, subj, fmt.Sprintf("%s@%d", wf, expect), &expect, opts, evs)
	if errors.Is(err, ErrDuplicate) {
		return seq, fmt.Errorf("append to %s at seq %d: %w", wf, expect, ErrConflict)
	}
	return seq, err
}

// AppendStart writes a new workflow's first record: its WorkflowStarted
// event and the decision that follows it (a direct start, see
// StartDirect), under the start's message id msgID, provided wf has no
// history yet. Of opts, Owner and Stored apply; the definition is the
// start's.
//
// Errors: ErrConflict when wf has a history; ErrDuplicate when msgID was
// appended within the dedup window (the same start, made another way).
func (s *Store) AppendStart(ctx context.Context, wf, msgID string, opts AppendOpts, evs []events.Event) (uint64, error) {
	if len(evs) == 0 || evs[0].Type != events.TypeWorkflowStarted || evs[0].WorkflowStarted == nil {
		return 0, errors.New("eventstore: a start record begins with WorkflowStarted")
	}
	subj, err := subjectFor(wf, evs, false)
	if err != nil {
		return 0, err
	}
	var zero uint64
	opts.Snapshot, opts.Definition = 0, evs[0].WorkflowStarted.Definition
	return s.append(ctx, wf, subj, msgID, &zero, opts, evs)
}

// AppendExternal writes events from outside the orchestrator (a start,
// signal or cancel; a child's start with its parent's cancel) to wf's
// history as one record under msgID. With expect non-nil the
// append only succeeds when the history's last sequence is *expect.
//
// Errors: ErrConflict when expect no longer holds; ErrDuplicate when msgID
// was appended within the dedup window (the returned sequence is the
// original's).
func (s *Store) AppendExternal(ctx context.Context, wf string, expect *uint64, msgID string, ev events.Event, more ...events.Event) (uint64, error) {
	subj, _ := subjectFor(wf, nil, true)
	return s.append(ctx, wf, subj, msgID, expect, AppendOpts{}, append([]events.Event{ev}, more...))
}

// AppendExternalAtEnd appends an outside event (signal, cancel) after
// whatever wf's history holds now: it appends conditionally on last (the
// caller's latest read; 0 reads it) and, on a conflict, reads the last
// sequence and tries again. Every writer of a history
// states what it expects, which replicated streams need for the check to
// see writes still in flight.
//
// Errors: ErrNotFound when wf has no history; ErrDuplicate when msgID was
// appended within the dedup window.
func (s *Store) AppendExternalAtEnd(ctx context.Context, wf string, last uint64, msgID string, ev events.Event) (uint64, error) {
	for try := 0; ; try++ {
		if last == 0 || try > 0 {
			var err error
			if last, err = s.LastSeq(ctx, wf); err != nil {
				return 0, err
			}
		}
		seq, err := s.AppendExternal(ctx, wf, &last, msgID, ev)
		if !errors.Is(err, ErrConflict) || try >= 50 {
			return seq, err
		}
	}
}

func (s *Store) append(ctx context.Context, wf, subj, msgID string, expect *uint64, ao AppendOpts, evs []events.Event) (uint64, error) {
	if !ValidWorkflowID(wf) {
		return 0, fmt.Errorf("eventstore: invalid workflow id %q", wf)
	}
	data, err := events.Encode(evs...)
	if err != nil {
		return 0, fmt.Errorf("eventstore: append to %s: %w", wf, err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = data
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(msgID)}
	if expect != nil {
		opts = append(opts, jetstream.WithExpectLastSequenceForSubject(*expect, historySubject(wf)))
		// The append only succeeds if expect is the workflow's last record:
		// each record links to the one before it, and reads follow the links.
		msg.Header.Set(prevHeader, strconv.FormatUint(*expect, 10))
	}
	if ao.Snapshot > 0 {
		msg.Header.Set(snapHeader, strconv.FormatUint(ao.Snapshot, 10))
	}
	if ao.Owner != "" {
		msg.Header.Set(ownerHeader, ao.Owner)
	}
	if ao.Definition != "" && evs[len(evs)-1].StepScheduled != nil {
		msg.Header.Set(defHeader, ao.Definition)
	}
	ack, err := s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if isConflict(err) {
			return 0, fmt.Errorf("append to %s at seq %d: %w", wf, deref(expect), ErrConflict)
		}
		return 0, fmt.Errorf("eventstore: append to %s: %w", wf, natsErr(err))
	}
	if ack.Duplicate {
		return ack.Sequence, ErrDuplicate
	}
	if ao.Stored != nil {
		*ao.Stored += int64(len(data))
	}
	return ack.Sequence, nil
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// Message is one history record as stored.
type Message struct {
	// Seq is the record's stream sequence.
	Seq uint64
	// Subject the record was stored under.
	Subject string
	// Time the stream stored it.
	Time time.Time
	// Record holds the decoded events; empty when Err is set.
	Record events.Record
	// Err is set when the stored bytes did not decode (wraps events.ErrCorrupt).
	Err error
	// Size is the record's stored size in bytes.
	Size int

	// prev is the sequence of the record it links to (0: none, appended
	// on an empty history), when linked, as First read it.
	prev   uint64
	linked bool
}

// StartsRun reports whether m is the first record of a run: it holds the
// run's WorkflowStarted. One found after a state's last record means the
// run was deleted and started again under its id since that state was
// read.
func (m Message) StartsRun() bool {
	return m.Err == nil && len(m.Record.Events) > 0 && m.Record.Events[0].Type == events.TypeWorkflowStarted
}

// External reports whether m was appended from outside the orchestrators
// (a start, signal, cancel or redrive), which they take from the stream.
func (m Message) External() bool { return strings.HasSuffix(m.Subject, externalSuffix) }

func decodeMsg(seq uint64, subj string, t time.Time, data []byte) Message {
	m := Message{Seq: seq, Subject: subj, Time: t.UTC(), Size: len(data)}
	rec, err := events.Decode(data)
	if err != nil {
		m.Err = fmt.Errorf("history record at seq %d: %w", seq, err)
	} else {
		m.Record = rec
	}
	return m
}

// LastSeq returns the stream sequence of wf's last history record.
//
// Errors: ErrNotFound when wf has no history.
func (s *Store) LastSeq(ctx context.Context, wf string) (uint64, error) {
	if !ValidWorkflowID(wf) {
		return 0, ErrNotFound
	}
	m, err := s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetLastMsgForSubject(ctx, historySubject(wf))
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, fmt.Errorf("workflow %s: %w", wf, ErrNotFound)
		}
		return 0, fmt.Errorf("eventstore: last seq of %s: %w", wf, err)
	}
	return m.Sequence, nil
}

// First returns wf's first history record.
//
// Errors: ErrNotFound when wf has no history.
func (s *Store) First(ctx context.Context, wf string) (Message, error) {
	if !ValidWorkflowID(wf) {
		return Message{}, ErrNotFound
	}
	m, err := s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(historySubject(wf)))
	})
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Message{}, fmt.Errorf("workflow %s: %w", wf, ErrNotFound)
		}
		return Message{}, fmt.Errorf("eventstore: first record of %s: %w", wf, err)
	}
	msg := decodeMsg(m.Sequence, m.Subject, m.Time, m.Data)
	msg.prev, msg.linked = linkOf(m)
	return msg, nil
}

// DefinitionOf returns the name of the definition wf runs, from its first
// record.
//
// Errors: ErrNotFound when wf has no history.
func (s *Store) DefinitionOf(ctx context.Context, wf string) (string, error) {
	m, err := s.First(ctx, wf)
	if err != nil {
		return "", err
	}
	if m.Err != nil {
		return "", m.Err
	}
	for _, e := range m.Record.Events {
		if e.WorkflowStarted != nil {
			return e.WorkflowStarted.Definition, nil
		}
	}
	return "", fmt.Errorf("eventstore: the first record of %s does not start it", wf)
}

// Read returns wf's history records with stream sequence > after, up to
// the last one stored when Read began. It returns no error and no records
// when there are none.
func (s *Store) Read(ctx context.Context, wf string, after uint64) ([]Message, error) {
	t, err := s.read(ctx, wf, after, false)
	return t.Msgs, err
}

// read walks back from wf's last record along the links to the record
// after `after`, or, with useSnap, to a snapshot a record names if it is
// newer than after.
func (s *Store) read(ctx context.Context, wf string, after uint64, useSnap bool) (Tail, error) {
	return s.readWithin(ctx, wf, after, useSnap, 0)
}

// ErrTooLong: the records a read would return are more than the caller
// holds at once (ReadLiveWithin); read them a part at a time (ReadFrom).
var ErrTooLong = errors.New("eventstore: the records to read are more than asked for at once")

// readWithin is read that gives up with ErrTooLong once the records it
// holds pass maxBytes (0: no bound).
func (s *Store) readWithin(ctx context.Context, wf string, after uint64, useSnap bool, maxBytes int) (Tail, error) {
	if !ValidWorkflowID(wf) {
		return Tail{}, nil
	}
	m, err := s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return h.GetLastMsgForSubject(ctx, historySubject(wf))
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Tail{Gone: true}, nil
	}
	if err != nil {
		return Tail{}, fmt.Errorf("eventstore: read %s: %w", wf, err)
	}
	last := m.Sequence
	if last <= after {
		return Tail{}, nil
	}
	forward := func() (Tail, error) {
		msgs, err := s.readForward(ctx, wf, after, last, maxBytes)
		return Tail{Msgs: msgs}, err
	}
	held := len(m.Data)
	// Walk back along the records' links to the one after `after`: one
	// get by sequence per record, however large the stream has grown.
	back := []*jetstream.RawStreamMsg{m}
	var snap []byte
	var snapSeq uint64
	for {
		if at, ok := snapshotOf(m); ok && useSnap && at > after {
			useSnap = false // the latest snapshot is asked for once
			if seq, data, err := s.GetSnapshot(ctx, wf); err == nil && seq > after && seq <= last {
				snap, snapSeq = data, seq
			}
		}
		if snap != nil {
			// The snapshot may be newer than the record that named it.
			if i := slices.IndexFunc(back, func(r *jetstream.RawStreamMsg) bool { return r.Sequence == snapSeq }); i >= 0 {
				back = back[:i]
				break
			}
		}
		prev, ok := linkOf(m)
		if !ok {
			// A record written without a link: read forward instead.
			return forward()
		}
		if snap != nil && prev <= snapSeq {
			if prev == snapSeq {
				break
			}
			snap = nil // not taken at one of this workflow's records: pass it by
		}
		if prev <= after {
			break
		}
		if m, err = s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
			return h.GetMsg(ctx, prev)
		}); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return forward()
			}
			return Tail{}, fmt.Errorf("eventstore: read %s: %w", wf, err)
		}
		if !strings.HasPrefix(m.Subject, historyPrefix+wf+".") {
			return forward()
		}
		if held += len(m.Data); maxBytes > 0 && held > maxBytes {
			return Tail{}, fmt.Errorf("eventstore: read %s after %d: %w", wf, after, ErrTooLong)
		}
		back = append(back, m)
	}
	out := make([]Message, 0, len(back))
	for i := len(back) - 1; i >= 0; i-- {
		out = append(out, decodeMsg(back[i].Sequence, back[i].Subject, back[i].Time, back[i].Data))
	}
	if snap == nil {
		snapSeq = 0
	}
	return Tail{Snapshot: snap, SnapshotSeq: snapSeq, Msgs: out}, nil
}

// readTry bounds one read request. While a replicated stream has no
// leader (a node died, an election is on) a request may go unanswered;
// asked again, the new leader answers as soon as it is elected, so a read
// returns seconds after the election instead of at its caller's deadline.
const readTry = 2 * time.Second

// historyGet is retryRead of get on the history. A direct get nobody
// answered refreshes the handle's view of the stream before the next try
// (one refresh a second at most, for all of the store's reads): the stream
// may no longer allow them (directWhileAlone, settled by a part opened
// since with more replicas), and the next try asks its leader.
func (s *Store) historyGet(ctx context.Context, get func(context.Context, jetstream.Stream) (*jetstream.RawStreamMsg, error)) (*jetstream.RawStreamMsg, error) {
	return retryRead(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) {
		m, err := get(ctx, s.history)
		if errors.Is(err, nats.ErrNoResponders) && s.history.CachedInfo().Config.AllowDirect {
			now := time.Now().UnixNano()
			if next := s.historyLooked.Load(); now >= next && s.historyLooked.CompareAndSwap(next, now+int64(time.Second)) {
				_, _ = s.history.Info(ctx)
			}
		}
		return m, err
	})
}

// retryRead runs get with at most readTry each time, again while the
// failure is a request nobody answered or the stream is unavailable, until
// ctx ends (or, without a deadline, for about half a minute).
func retryRead[T any](ctx context.Context, get func(context.Context) (T, error)) (T, error) {
	_, bounded := ctx.Deadline()
	for try := 0; ; try++ {
		tctx, cancel := context.WithTimeout(ctx, readTry)
		v, err := get(tctx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) || !bounded && try >= 15 {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// unanswered reports whether err says a JetStream request went unanswered
// or the stream is not available right now.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}

// prevHeader links a history record to the workflow's record before it
// (0 for the first).
const prevHeader = "Weft-Prev"

// defHeader names the workflow's definition on a record that ends with a
// step command (AppendOpts.Definition).
const defHeader = "Weft-Def"

// linkOf returns the sequence of the record before m, if m carries it.
func linkOf(m *jetstream.RawStreamMsg) (uint64, bool) {
	v := m.Header.Get(prevHeader)
	if v == "" {
		return 0, false
	}
	prev, err := strconv.ParseUint(v, 10, 64)
	if err != nil || prev >= m.Sequence {
		return 0, false
	}
	return prev, true
}

// readForward reads wf's records after `after` up to last by asking for
// the next record on its subjects, one at a time: the server scans the
// stream between a workflow's records, so this is slow on large streams
// and used only for records written without links.
func (s *Store) readForward(ctx context.Context, wf string, after, last uint64, maxBytes int) ([]Message, error) {
	var out []Message
	held := 0
	subj := historySubject(wf)
	for seq := after + 1; seq <= last; {
		m, err := s.historyGet(ctx, func(ctx context.Context, h jetstream.Stream) (*jetstream.RawStreamMsg, error) {
			return h.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("eventstore: read %s: %w", wf, err)
		}
		if m.Sequence > last {
			break
		}
		if held += len(m.Data); maxBytes > 0 && held > maxBytes {
			return nil, fmt.Errorf("eventstore: read %s after %d: %w", wf, after, ErrTooLong)
		}
		out = append(out, decodeMsg(m.Sequence, m.Subject, m.Time, m.Data))
		seq = m.Sequence + 1
	}
	return out, nil
}

// ReadFrom calls fn with each of wf's history records from stream
// sequence from onwards, up to the last one stored when ReadFrom began,
// until fn returns false: it reads just the records fn takes, however
// long the history before them. It returns the sequence of that last
// record.
//
// Errors: ErrNotFound when wf has no history, or its history is deleted
// while it is read.
func (s *Store) ReadFrom(ctx context.Context, wf string, from uint64, fn func(Message) bool) (last uint64, err error) {
	if last, err = s.LastSeq(ctx, wf); err != nil || from > last {
		return last, err
	}
	replaced := false
	err = s.scan(ctx, wf, from, func(m Message) bool {
		if m.Seq > last {
			// Stored after ReadFrom began: not read. The start of a run
			// means the one read was deleted meanwhile.
			replaced = m.StartsRun()
			return false
		}
		return fn(m) && m.Seq < last
	}, func() error {
		// The records up to last were deleted while they were read.
		if now, err := s.LastSeq(ctx, wf); err != nil || now < from {
			return cmp.Or(err, ErrNotFound)
		}
		return nil
	})
	if err == nil && replaced {
		err = fmt.Errorf("workflow %s: deleted while it was read: %w", wf, ErrNotFound)
	}
	return last, err
}

// scanBuffer is how many bytes of records a scan asks for ahead of its
// caller (at least twice the largest message the server takes).
const scanBuffer = 2 << 20

// scanStall is how long scan waits for a record before it asks its
// stalled function whether one is still to come; after scanStalls such
// waits in a row, with records still to come, it gives up (the consumer
// delivers nothing: a new read makes a new one).
var (
	scanStall  = 2 * time.Second
	scanStalls = 5
)

// scanHeartbeat is how often a scan's consumer says it is there while it
// has nothing to deliver; two missed make the client make it again. Two
// must be less than scanStall, and the client takes no less than 500 ms.
const scanHeartbeat = 500 * time.Millisecond

// errScanStalled: a read's consumer delivered nothing for scanStalls
// waits though the stream holds records still to read.
var errScanStalled = errors.New("the stream holds records this read was not given; read again")

// scan calls fn with wf's records from stream sequence from on, until fn
// returns false. When no record comes for scanStall, it calls stalled,
// whose error ends the scan (the records it waits for were deleted); after
// scanStalls such waits in a row it ends with errScanStalled, for the
// caller to read again, rather than wait for as long as ctx lets it.
func (s *Store) scan(ctx context.Context, wf string, from uint64, fn func(Message) bool, stalled func() error) error {
	if from == 0 {
		from = 1
	}
	cons, err := s.history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{historySubject(wf)},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: 30 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("eventstore: read %s: %w", wf, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.history.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// Each request for records is bounded in bytes too: records may be as
	// large as the server takes (a request must allow the largest). On a
	// cluster the first request for a consumer just made is now and then
	// not passed on to the node that leads it, and the consumer delivers
	// nothing: the heartbeats it then does not send make the client make
	// it again after two of them, within one stall's wait, so the stalls
	// below count only a consumer that is there and has nothing (with the
	// client's default, 5 s, that took as long as they allow).
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(256, max(scanBuffer, 2*int(s.nc.MaxPayload()))),
		jetstream.PullHeartbeat(scanHeartbeat))
	if err != nil {
		return fmt.Errorf("eventstore: read %s: %w", wf, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for stalls := 0; ; {
		msg, err := it.Next(jetstream.NextMaxWait(scanStall))
		if errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			if err := stalled(); err != nil {
				return err
			}
			if stalls++; stalls >= scanStalls {
				return fmt.Errorf("eventstore: read %s from seq %d: %w", wf, from, errScanStalled)
			}
			continue
		}
		stalls = 0
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("eventstore: read %s: %w", wf, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("eventstore: read %s: %w", wf, err)
		}
		if !fn(decodeMsg(md.Sequence.Stream, msg.Subject(), md.Timestamp, msg.Data())) {
			return nil
		}
	}
}

// StepProgress is what a workflow's history records about one scheduling
// of a step after its command (StepProgressAfter).
type StepProgress struct {
	// Settled: the step's outcome is recorded (completed, failed or
	// suspended), the
	// step was canceled (a cancellation after the command can only be of
	// its scheduling or a later one), or the workflow completed or was
	// canceled.
	Settled bool
	// Attempts is the highest attempt number recorded for it (attempt
	// failures and the outcome); 0 when none is.
	Attempts int
	// RetryAt is when the attempt after the last failed one is due (the
	// failure's time plus its retry delay); zero when none failed.
	RetryAt time.Time
}

// ClosedAfter reports whether wf's run completed or was canceled after
// stream sequence after (a step command's): none of the commands before
// its close is to run then. It reads one record, the run's last closing
// one, however long the history after the command; executors ask it of a
// command that waited in their queue. A failed run is not closed for it:
// a redrive goes on with its steps.
func (s *Store) ClosedAfter(ctx context.Context, wf string, after uint64) (bool, error) {
	m, err := s.historyGet(ctx, func(ctx context.Context, st jetstream.Stream) (*jetstream.RawStreamMsg, error) {
		return st.GetLastMsgForSubject(ctx, historyPrefix+wf+closingSuffix)
	})
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("eventstore: the close of %s: %w", wf, err)
	case m.Sequence <= after:
		return false, nil
	}
	msg := decodeMsg(m.Sequence, m.Subject, m.Time, m.Data)
	if msg.Err != nil || len(msg.Record.Events) == 0 {
		return false, nil
	}
	last := msg.Record.Events[len(msg.Record.Events)-1]
	return last.Type == events.TypeWorkflowCompleted || last.Type == events.TypeWorkflowCanceled, nil
}

// StepProgressAfter reads wf's history after stream sequence after (a step
// command's) and returns what it records of the step at path in scheduling
// gen. Executors ask it before running a command delivered before: a step
// whose outcome is recorded does not run again, and the attempt to run is
// the one after the last recorded, however many deliveries there were.
func (s *Store) StepProgressAfter(ctx context.Context, wf, path string, gen int, after uint64) (StepProgress, error) {
	msgs, err := s.Read(ctx, wf, after)
	if err != nil {
		return StepProgress{}, err
	}
	var p StepProgress
	for _, m := range msgs {
		for _, e := range m.Record.Events {
			switch {
			case e.Type == events.TypeWorkflowCompleted || e.Type == events.TypeWorkflowCanceled:
				// (A failed workflow may be redriven: its steps still count.)
				p.Settled = true
			case e.StepAttemptFailed != nil && e.StepAttemptFailed.Path == path && e.StepAttemptFailed.Gen == gen:
				if f := e.StepAttemptFailed; f.Attempt >= p.Attempts {
					p.Attempts, p.RetryAt = f.Attempt, e.Time.Add(f.RetryDelay)
				}
			case e.StepCompleted != nil && e.StepCompleted.Path == path && e.StepCompleted.Gen == gen:
				p.Settled, p.Attempts = true, max(p.Attempts, e.StepCompleted.Attempt)
			case e.StepFailed != nil && e.StepFailed.Path == path && e.StepFailed.Gen == gen:
				p.Settled, p.Attempts = true, max(p.Attempts, e.StepFailed.Attempt)
			case e.StepSuspended != nil && e.StepSuspended.Path == path && e.StepSuspended.Gen == gen:
				// A resume schedules the step anew (another gen).
				p.Settled, p.Attempts = true, max(p.Attempts, e.StepSuspended.Attempt)
			case e.StepCanceled != nil && e.StepCanceled.Path == path:
				p.Settled = true
			}
		}
	}
	return p, nil
}

// MsgIDPart returns s, a caller's text (a request id), as part of a
// message id that NATS carries unchanged: a header value is trimmed of
// spaces, tabs and line breaks at its ends and has its line breaks turned
// into spaces, so ids that differ only there ("a" and "a\t", "c d" and
// "c\nd") would be one to the stream's duplicate window, and the second
// request dropped as a duplicate of the first. Such text, and text that
// starts with a double quote, is quoted (strconv.Quote), which no text
// returned as it is can be.
func MsgIDPart(s string) string {
	if s == "" || !strings.ContainsAny(s, "\r\n") && textproto.TrimString(s) == s && s[0] != '"' {
		return s
	}
	return strconv.Quote(s)
}
