package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore/events"
)

// Source names a stream of work delivered to orchestrators.
type Source int

// Orchestrator sources.
const (
	// SourceExternal delivers history records the API appended (start, signal, cancel).
	SourceExternal Source = iota + 1
	// SourceResults delivers executors' attempt results.
	SourceResults
	// SourceTimers delivers fired durable timers.
	SourceTimers
	// SourceStart delivers starts the API sends directly (DirectStarts).
	SourceStart
	// SourceRetention delivers closed runs whose retention ran out
	// (ScheduleDeletion).
	SourceRetention
)

func (s Source) String() string {
	switch s {
	case SourceExternal:
		return "external"
	case SourceResults:
		return "results"
	case SourceTimers:
		return "timers"
	case SourceStart:
		return "start"
	case SourceRetention:
		return "retention"
	}
	return "unknown"
}

// Delivery is one message handed to a consumer. Exactly one of Message,
// Result, Timer, Task, Event, Tick, Start or Deletion is set, unless Err
// says the payload was corrupt. The receiver must settle it with Ack, Nak or Term.
type Delivery struct {
	// Source is where it came from (0 for task deliveries).
	Source Source
	// WorkflowID the message belongs to (from its subject).
	WorkflowID string
	// Seq is the message's stream sequence.
	Seq uint64
	// NumDelivered counts deliveries of this message, from 1.
	NumDelivered int
	// Stored is when the stream stored the message (zero when not known).
	Stored time.Time
	// Subject the message was stored under.
	Subject string

	// Message is a history record (SourceExternal and task deliveries).
	Message *Message
	// Result is an executor's result (SourceResults).
	Result *events.Result
	// Timer is a fired timer (SourceTimers).
	Timer *events.TimerDue
	// Task is the step command of a task delivery.
	Task *events.StepScheduled
	// Event is a message captured on a trigger subject.
	Event *TriggerEvent
	// Tick is a due cron tick (with Err, one that does not decode: only
	// the trigger its subject names).
	Tick *CronTick
	// Start is a start sent directly (SourceStart).
	Start *DirectStart
	// Deletion is a run's deletion come due (SourceRetention).
	Deletion *DeletionDue
	// Owner is the orchestrator that appended a task delivery's command
	// (ReportResult sends the result to it first); "" when not named.
	Owner string
	// Definition is the definition of a task delivery's run, as its
	// record or command names it; "" when neither does (commands stored
	// by earlier versions: DefinitionOf reads it from history).
	Definition string
	// Err is set when the payload did not decode.
	Err error

	msg jetstream.Msg
	// reply settles a result sent directly (msg is nil then).
	reply func(ok bool)
}

// Ack settles the delivery as done.
func (d *Delivery) Ack() error {
	if d.reply != nil {
		d.reply(true)
		return nil
	}
	return d.msg.Ack()
}

// Nak asks for redelivery after delay (0: at once). A result sent directly
// goes back to its executor, which asks the orchestrators' queue group
// next (when it had asked its owner) or publishes it to the results stream.
func (d *Delivery) Nak(delay time.Duration) error {
	if d.reply != nil {
		d.reply(false)
		return nil
	}
	if delay <= 0 {
		return d.msg.Nak()
	}
	return d.msg.NakWithDelay(delay)
}

// InProgress resets the ack wait: the receiver is still working on it.
func (d *Delivery) InProgress() error {
	if d.reply != nil {
		return nil
	}
	return d.msg.InProgress()
}

// Term settles the delivery for good without success; it is not
// redelivered. A start sent directly is declined instead: its sender then
// appends it, so no start is lost to an orchestrator that cannot read it.
func (d *Delivery) Term(reason string) error {
	if d.reply != nil {
		d.reply(d.Source != SourceStart)
		return nil
	}
	return d.msg.TermWithReason(reason)
}

// Feed is a running pull subscription on a durable consumer.
type Feed struct {
	decode func(jetstream.Msg, *Delivery)
	src    Source
	// reopen subscribes again (re-creating the durable consumer if it is
	// gone) when the subscription ends without Stop.
	reopen func() (jetstream.MessagesContext, error)
	// gone reports whether the durable consumer no longer exists.
	gone func() bool

	mu      sync.Mutex
	it      jetstream.MessagesContext
	stopped bool
}

