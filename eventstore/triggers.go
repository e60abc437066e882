package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
)

// The trigger failures kept: the newest TriggerFailuresKept, or fewer
// when they take more than TriggerFailuresMaxBytes (a failure keeps its
// payload, up to the NATS message limit: a flood of large ones, from a
// webhook open to anyone say, must not fill the disks).
const (
	TriggerFailuresKept     = 100000
	TriggerFailuresMaxBytes = 256 << 20
	// triggerFailuresMinBytes is the least the trigger failures are kept
	// in, where JetStream has not room for TriggerFailuresMaxBytes.
	triggerFailuresMinBytes = 4 << 20
)

// Trigger streams, consumers and buckets.
const (
	TriggersStream        = "WEFT_TRIGGERS"
	TriggerFailuresStream = "WEFT_TRIGGER_FAILURES"
	TriggersConsumer      = "weft-triggers"
	CronConsumer          = "weft-cron"
	CronBucket            = "weft-cron"

	// triggerIdleSubject keeps the trigger stream valid while no trigger
	// names a subject.
	triggerIdleSubject = "weft.trigger.idle"
	cronSchedPfx       = "weft.t.cs."
	cronFirePfx        = "weft.t.cf."
	failurePfx         = "weft.fail.trigger"
)

func (s *Store) openTriggers(ctx context.Context) error {
	cfg := s.cfg
	// No subjects: the stream keeps those the trigger engine set. A
	// message without a Nats-Msg-Id is known by its sequence (its run's id
	// is made of it), so a stream made again (deleted, or lost) must not
	// number from 1 again, where its new messages would be taken for the
	// runs of the old ones: it begins at the time in microseconds, past
	// every sequence a stream made before it reached.
	if _, err := s.ensureStream(ctx, jetstream.StreamConfig{
		Name:        TriggersStream,
		Description: "Weft trigger events: messages on trigger subjects, kept until a workflow is started for them",
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		FirstSeq:    uint64(time.Now().UnixMicro()),
	}, []string{triggerIdleSubject}, nil); err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", TriggersStream, err)
	}
	// JetStream reserves a stream's MaxBytes when it makes or bounds the
	// stream: on a server or account with less room than that to give (on
	// a cluster: no servers to place it on with that room), the stream is
	// bounded by a quarter of it, and so on. A smaller bound the
	// stream has (an operator's, or one made so before) stays.
	var err error
	for size := int64(TriggerFailuresMaxBytes); ; size /= 4 {
		_, err = s.ensureStream(ctx, jetstream.StreamConfig{
			Name:        TriggerFailuresStream,
			Description: "Weft trigger failures: events that started no workflow, and why",
			Subjects:    []string{failurePfx},
			Retention:   jetstream.LimitsPolicy,
			MaxMsgs:     TriggerFailuresKept,
			Storage:     cfg.Storage,
			Replicas:    cfg.Replicas,
			AllowDirect: true,
		}, nil, func(c *jetstream.StreamConfig) {
			if c.MaxBytes <= 0 || c.MaxBytes > size {
				c.MaxBytes = size
			}
		})
		if err == nil || !isNoSpace(err) && !noRoomToPlace(err) || size <= triggerFailuresMinBytes {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("eventstore: create stream %s: %w", TriggerFailuresStream, natsErr(err))
	}
	for _, sc := range []struct {
		stream string
		c      jetstream.ConsumerConfig
	}{
		{TriggersStream, jetstream.ConsumerConfig{Durable: TriggersConsumer, Description: "trigger engine: events on trigger subjects"}},
		{TimersStream, jetstream.ConsumerConfig{Durable: CronConsumer, FilterSubject: cronFirePfx + ">", Description: "trigger engine: cron ticks"}},
	} {
		c := sc.c
		c.AckPolicy, c.DeliverPolicy = jetstream.AckExplicitPolicy, jetstream.DeliverAllPolicy
		c.AckWait, c.MaxDeliver, c.MaxAckPending, c.Replicas = cfg.OrchestratorAckWait, -1, 20000, cfg.Replicas
		if err := s.ensureConsumer(ctx, sc.stream, c, false); err != nil {
			return fmt.Errorf("eventstore: create consumer %s: %w", c.Durable, err)
		}
	}
	var err2 error
	// (The description is an earlier version's: one that finds it
	// otherwise changes it back, and cannot, as AllowMsgTTL stays.)
	if s.cron, s.cronTTL, err2 = s.ensureTTLBucket(ctx, jetstream.KeyValueConfig{
		Bucket: CronBucket, Description: "Weft cron triggers: the last tick handled per trigger",
		Storage: cfg.Storage, Replicas: cfg.Replicas,
	}, true); err2 != nil {
		return fmt.Errorf("eventstore: create bucket %s: %w", CronBucket, err2)
	}
	return s.openWebhooks(ctx)
}

