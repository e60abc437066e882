package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// Retention. A closed run whose definition (or the server) keeps runs for
// a while gets a message schedule on weft.t.rs.<id> in the timers stream
// that fires, at the run's close plus its retention, to weft.t.rf.<id>,
// which orchestrators consume (SourceRetention). The orchestrator reads the
// run again and deletes it (DeleteRun) only if it is still closed and
// closed long enough; the fired message is acked only once everything is
// deleted, so a deletion cut short is finished when it comes back.
//
// Deleting needs purges on the history stream. Weft creates it with
// DenyDelete (no record is ever removed one by one, so a history is
// either whole or gone: its records link to each other) and, since
// retention, without DenyPurge: only DeleteRun purges it, one run's
// subject tree at a time, after checking the run is closed past its
// retention. A stream created by an earlier version denies purges, and
// JetStream cannot lift that on a stream: its runs are not deleted (the
// orchestrator logs ErrPurgeDenied) until the stream is recreated.
const (
	retentionSchedPfx = "weft.t.rs."
	retentionFirePfx  = "weft.t.rf."
	// RetentionConsumer is the orchestrators' consumer of runs whose
	// retention ran out.
	RetentionConsumer = "weft-orchestrator-retention"
)

// ErrPurgeDenied: the history stream denies purges (it was created by an
// earlier version of Weft), so no run can be deleted from it.
var ErrPurgeDenied = errors.New("eventstore: the history stream denies purges (created by an earlier version); recreate it to delete runs")

// historyDenyPurge returns the DenyPurge the history stream keeps: what it
// has when it exists (JetStream cannot turn it off), else false.
func (s *Store) historyDenyPurge(ctx context.Context) bool {
	st, err := s.js.Stream(ctx, HistoryStream)
	return err == nil && st.CachedInfo().Config.DenyPurge
}

// openRetentionConsumer creates or updates the consumer of runs due for
// deletion.
func (s *Store) openRetentionConsumer(ctx context.Context) error {
	err := s.ensureConsumer(ctx, TimersStream, jetstream.ConsumerConfig{
		Durable:       RetentionConsumer,
		Description:   "orchestrator: closed runs whose retention ran out",
		FilterSubject: retentionFirePfx + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       s.cfg.OrchestratorAckWait,
		MaxDeliver:    -1,
		// Deletions are handed out in bounded batches.
		MaxAckPending: 256,
		Replicas:      s.cfg.Replicas,
	}, false)
	if err != nil {
		return fmt.Errorf("eventstore: create consumer %s: %w", RetentionConsumer, err)
	}
	return nil
}

// DeletionDue is a run whose retention ran out, as its schedule delivers it.
type DeletionDue struct {
	// Due is when it was scheduled for.
	Due time.Time
}

func decodeDeletion(m jetstream.Msg, d *Delivery) {
	d.WorkflowID = token(m.Subject(), 3)
	due, err := time.Parse(time.RFC3339Nano, string(m.Data()))
	if err != nil {
		d.Err = fmt.Errorf("deletion of %s: %w", d.WorkflowID, err)
		return
	}
	d.Deletion = &DeletionDue{Due: due}
}

// ScheduleDeletion makes wf's deletion come due (SourceRetention) at due,
// rounded up to the second. Scheduling again replaces the pending one, so
// the call is idempotent and a later close moves the deletion on.
func (s *Store) ScheduleDeletion(ctx context.Context, wf string, due time.Time) error {
	if !ValidWorkflowID(wf) {
		return fmt.Errorf("eventstore: invalid workflow id %q", wf)
	}
	data := []byte(due.UTC().Format(time.RFC3339Nano))
	if err := s.schedule(ctx, retentionSchedPfx+wf, retentionFirePfx+wf, due, data, ""); err != nil {
		return fmt.Errorf("eventstore: schedule deletion of %s: %w", wf, err)
	}
	return nil
}