// ErrFeedClosed is returned by Feed.Next after Stop.
var ErrFeedClosed = errors.New("eventstore: feed closed")

func (f *Feed) iter() (jetstream.MessagesContext, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.it, f.stopped
}

// recover replaces a subscription that ended without Stop (its consumer
// was deleted, its stream recreated): a feed never quietly stops.
func (f *Feed) recover() error {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		if _, stopped := f.iter(); stopped {
			return ErrFeedClosed
		}
		it, err := f.reopen()
		if err == nil {
			f.mu.Lock()
			if f.stopped {
				f.mu.Unlock()
				it.Stop()
				return ErrFeedClosed
			}
			f.it = it
			f.mu.Unlock()
			return nil
		}
		time.Sleep(wait)
	}
}

// Next blocks until the next delivery or until the feed stops.
//
// Errors: ErrFeedClosed after Stop.
func (f *Feed) Next() (*Delivery, error) {
	for {
		it, stopped := f.iter()
		if stopped {
			return nil, ErrFeedClosed
		}
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrNoHeartbeat) && f.gone() {
				it.Stop()
				if err := f.recover(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		md, err := msg.Metadata()
		if err != nil {
			_ = msg.Term()
			continue
		}
		d := &Delivery{Source: f.src, Seq: md.Sequence.Stream, NumDelivered: int(md.NumDelivered),
			Stored: md.Timestamp, Subject: msg.Subject(), msg: msg}
		f.decode(msg, d)
		return d, nil
	}
}

// Stop ends the feed. The deliveries it buffered but never handed out
// go back at once, for another orchestrator; those handed out and not
// settled are redelivered after the ack wait.
func (f *Feed) Stop() {
	f.mu.Lock()
	f.stopped = true
	it := f.it
	f.mu.Unlock()
	it.Drain()
	deadline := time.Now().Add(stopHandBack)
	for wait := time.Until(deadline); wait > 0; wait = time.Until(deadline) {
		m, err := it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			break
		}
		_ = m.Nak()
	}
	it.Stop()
}

// stopHandBack bounds how long Stop hands buffered deliveries back.
const stopHandBack = 2 * time.Second

// Feed subscribes to one of the orchestrator's durable consumers. max
// bounds the messages buffered in the client.
func (s *Store) Feed(ctx context.Context, src Source, max int) (*Feed, error) {
	var stream, durable string
	var decode func(jetstream.Msg, *Delivery)
	switch src {
	case SourceExternal:
		stream, durable = HistoryStream, ExternalConsumer
		decode = func(m jetstream.Msg, d *Delivery) {
			d.WorkflowID = token(m.Subject(), 2)
			md, _ := m.Metadata()
			msg := decodeMsg(d.Seq, m.Subject(), md.Timestamp, m.Data())
			d.Message, d.Err = &msg, msg.Err
		}
	case SourceResults:
		stream, durable = ResultsStream, ResultsConsumer
		decode = func(m jetstream.Msg, d *Delivery) {
			d.WorkflowID = token(m.Subject(), 2)
			r, err := events.DecodeResult(m.Data())
			if err != nil {
				d.Err = err
				return
			}
			d.Result = &r
		}
	case SourceTimers:
		stream, durable = TimersStream, TimersConsumer
		decode = func(m jetstream.Msg, d *Delivery) {
			d.WorkflowID = token(m.Subject(), 3)
			t, err := events.DecodeTimer(m.Data())
			if err != nil {
				d.Err = err
				return
			}
			d.Timer = &t
		}
	case SourceRetention:
		stream, durable, decode = TimersStream, RetentionConsumer, decodeDeletion
		if err := s.openRetentionConsumer(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("eventstore: unknown source %d", src)
	}
	cons, err := s.js.Consumer(ctx, stream, durable)
	if err != nil {
		return nil, fmt.Errorf("eventstore: consumer %s: %w", durable, err)
	}
	return s.feed(cons, src, max, decode)
}

func (s *Store) feed(cons jetstream.Consumer, src Source, max int, decode func(jetstream.Msg, *Delivery)) (*Feed, error) {
	if max <= 0 {
		max = 256
	}
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(max), jetstream.PullExpiry(5 * time.Second)}
	it, err := cons.Messages(opts...)
	if err != nil {
		return nil, fmt.Errorf("eventstore: subscribe: %w", err)
	}
	info := cons.CachedInfo()
	reopen := func() (jetstream.MessagesContext, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := s.js.CreateOrUpdateConsumer(ctx, info.Stream, info.Config)
		if err != nil {
			return nil, err
		}
		return c.Messages(opts...)
	}
	gone := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s.js.Consumer(ctx, info.Stream, info.Name)
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	}
	return &Feed{it: it, decode: decode, src: src, reopen: reopen, gone: gone}, nil
}