// SubjectsTakenError names trigger subjects that other streams capture
// (subject to stream): JetStream lets no two streams capture a subject,
// so the trigger stream captures the others without them.
type SubjectsTakenError struct{ Taken map[string]string }

// Error implements error, naming each subject and the stream taking it.
func (e *SubjectsTakenError) Error() string {
	var parts []string
	for subj, stream := range e.Taken {
		parts = append(parts, fmt.Sprintf("%s (stream %s)", subj, stream))
	}
	slices.Sort(parts)
	return "eventstore: trigger subjects captured by other streams, not taken: " + strings.Join(parts, ", ")
}

// StreamCapturing returns the name of a stream other than the trigger
// stream that captures subjects overlapping subject (wildcards allowed),
// or "" when there is none.
func (s *Store) StreamCapturing(ctx context.Context, subject string) (string, error) {
	names := s.js.StreamNames(ctx, jetstream.WithStreamListSubject(subject))
	found := ""
	for name := range names.Name() {
		if name != TriggersStream && found == "" {
			found = name
		}
	}
	if err := names.Err(); err != nil {
		return "", fmt.Errorf("eventstore: streams capturing %s: %w", subject, err)
	}
	return found, nil
}

// SetTriggerSubjects makes the trigger stream capture the subjects decide
// returns (wildcards allowed) given those it captures. A change is
// decided again under the subjects lock, over what is captured then, so a
// decision to stop capturing a subject is made after every put that
// captured it since (AddTriggerSubjects takes the lock too): decide looks
// the definitions up as stored then. Subjects covered by a wildcard in
// the list are dropped, as JetStream forbids overlaps; so are subjects
// another stream captures, which a *SubjectsTakenError then names, the
// others captured all the same.
func (s *Store) SetTriggerSubjects(ctx context.Context, decide func(ctx context.Context, captured []string) []string) error {
	if ok, err := s.capturing(ctx, func(have []string) bool { return slices.Equal(have, NormalizeSubjects(decide(ctx, have))) }); ok || err != nil {
		return err
	}
	return s.withSubjects(ctx, func(ctx context.Context, stream jetstream.Stream) error {
		want := decide(ctx, captured(stream))
		if err := ctx.Err(); err != nil {
			// Decided too slowly to write before the lock may go.
			return fmt.Errorf("eventstore: capture trigger subjects: %w", err)
		}
		return s.setTriggerSubjects(ctx, stream, want)
	})
}

// capturing reports whether the trigger stream's subjects, sorted and
// without the idle subject, are as ok wants them: then nothing is to
// change, and the lock is not taken.
func (s *Store) capturing(ctx context.Context, ok func(have []string) bool) (bool, error) {
	stream, err := s.js.Stream(ctx, TriggersStream)
	if err != nil {
		return false, fmt.Errorf("eventstore: trigger stream: %w", err)
	}
	return ok(slices.Sorted(slices.Values(captured(stream)))), nil
}

// subjectsLock is the cron bucket's key that one writer of the trigger
// stream's subjects holds at a time, for at most subjectsLockTTL: JetStream
// has no conditional stream update, so two writers that read the subjects
// at once (two definitions put through two API processes, a put and an
// engine's reconcile) would each write back their own, and one's subject
// would go uncaptured until the next reconcile.
const (
	subjectsLock    = "subjects-lock"
	subjectsLockTTL = 10 * time.Second
)