// DeleteRun deletes what Weft stores of workflow wf's run whose history
// the caller read up to sequence upTo (0: whatever it holds): its
// snapshot, its timers, results waiting for it, its listing entry and,
// last, its history, each up to what is there when the deletion begins.
// While the history is there no run can be started under wf, so nothing
// purged can be a new run's, even when another deletion of the run
// finishes first. The caller checks that wf may go; the
// deletion of its pending deletion schedule is left to the caller's ack.
// It is idempotent: a deletion cut short is finished by calling it again.
//
// Errors: ErrPurgeDenied when the history stream denies purges;
// ErrConflict when the history holds more than upTo (a record appended
// since the caller's read, or a new run under wf after another deletion
// of the run finished): the caller reads it again.
func (s *Store) DeleteRun(ctx context.Context, wf string, upTo uint64) error {
	if !ValidWorkflowID(wf) {
		return fmt.Errorf("eventstore: invalid workflow id %q", wf)
	}
	if s.PurgeDenied() {
		return ErrPurgeDenied
	}
	leftovers := []struct {
		stream  jetstream.Stream
		subject string
		bound   uint64 // the stream's last sequence before the history was checked
	}{
		{s.snaps, snapPrefix + wf + ".>", 0},
		{s.timers, timerSchedPfx + wf + ".>", 0},
		{s.timers, timerFirePfx + wf, 0},
		{s.results, resultsPrefix + wf, 0},
	}
	// Read before the history is checked: while it is there no run can be
	// started under wf, so what the streams and the entry hold up to here
	// is this run's. Another deletion of the run (a delivery handed out
	// again, beside the first) that finishes before these purges lets a
	// new run start under wf, and the purges, bounded, leave its timers,
	// results, snapshot and entry be.
	for i := range leftovers {
		info, err := leftovers[i].stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("eventstore: delete %s: %w", wf, err)
		}
		leftovers[i].bound = info.State.LastSeq
	}
	entry, listed, err := s.indexEntry(ctx, wf)
	if err != nil {
		return err
	}
	// The history's last record: an entry at or below it is this run's,
	// never one of a run started under wf after the history goes.
	last, err := s.LastSeq(ctx, wf)
	if errors.Is(err, ErrNotFound) && upTo > 0 {
		// Gone, and it goes last: another deletion of the run finished.
		return s.DeleteEntryOfGone(ctx, wf)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err == nil && upTo > 0 && last != upTo {
		return fmt.Errorf("eventstore: delete %s: its history holds seq %d, read up to %d: %w", wf, last, upTo, ErrConflict)
	}
	for _, p := range leftovers {
		if p.bound == 0 {
			continue
		}
		if err := p.stream.Purge(ctx, jetstream.WithPurgeSubject(p.subject), jetstream.WithPurgeSequence(p.bound+1)); err != nil {
			return fmt.Errorf("eventstore: delete %s (%s): %w", wf, p.subject, err)
		}
	}
	// The entry's marker refuses a late write of the run's entry for
	// MarkerTTL, then goes: the markers of runs deleted do not pile up.
	// One is left in place of the entry read, or where there was neither
	// entry nor marker; a marker there already stays.
	var read Summary
	switch {
	case listed && (msgpack.Unmarshal(entry.value, &read) == nil && read.Seq <= last || upTo == 0), !listed && entry.rev == 0:
		if err := s.purgeEntryAt(ctx, wf, entry.rev); err != nil {
			return err
		}
	}
	if s.betweenPurges != nil {
		s.betweenPurges()
	}
	// Up to the last record read: a run started under wf meanwhile (by
	// the end of another deletion of this run) keeps its history.
	if err := s.history.Purge(ctx, jetstream.WithPurgeSubject(historySubject(wf)), jetstream.WithPurgeSequence(last+1)); err != nil {
		return fmt.Errorf("eventstore: delete %s (history): %w", wf, err)
	}
	if s.afterHistoryPurge != nil {
		s.afterHistoryPurge()
	}
	// A record of this run appended after last was read (a late result of
	// a failed run, recorded on top of its WorkflowExpired) is left by that
	// purge, a history with no start that nothing would delete. They go
	// too.
	purged, err := s.purgeLeftovers(ctx, wf)
	if err != nil {
		return err
	}
	last = max(last, purged)
	// A late write of the run's entry between the two purges found the
	// history still there, and wrote over the marker: it goes again, at
	// the revision read (a run started under wf since keeps its own).
	e, ok, err := s.indexEntry(ctx, wf)
	if err != nil || !ok {
		return err
	}
	var sum Summary
	if msgpack.Unmarshal(e.value, &sum) != nil || sum.Seq > last {
		return nil
	}
	return s.purgeEntryAt(ctx, wf, e.rev)
}

// purgeLeftovers purges the records at the start of wf's history that
// precede the first that starts a run, and returns the last it purged (0:
// none). A new run starts only on an empty history, so every such record
// is a deleted run's: one appended after its deletion read the history.
// Each goes by a purge of its own, which never reaches past it, so a new
// run stored meanwhile keeps its own records.
func (s *Store) purgeLeftovers(ctx context.Context, wf string) (uint64, error) {
	var last uint64
	for {
		first, err := s.First(ctx, wf)
		if errors.Is(err, ErrNotFound) {
			return last, nil
		}
		if err != nil {
			return last, err
		}
		// A run's first record is appended on an empty history: its link
		// is 0, and one linked to a record before it is a deleted run's,
		// read or not. Without a link (written before there were links) it
		// is told by what it holds; one this build cannot decode (a newer
		// version's) may be a new run's start all the same.
		if first.linked && first.prev == 0 || !first.linked && (first.StartsRun() || first.Err != nil) {
			return last, nil
		}
		if err := s.history.Purge(ctx, jetstream.WithPurgeSubject(historySubject(wf)), jetstream.WithPurgeSequence(first.Seq+1)); err != nil {
			return last, fmt.Errorf("eventstore: delete %s (history): %w", wf, err)
		}
		last = first.Seq
	}
}