// token returns the i-th dot-separated token of subj.
func token(subj string, i int) string {
	parts := strings.SplitN(subj, ".", i+2)
	if len(parts) <= i {
		return ""
	}
	return parts[i]
}

var taskTypePattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// ValidTaskType reports whether typ can name a task type: parts of
// letters, digits, '_' and '-', separated by single dots (as definitions
// write them), at most events.MaxTaskType bytes.
func ValidTaskType(typ string) bool {
	return len(typ) <= events.MaxTaskType && taskTypePattern.MatchString(typ)
}

// TaskConsumerName returns the durable consumer of a task type's
// commands. Names are one-to-one with task types: letters, digits and '-'
// stay, '.' becomes '_' (the names of types without '_' are the ones
// earlier versions used), '_' becomes "~_" and any other byte "~XX" (hex).
// A name longer than 128 characters is cut there and ends in a hash of
// the whole type instead (so it is longer than any uncut one).
func TaskConsumerName(taskType string) string {
	var b strings.Builder
	for i := 0; i < len(taskType); i++ {
		switch c := taskType[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '.':
			b.WriteByte('_')
		case c == '_':
			b.WriteString("~_")
		default:
			fmt.Fprintf(&b, "~%02X", c)
		}
	}
	name := b.String()
	if len(name) > 128 {
		h := sha256.Sum256([]byte(taskType))
		name = name[:128] + "~h" + hex.EncodeToString(h[:8])
	}
	return taskConsumerPfx + name
}

// legacyTaskConsumerName is the name earlier versions gave a task type's
// consumer: '.' and '_' both became '_', so two types could share one.
func legacyTaskConsumerName(taskType string) string {
	r := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_")
	return taskConsumerPfx + r.Replace(taskType)
}

// EnsureTaskConsumer creates the durable consumer that delivers taskType's
// step commands to executors, if it does not exist yet. The orchestrator
// calls it before dispatching a task type for the first time, so no command
// is ever published without a consumer to pick it up.
//
// A type whose consumer had another name in earlier versions (a type with
// '_') gets its new consumer starting after the commands the old one had
// settled, when the old one still filters on this type; the old consumer
// is left in place (delete it once no executor of an earlier version runs).
//
// Its ack wait is the longest TaskAckWait of the parts that ensured it:
// one part's shorter value never shortens it, so an executor, which keeps
// its commands claimed every third of its own TaskAckWait, beats well
// within the consumer's. (Parts given different --task-ack-wait values
// would otherwise set it in turn, and a command an executor still ran
// would be handed to another.)
func (s *Store) EnsureTaskConsumer(ctx context.Context, taskType string) error {
	if !ValidTaskType(taskType) {
		return fmt.Errorf("eventstore: invalid task type %q: use letters, digits, _ and -, in parts separated by single dots", taskType)
	}
	s.taskMu.Lock()
	ready := s.taskReady[taskType]
	s.taskMu.Unlock()
	if ready {
		return nil
	}
	name := TaskConsumerName(taskType)
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "executors: step commands of task type " + taskType,
		FilterSubject: historyPrefix + "*.task." + taskType,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       s.cfg.TaskAckWait,
		// Unbounded: executors count attempts (in history), not deliveries.
		MaxDeliver:    -1,
		MaxAckPending: s.cfg.TaskMaxAckPending,
		Replicas:      s.cfg.Replicas,
	}
	var err error
	for try := 0; try < 3; try++ {
		if err = s.taskStart(ctx, taskType, &cfg); err != nil {
			break
		}
		if err = s.ensureConsumer(ctx, HistoryStream, cfg, true); err == nil {
			break
		}
		// Another process may have created it meanwhile: look again.
	}
	if err != nil {
		return fmt.Errorf("eventstore: task consumer for %q: %w", taskType, err)
	}
	s.taskMu.Lock()
	s.taskReady[taskType] = true
	s.taskMu.Unlock()
	return nil
}