// withSubjects calls fn with the trigger stream as read under the
// subjects lock (without one on a server that cannot expire it, before
// NATS 2.11). fn's context ends half the lock's TTL after it was taken:
// what fn reads and writes under the lock is done well before another
// writer may take it.
func (s *Store) withSubjects(ctx context.Context, fn func(context.Context, jetstream.Stream) error) error {
	if s.cronTTL {
		rev, err := s.lockSubjects(ctx)
		if err != nil {
			return err
		}
		defer func() {
			// Given back only if still ours (it may have expired and been
			// taken); its marker goes like any other.
			_ = s.cron.Purge(context.WithoutCancel(ctx), subjectsLock, jetstream.LastRevision(rev), jetstream.PurgeTTL(s.cfg.MarkerTTL))
		}()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, subjectsLockTTL/2)
		defer cancel()
	}
	stream, err := s.js.Stream(ctx, TriggersStream)
	if err != nil {
		return fmt.Errorf("eventstore: trigger stream: %w", err)
	}
	return fn(ctx, stream)
}

// subjectsLockFree reports whether nobody holds the subjects lock now.
func (s *Store) subjectsLockFree(ctx context.Context) (bool, error) {
	if !s.cronTTL {
		return false, nil
	}
	_, err := s.getKV(ctx, s.cron, subjectsLock)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, nil
	}
	return false, err
}