// DeleteLeftovers finishes the deletion of wf, a run whose history holds
// no start: the records a deletion cut short after its purge of the
// history left (appended after that deletion read the run), and its
// listing entry, if any. It touches nothing of a history that starts a
// run, or whose first record it cannot read (a newer version's); a
// history stream that denies purges keeps its records.
func (s *Store) DeleteLeftovers(ctx context.Context, wf string) error {
	if !ValidWorkflowID(wf) {
		return fmt.Errorf("eventstore: invalid workflow id %q", wf)
	}
	if !s.PurgeDenied() {
		if _, err := s.purgeLeftovers(ctx, wf); err != nil {
			return err
		}
	}
	return s.DeleteEntryOfGone(ctx, wf)
}

// PurgeDenied reports whether the history stream denies purges (as the
// store last read its configuration): DeleteRun then deletes nothing.
func (s *Store) PurgeDenied() bool { return s.history.CachedInfo().Config.DenyPurge }

// indexEntry reads wf's listing entry from its stream's leader (a
// replica behind would name an older revision, and a purge at it would
// miss): ok is false when there is none, and e.rev is then the revision
// of the marker in its place, 0 when there is none.
func (s *Store) indexEntry(ctx context.Context, wf string) (e kvEntry, ok bool, err error) {
	e, err = s.leaderKV(ctx, s.index, wf)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return kvEntry{rev: e.rev}, false, nil
	case err != nil:
		return kvEntry{}, false, fmt.Errorf("eventstore: index %s: %w", wf, err)
	}
	return e, true, nil
}

// purgeEntryAt purges wf's listing entry, leaving a marker for MarkerTTL,
// if it is still at revision rev (0: there is neither an entry nor a
// marker): one written since is left be.
func (s *Store) purgeEntryAt(ctx context.Context, wf string, rev uint64) error {
	msg := nats.NewMsg("$KV." + WorkflowsBucket + "." + wf)
	msg.Header.Set("KV-Operation", "PURGE")
	msg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(rev)}
	if s.indexTTL {
		opts = append(opts, jetstream.WithMsgTTL(s.cfg.MarkerTTL))
	}
	_, err := s.js.PublishMsg(ctx, msg, opts...)
	if err != nil && !isConflict(err) {
		return fmt.Errorf("eventstore: delete the index entry of %s: %w", wf, err)
	}
	return nil
}

// DeleteEntryOfGone deletes wf's listing entry when wf has no history: what
// a deletion by an earlier version, which purged the history first, left
// when it was cut short. It purges at the revision it read, and only while
// no run was started under wf since: nothing of a new run's is touched.
// (The timers and results such a deletion left are dropped as they come,
// finding no history.)
func (s *Store) DeleteEntryOfGone(ctx context.Context, wf string) error {
	e, ok, err := s.indexEntry(ctx, wf)
	if err != nil || !ok {
		return err
	}
	if _, err := s.LastSeq(ctx, wf); !errors.Is(err, ErrNotFound) {
		return err // a run under wf again: the entry is its own
	}
	return s.purgeEntryAt(ctx, wf, e.rev)
}

// ReadLive is Read that tells a workflow with nothing after `after` from
// one with no history at all (never written, or deleted).
//
// Errors: ErrNotFound when wf has no history.
func (s *Store) ReadLive(ctx context.Context, wf string, after uint64) ([]Message, error) {
	return s.ReadLiveWithin(ctx, wf, after, 0)
}

// ReadLiveWithin is ReadLive that holds no more than maxBytes of records
// (0: no bound): past them it gives up with ErrTooLong, and the caller
// reads them a part at a time (ReadFrom).
//
// Errors: ErrNotFound when wf has no history; ErrTooLong.
func (s *Store) ReadLiveWithin(ctx context.Context, wf string, after uint64, maxBytes int) ([]Message, error) {
	t, err := s.readWithin(ctx, wf, after, false, maxBytes)
	if err == nil && t.Gone {
		return nil, fmt.Errorf("workflow %s: %w", wf, ErrNotFound)
	}
	return t.Msgs, err
}