// taskStart sets where the task consumer cfg starts: where it started if
// it exists (that cannot change), after what the consumer of an earlier
// version had settled if that one filters on taskType, else at the start.
func (s *Store) taskStart(ctx context.Context, taskType string, cfg *jetstream.ConsumerConfig) error {
	old := legacyTaskConsumerName(taskType)
	if old == cfg.Durable {
		return nil
	}
	cur, err := s.js.Consumer(ctx, HistoryStream, cfg.Durable)
	if err == nil {
		cfg.DeliverPolicy, cfg.OptStartSeq = cur.CachedInfo().Config.DeliverPolicy, cur.CachedInfo().Config.OptStartSeq
		return nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return err
	}
	prev, err := s.js.Consumer(ctx, HistoryStream, old)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if info := prev.CachedInfo(); info.Config.FilterSubject == cfg.FilterSubject && info.AckFloor.Stream > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1
	}
	return nil
}

// StoredBeforeSession reports whether the history record at seq was stored
// before this store's connection last (re)connected to NATS, or before a
// task consumer it pulls from was last found made again. A step command
// stored then may have been run already, by an executor that is gone or
// through a server that restarted, even when its delivery says it is the
// first: a server that crashes can lose its consumers' latest state, and a
// consumer made again has none, and either delivers again, as new,
// commands that were acked.
func (s *Store) StoredBeforeSession(ctx context.Context, seq uint64) (bool, error) {
	s.sessionMu.Lock()
	defer s.sessionMu.Unlock()
	if r := s.nc.Stats().Reconnects; r != s.sessionReconnects {
		// Reconnected (or a consumer made again) since: everything
		// stored until now is from before.
		info, err := s.history.Info(ctx)
		if err != nil {
			return false, fmt.Errorf("eventstore: history stream: %w", err)
		}
		s.sessionReconnects, s.sessionSeq = r, info.State.LastSeq
	}
	return seq <= s.sessionSeq, nil
}

// newSession makes every record stored until the next StoredBeforeSession
// count as stored before the session, as a reconnect does.
func (s *Store) newSession() {
	s.sessionMu.Lock()
	s.sessionReconnects = ^uint64(0)
	s.sessionMu.Unlock()
}

// Puller pulls a task type's step commands only as many at a time as the
// caller has room for, so no command waits in a client buffer while its
// ack wait runs out. A consumer that is gone (deleted, or lost with its
// stream's state) is made again at the next Fetch. A consumer made again,
// here or by another process, delivers every stored command again as if
// for the first time; the puller finds it so (its delivery sequence goes
// back, or its creation time changed when looked at, at most once every
// consumerLookEvery) and begins a new session (StoredBeforeSession), so
// those commands are checked against history before they run. Fetch is
// for one goroutine at a time.
type Puller struct {
	store  *Store
	typ    string
	cons   jetstream.Consumer
	decode func(jetstream.Msg, *Delivery)
	// delivered is the consumer's delivery sequence of the last command
	// fetched (at first, of the last it had delivered to anyone).
	delivered uint64
	// created is when the consumer was made, as last looked at (looked).
	created, looked time.Time
}

// consumerLookEvery is how often a puller that fetches looks at its
// consumer's creation time: another executor can take all of a consumer
// made again's first deliveries, so this one's sequence need not go back.
const consumerLookEvery = time.Second