// lockSubjects takes the subjects lock, waiting while another holds it,
// and returns its revision.
func (s *Store) lockSubjects(ctx context.Context) (uint64, error) {
	wait := 10 * time.Millisecond
	for {
		rev, err := s.cron.Create(ctx, subjectsLock, nil, jetstream.KeyTTL(subjectsLockTTL))
		if err == nil {
			return rev, nil
		}
		// Taken; or, over the marker a release left, taken by another
		// just before (a conditional write that lost).
		if !errors.Is(err, jetstream.ErrKeyExists) && !isConflict(err) {
			return 0, fmt.Errorf("eventstore: lock the trigger subjects: %w", err)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return 0, fmt.Errorf("eventstore: lock the trigger subjects: %w", ctx.Err())
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// setTriggerSubjects is SetTriggerSubjects under the lock.
func (s *Store) setTriggerSubjects(ctx context.Context, stream jetstream.Stream, subjects []string) error {
	want := NormalizeSubjects(subjects)
	err := s.captureTriggers(ctx, stream, want)
	if err == nil {
		return nil
	}
	// Each subject as given: one a taken wildcard covered is captured on
	// its own when another stream does not take it too.
	taken := map[string]string{}
	var free []string
	for _, subj := range slices.Compact(slices.Sorted(slices.Values(subjects))) {
		other, lerr := s.StreamCapturing(ctx, subj)
		if lerr != nil {
			return errors.Join(err, lerr)
		}
		if other != "" {
			taken[subj] = other
		} else {
			free = append(free, subj)
		}
	}
	if len(taken) == 0 {
		return err
	}
	if err := s.captureTriggers(ctx, stream, NormalizeSubjects(free)); err != nil {
		return errors.Join(&SubjectsTakenError{Taken: taken}, err)
	}
	return &SubjectsTakenError{Taken: taken}
}

// TriggerSubjects returns the subjects the trigger stream captures now.
func (s *Store) TriggerSubjects(ctx context.Context) ([]string, error) {
	stream, err := s.js.Stream(ctx, TriggersStream)
	if err != nil {
		return nil, fmt.Errorf("eventstore: trigger stream: %w", err)
	}
	return captured(stream), nil
}

// captured returns the trigger subjects stream captures, as last read.
func captured(stream jetstream.Stream) []string {
	return slices.DeleteFunc(slices.Clone(stream.CachedInfo().Config.Subjects), func(subj string) bool { return subj == triggerIdleSubject })
}

// AddTriggerSubjects makes the trigger stream capture subjects too, on top
// of what it captures: a definition's subjects are captured before its
// put is answered, so nothing published once it is is lost.
func (s *Store) AddTriggerSubjects(ctx context.Context, subjects []string) error {
	if len(subjects) == 0 {
		return nil
	}
	// Captured already, with nobody holding the lock before that was read:
	// an engine that takes it later looks up the definitions as stored
	// then, this put's among them. One that holds it may have decided to
	// stop capturing a subject before this put was stored: then the put
	// takes the lock after it, and captures its subjects again.
	if free, err := s.subjectsLockFree(ctx); err == nil && free {
		if ok, err := s.capturing(ctx, func(have []string) bool {
			return slices.Equal(have, NormalizeSubjects(append(slices.Clone(have), subjects...)))
		}); ok && err == nil {
			return nil
		}
	}
	return s.withSubjects(ctx, func(ctx context.Context, stream jetstream.Stream) error {
		return s.captureTriggers(ctx, stream, NormalizeSubjects(append(captured(stream), subjects...)))
	})
}

// captureTriggers updates the trigger stream to capture want, normalized
// (none: a subject of its own, as a stream needs one).
func (s *Store) captureTriggers(ctx context.Context, stream jetstream.Stream, want []string) error {
	if len(want) == 0 {
		want = []string{triggerIdleSubject}
	}
	cfg := stream.CachedInfo().Config
	have := slices.Clone(cfg.Subjects)
	slices.Sort(have)
	if slices.Equal(have, want) {
		return nil
	}
	cfg.Subjects = want
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("eventstore: capture trigger subjects %v: %w", want, err)
	}
	return nil
}

// NormalizeSubjects sorts and dedupes subjects and drops those another
// subject in the list already covers.
func NormalizeSubjects(subjects []string) []string {
	var out []string
	for _, a := range subjects {
		covered := false
		for _, b := range subjects {
			if a != b && SubjectMatches(b, a) {
				covered = true
				break
			}
		}
		if !covered && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// SubjectMatches reports whether pattern (with * and > wildcards) matches
// subject, which may itself hold wildcards (then: covers it).
func SubjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) {
			return false
		}
		if tok != "*" && tok != s[i] || tok == "*" && s[i] == ">" {
			return false
		}
	}
	return len(p) == len(s)
}

// TriggerFeed subscribes to the events captured on trigger subjects.
func (s *Store) TriggerFeed(ctx context.Context, max int) (*Feed, error) {
	cons, err := s.js.Consumer(ctx, TriggersStream, TriggersConsumer)
	if err != nil {
		return nil, fmt.Errorf("eventstore: consumer %s: %w", TriggersConsumer, err)
	}
	return s.feed(cons, 0, max, func(m jetstream.Msg, d *Delivery) {
		md, _ := m.Metadata()
		d.Event = &TriggerEvent{Subject: m.Subject(), Data: m.Data(), Headers: Header(m.Headers()), Seq: d.Seq, Time: md.Timestamp.UTC()}
	})
}

// TriggerEvent is a message captured on a trigger subject.
type TriggerEvent struct {
	Subject string
	Data    []byte
	Headers Header
	// Seq is its sequence in the trigger stream: its identity.
	Seq  uint64
	Time time.Time
}

// Header is a message's headers as NATS carries them: each key's values,
// in order. Keys are case-sensitive.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// MsgIDHeader is the header in which a producer names its message (NATS
// deduplicates on it).
const MsgIDHeader = "Nats-Msg-Id"

// CronTick is a due tick of a cron trigger.
type CronTick struct {
	V          int       `msgpack:"v"`
	Definition string    `msgpack:"def"`
	Key        string    `msgpack:"key"`
	Tick       time.Time `msgpack:"tick"`
}

// ScheduleCron makes the cron trigger key of definition def fire at tick
// (one pending tick per trigger: scheduling again replaces it).
func (s *Store) ScheduleCron(ctx context.Context, t CronTick) error {
	t.V = 1
	data, err := msgpack.Marshal(t)
	if err != nil {
		return err
	}
	if err := s.schedule(ctx, cronSchedPfx+t.Definition+"."+t.Key, cronFirePfx+t.Definition+"."+t.Key, t.Tick, data, ""); err != nil {
		return fmt.Errorf("eventstore: schedule cron %s/%s: %w", t.Definition, t.Key, err)
	}
	return nil
}

// CronSchedules returns the pending cron ticks by "<definition>.<key>".
func (s *Store) CronSchedules(ctx context.Context) (map[string]CronTick, error) {
	info, err := s.timers.Info(ctx, jetstream.WithSubjectFilter(cronSchedPfx+">"))
	if err != nil {
		return nil, fmt.Errorf("eventstore: cron schedules: %w", err)
	}
	out := map[string]CronTick{}
	for subj := range info.State.Subjects {
		m, err := s.timers.GetLastMsgForSubject(ctx, subj)
		if err != nil {
			continue
		}
		var t CronTick
		if msgpack.Unmarshal(m.Data, &t) == nil {
			out[strings.TrimPrefix(subj, cronSchedPfx)] = t
		}
	}
	return out, nil
}

// CancelCron removes the pending tick of a cron trigger, and forgets its
// last handled tick: a trigger removed and put back later resumes from
// then, not from before it was removed (the ticks of the time it did not
// exist are not caught up).
func (s *Store) CancelCron(ctx context.Context, def, key string) error {
	if err := s.timers.Purge(ctx, jetstream.WithPurgeSubject(cronSchedPfx+def+"."+key)); err != nil {
		return fmt.Errorf("eventstore: cancel cron %s/%s: %w", def, key, err)
	}
	if err := s.cron.Purge(ctx, def+"."+key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("eventstore: cancel cron %s/%s: %w", def, key, err)
	}
	return nil
}

// CronFeed subscribes to due cron ticks. A tick that does not decode has
// Delivery.Err set (wrapping events.ErrNewer for a tick of a later
// version), and Tick naming its trigger as its subject does.
func (s *Store) CronFeed(ctx context.Context, max int) (*Feed, error) {
	cons, err := s.js.Consumer(ctx, TimersStream, CronConsumer)
	if err != nil {
		return nil, fmt.Errorf("eventstore: consumer %s: %w", CronConsumer, err)
	}
	return s.feed(cons, 0, max, func(m jetstream.Msg, d *Delivery) {
		var t CronTick
		err := msgpack.Unmarshal(m.Data(), &t)
		if err == nil && t.V > 1 {
			// A newer version's: the engine gives it back for one that reads it.
			d.Err = fmt.Errorf("cron tick at seq %d: %w: version %d, this build reads 1", d.Seq, events.ErrNewer, t.V)
		} else if err != nil || t.V != 1 {
			d.Err = fmt.Errorf("invalid cron tick at seq %d", d.Seq)
		}
		if d.Err != nil {
			// Its trigger, as its subject names it, for the record.
			def, key, _ := strings.Cut(strings.TrimPrefix(m.Subject(), cronFirePfx), ".")
			d.Tick = &CronTick{Definition: def, Key: key}
			return
		}
		t.Tick = t.Tick.UTC()
		d.Tick = &t
	})
}

// LastCronTick returns the last tick handled for a cron trigger (zero if none).
func (s *Store) LastCronTick(ctx context.Context, def, key string) (time.Time, error) {
	e, err := s.getKV(ctx, s.cron, def+"."+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("eventstore: last cron tick: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.value))
	if err != nil {
		return time.Time{}, nil
	}
	return t, nil
}

// SetLastCronTick records the last tick handled for a cron trigger. It
// only moves forward: an earlier tick handled again (delivered twice)
// leaves a later one recorded.
func (s *Store) SetLastCronTick(ctx context.Context, def, key string, tick time.Time) error {
	k, v := def+"."+key, []byte(tick.UTC().Format(time.RFC3339Nano))
	for try := 0; ; try++ {
		e, err := s.getKV(ctx, s.cron, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = s.cron.Create(ctx, k, v)
		case err != nil:
		default:
			if last, perr := time.Parse(time.RFC3339Nano, string(e.value)); perr == nil && !last.Before(tick) {
				return nil
			}
			_, err = s.cron.Update(ctx, k, v, e.rev)
		}
		if err == nil {
			return nil
		}
		if try == 10 || !errors.Is(err, jetstream.ErrKeyExists) && !isConflict(err) {
			return fmt.Errorf("eventstore: last cron tick: %w", err)
		}
	}
}

// TriggerFailure records an event that started no workflow.
type TriggerFailure struct {
	Seq        uint64    `msgpack:"-"`
	Subject    string    `msgpack:"subj"`
	Time       time.Time `msgpack:"at"`
	Reason     string    `msgpack:"why"`
	Definition string    `msgpack:"def,omitempty"`
	Payload    []byte    `msgpack:"data,omitempty"`
}

// failureHeadroom is what a trigger failure's record leaves of the NATS
// message limit for its headers.
const failureHeadroom = 1 << 10

// RecordTriggerFailure appends a trigger failure. A failure too large to
// record with its payload (an event near the size limit, with its reason)
// is recorded without it, its reason saying so, and a reason longer than
// events.MaxErrorMessage is cut: a failure is always
// recorded, so the event is acked and the ones behind it go on.
func (s *Store) RecordTriggerFailure(ctx context.Context, f TriggerFailure) error {
	// A reason may quote the event: valid UTF-8 and bounded, as an error
	// is. A subject of bytes that are not UTF-8 (a NATS subject, a
	// webhook's path) reads back with U+FFFD in their place.
	f.Reason = events.Error{Message: f.Reason}.Fit().Message
	f.Subject = strings.ToValidUTF8(f.Subject, "\uFFFD")
	data, err := msgpack.Marshal(f)
	if err != nil {
		return err
	}
	if limit := s.MaxPayload() - failureHeadroom; int64(len(data)) > limit && len(f.Payload) > 0 {
		f.Reason += fmt.Sprintf(" (its payload of %d bytes is not kept: with the failure it is over the %d-byte NATS message limit)",
			len(f.Payload), s.MaxPayload())
		f.Payload = nil
		if data, err = msgpack.Marshal(f); err != nil {
			return err
		}
	}
	if _, err := s.js.Publish(ctx, failurePfx, data); err != nil {
		return fmt.Errorf("eventstore: record trigger failure: %w", natsErr(err))
	}
	return nil
}

// MaxTriggerFailuresPageBytes bounds the records a page of trigger
// failures holds, in bytes: each keeps its payload, of up to the NATS
// message limit, and a page of them is one answer, which a gRPC client
// refuses past 4 MiB by default. A page holds one failure at least.
const MaxTriggerFailuresPageBytes = 3 << 20

// ListTriggerFailures returns up to n failures, newest first, with stream
// sequence below before (0: from the newest), and the sequence to pass as
// before for the next page (0 when there is none). A page ends early
// rather than go past MaxTriggerFailuresPageBytes.
func (s *Store) ListTriggerFailures(ctx context.Context, n int, before uint64) ([]TriggerFailure, uint64, error) {
	stream, err := s.js.Stream(ctx, TriggerFailuresStream)
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: trigger failures: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("eventstore: trigger failures: %w", err)
	}
	seq := info.State.LastSeq
	if before > 0 && before-1 < seq {
		seq = before - 1
	}
	var out []TriggerFailure
	size := 0
	for ; seq >= info.State.FirstSeq && seq > 0 && len(out) < n && size < MaxTriggerFailuresPageBytes; seq-- {
		m, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("eventstore: trigger failure %d: %w", seq, err)
		}
		var f TriggerFailure
		if msgpack.Unmarshal(m.Data, &f) != nil {
			continue
		}
		if size += len(m.Data); size > MaxTriggerFailuresPageBytes && len(out) > 0 {
			break // the next page starts with it
		}
		f.Seq = seq
		out = append(out, f)
	}
	next := uint64(0)
	if seq >= info.State.FirstSeq && seq > 0 {
		next = seq + 1
	}
	return out, next, nil
}

// clusterNoPeers is JetStream's error code for a stream no servers of the
// cluster can take (JSClusterNoPeersErr).
const clusterNoPeers jetstream.ErrorCode = 10005

// noRoomToPlace reports whether err is a NATS cluster's refusal to place a
// stream for want of storage on its servers ("no suitable peers for
// placement, insufficient storage").
func noRoomToPlace(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == clusterNoPeers &&
		strings.Contains(apiErr.Description, "insufficient storage")
}