// TaskPuller returns a puller of taskType's step commands.
func (s *Store) TaskPuller(ctx context.Context, taskType string) (*Puller, error) {
	p := &Puller{store: s, typ: taskType}
	if err := p.open(ctx); err != nil {
		return nil, err
	}
	p.decode = func(m jetstream.Msg, d *Delivery) {
		d.WorkflowID = token(m.Subject(), 2)
		d.Owner = m.Headers().Get(ownerHeader)
		md, _ := m.Metadata()
		msg := decodeMsg(d.Seq, m.Subject(), md.Timestamp, m.Data())
		d.Message, d.Err = &msg, msg.Err
		if msg.Err != nil {
			return
		}
		last := msg.Record.Events[len(msg.Record.Events)-1]
		if last.StepScheduled == nil {
			d.Err = fmt.Errorf("%w: record at seq %d on a task subject holds no StepScheduled", events.ErrCorrupt, d.Seq)
			return
		}
		d.Task = last.StepScheduled
		if d.Definition = m.Headers().Get(defHeader); d.Definition == "" {
			d.Definition = d.Task.Definition
		}
	}
	return p, nil
}

// open looks up the task type's consumer, making it if it is not there.
func (p *Puller) open(ctx context.Context) error {
	if err := p.store.EnsureTaskConsumer(ctx, p.typ); err != nil {
		return err
	}
	cons, err := p.store.js.Consumer(ctx, HistoryStream, TaskConsumerName(p.typ))
	if err != nil {
		return fmt.Errorf("eventstore: task consumer for %q: %w", p.typ, err)
	}
	// Delivered before: what a consumer made again delivers from then on
	// comes with a sequence at or below it.
	info := cons.CachedInfo()
	p.cons, p.delivered, p.created, p.looked = cons, info.Delivered.Consumer, info.Created, time.Now()
	return nil
}

// look begins a new session when the consumer was made again since it was
// last looked at (a consumer that cannot be looked at now is left to the
// fetch).
func (p *Puller) look(ctx context.Context) {
	if time.Since(p.looked) < consumerLookEvery {
		return
	}
	info, err := p.cons.Info(ctx)
	if err != nil {
		return
	}
	if !info.Created.Equal(p.created) {
		p.store.newSession()
		p.created = info.Created
	}
	p.looked = time.Now()
}

// gone makes the puller's consumer again when a fetch's error err says it
// no longer exists (deleted while a pull waited, or not found: a pull finds
// no responder then), and returns err, saying so.
func (p *Puller) gone(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted):
	case errors.Is(err, nats.ErrNoResponders):
		// Also what a pull gets while JetStream has no leader to answer.
		if _, lerr := p.store.js.Consumer(ctx, HistoryStream, TaskConsumerName(p.typ)); !errors.Is(lerr, jetstream.ErrConsumerNotFound) {
			return err
		}
	default:
		return err
	}
	p.store.taskMu.Lock()
	delete(p.store.taskReady, p.typ)
	p.store.taskMu.Unlock()
	if oerr := p.open(ctx); oerr != nil {
		return fmt.Errorf("%w; making it again: %w", err, oerr)
	}
	p.store.newSession()
	return fmt.Errorf("%w; made again", err)
}

// Fetch asks for up to n commands and calls fn with each as it arrives,
// for up to wait or until ctx ends.
func (p *Puller) Fetch(ctx context.Context, n int, wait time.Duration, fn func(*Delivery)) error {
	p.look(ctx)
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	batch, err := p.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		return fmt.Errorf("eventstore: fetch: %w", p.gone(ctx, err))
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			continue
		}
		if md.Sequence.Consumer <= p.delivered {
			p.store.newSession() // the consumer was made again
		}
		p.delivered = md.Sequence.Consumer
		d := &Delivery{Seq: md.Sequence.Stream, NumDelivered: int(md.NumDelivered), Subject: m.Subject(), msg: m}
		p.decode(m, d)
		fn(d)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("eventstore: fetch: %w", p.gone(ctx, err))
	}
	return nil
}

// PublishResult reports a task attempt's outcome to the orchestrators. The
// message id names the workflow, step, scheduling, attempt and outcome,
// and the command the attempt ran (or, for a child's outcome, the parent
// run), so a retried publish is deduplicated and the same attempt of a run
// started again under a deleted run's id is not.
func (s *Store) PublishResult(ctx context.Context, r events.Result) error {
	data, err := events.EncodeResult(r)
	if err != nil {
		return fmt.Errorf("eventstore: encode result: %w", err)
	}
	return s.publishResult(ctx, r, data)
}

// publishResult publishes r, already encoded as data, to the results stream.
func (s *Store) publishResult(ctx context.Context, r events.Result, data []byte) error {
	id := fmt.Sprintf("res/%s/%s/%d/%d/%d", r.WorkflowID, r.Path, r.Gen, r.Attempt, r.Outcome)
	switch {
	case r.Cmd > 0:
		id += "/" + strconv.FormatUint(r.Cmd, 10)
	case !r.ParentCreated.IsZero():
		id += "/p" + strconv.FormatInt(r.ParentCreated.UnixNano(), 10)
	}
	if _, err := s.js.Publish(ctx, resultsPrefix+r.WorkflowID, data, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("eventstore: publish result for %s/%s: %w", r.WorkflowID, r.Path, natsErr(err))
	}
	return nil
}

// ScheduleTimer makes timer t fire at t.Due (rounded up to the second, the
// schedules' precision). Each time a timer is due at has a schedule of its
// own: scheduling the same timer at the same time again replaces it, so the
// call is idempotent, and a schedule at another time stands beside it. So a
// decision that lost its append, deciding a timer from its own later clock,
// never moves the time the winner scheduled; whichever of the two fires
// when the history no longer waits on it is found not to apply.
func (s *Store) ScheduleTimer(ctx context.Context, t events.TimerDue) error {
	data, err := events.EncodeTimer(t)
	if err != nil {
		return fmt.Errorf("eventstore: encode timer: %w", err)
	}
	// No message id: a decision made again (after a crash or a conflict)
	// must schedule its timer again even within the dedup window, in case
	// the first one fired and was given up on before the record showed. A
	// timer that fires twice is recorded once.
	at := scheduleAt(t.Due)
	subject := timerSchedPfx + t.WorkflowID + "." + t.TimerID + "." + strconv.FormatInt(at.Unix(), 10)
	if err := s.schedule(ctx, subject, timerFirePfx+t.WorkflowID, t.Due, data, ""); err != nil {
		return fmt.Errorf("eventstore: schedule timer %s of %s: %w", t.TimerID, t.WorkflowID, err)
	}
	return nil
}

// scheduleAt is when a schedule for due fires: due rounded up to the
// second, the schedules' precision.
func scheduleAt(due time.Time) time.Time {
	at := due.UTC().Truncate(time.Second)
	if at.Before(due) {
		at = at.Add(time.Second)
	}
	return at
}

// schedule publishes a message schedule on subject (one pending per
// subject: publishing again replaces it) that delivers data to target at
// due, rounded up to the second (the schedules' precision), so it never
// fires early by more than the rounding the firing side checks for.
func (s *Store) schedule(ctx context.Context, subject, target string, due time.Time, data []byte, msgID string) error {
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set("Nats-Schedule", "@at "+scheduleAt(due).Format(time.RFC3339))
	msg.Header.Set("Nats-Schedule-Target", target)
	if msgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	_, err := s.js.PublishMsg(ctx, msg)
	return err
}

// CancelTimer removes a timer's pending schedules; it is a no-op when the
// timer fired or never existed. A schedule written before the time was
// part of its subject (Weft before schedules were kept per time) is left
// to fire and be found not to apply.
func (s *Store) CancelTimer(ctx context.Context, wf, timerID string) error {
	err := s.timers.Purge(ctx, jetstream.WithPurgeSubject(timerSchedPfx+wf+"."+timerID+".>"))
	if err != nil {
		return fmt.Errorf("eventstore: cancel timer %s of %s: %w", timerID, wf, err)
	}
	return nil
}
