package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore/events"
)

// DefinitionRecord is one stored revision of a definition's source text.
type DefinitionRecord struct {
	Name     string `msgpack:"name"`
	Revision int    `msgpack:"rev"`
	Source   string `msgpack:"src"`
	Hash     string `msgpack:"hash"`
	// Created is when the revision was put.
	Created time.Time `msgpack:"created"`
	// PutBy is who put it (an identity as in events.Event); empty for
	// revisions stored before it was recorded.
	PutBy string `msgpack:"by,omitempty"`
}

// HashSource returns the hash that decides whether a source text changed.
func HashSource(source string) string {
	h := sha256.Sum256([]byte(source))
	return hex.EncodeToString(h[:])
}

// PutDefinition stores source as a new revision of name, put by identity
// by at now, unless it equals the latest revision's text; changed says
// which. Revisions are immutable and numbered from 1.
func (s *Store) PutDefinition(ctx context.Context, name, source, by string, now time.Time) (DefinitionRecord, bool, error) {
	hash := HashSource(source)
	created := 0 // the revision this call stored, if it did
	for range 10 {
		latest, latestRev, err := s.getDef(ctx, name+".latest", false)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return DefinitionRecord{}, false, err
		}
		if err == nil && latest.Hash == hash {
			// Ours, when another writer moved latest on to the revision
			// this call stored.
			return latest, created != 0 && latest.Revision == created, nil
		}
		rec := DefinitionRecord{Name: name, Revision: latest.Revision + 1, Source: source, Hash: hash, Created: now.UTC(), PutBy: by}
		data, err := msgpack.Marshal(rec)
		if err != nil {
			return DefinitionRecord{}, false, err
		}
		if _, err := s.defs.Create(ctx, fmt.Sprintf("%s.%d", name, rec.Revision), data); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				// Another writer took this revision; it may have died (or
				// failed to move latest on) before its second write: move
				// latest on to that revision for it, at the revision of
				// latest read (a writer that did so first wins), then look
				// again. Left as it is, latest would name the revision
				// before for good, and every put after would find its
				// revision taken.
				next, _, gerr := s.getDef(ctx, fmt.Sprintf("%s.%d", name, rec.Revision), true)
				if gerr == nil && next.Revision == rec.Revision {
					if ndata, merr := msgpack.Marshal(next); merr == nil {
						if latestRev == 0 {
							_, _ = s.defs.Create(ctx, name+".latest", ndata)
						} else {
							_, _ = s.defs.Update(ctx, name+".latest", ndata, latestRev)
						}
					}
				}
				continue
			}
			return DefinitionRecord{}, false, fmt.Errorf("eventstore: put definition %s: %w", name, natsErr(err))
		}
		created = rec.Revision
		if latestRev == 0 {
			_, err = s.defs.Create(ctx, name+".latest", data)
		} else {
			_, err = s.defs.Update(ctx, name+".latest", data, latestRev)
		}
		if err != nil {
			continue
		}
		return rec, true, nil
	}
	return DefinitionRecord{}, false, fmt.Errorf("eventstore: put definition %s: too many concurrent writers", name)
}

// getDef reads a definition record, from any replica or, with leader,
// from the stream's leader.
func (s *Store) getDef(ctx context.Context, key string, leader bool) (DefinitionRecord, uint64, error) {
	get := s.getKV
	if leader {
		get = s.leaderKV
	}
	e, err := get(ctx, s.defs, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return DefinitionRecord{}, 0, fmt.Errorf("definition %s: %w", key, ErrNotFound)
		}
		return DefinitionRecord{}, 0, fmt.Errorf("eventstore: get definition %s: %w", key, err)
	}
	var rec DefinitionRecord
	if err := msgpack.Unmarshal(e.value, &rec); err != nil {
		return DefinitionRecord{}, 0, fmt.Errorf("eventstore: definition %s: %w: %w", key, errUndecodable, err)
	}
	return rec, e.rev, nil
}

// errUndecodable marks a stored definition record that does not decode.
var errUndecodable = errors.New("record does not decode")

// DefinitionsVersion returns a number that grows with every definition
// put: the definitions bucket's last sequence.
func (s *Store) DefinitionsVersion(ctx context.Context) (uint64, error) {
	st, err := s.defs.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventstore: definitions: %w", err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return bs.StreamInfo().State.LastSeq, nil
	}
	return 0, fmt.Errorf("eventstore: definitions: unexpected bucket status %T", st)
}

// leaderReadTimeout bounds getKV's read through the leader when its
// context has no deadline (jetstream's own requests default to 5 s).
const leaderReadTimeout = 5 * time.Second

// kvEntry is a bucket's entry as getKV reads it.
type kvEntry struct {
	value   []byte
	rev     uint64
	created time.Time
}

// getKV reads kv's entry k; the error is jetstream.ErrKeyNotFound when
// there is none (or it was deleted: the entry then has the marker's
// revision).
//
// A bucket's gets are direct: any replica may answer, and one that is
// still catching up (a restarted server) answers "not found" for what it
// has not received yet. So an entry a replica calls missing is asked of
// the leader of the bucket's stream (a message get, which only the leader
// answers) before it is called missing. An entry found may still be
// older than the newest: writers check revisions, so a stale read makes a
// write conflict and try again (and updateKV judges a change that writes
// nothing again on the leader's entry).
func (s *Store) getKV(ctx context.Context, kv jetstream.KeyValue, k string) (kvEntry, error) {
	e, err := kv.Get(ctx, k)
	switch {
	case err == nil:
		return kvEntry{value: e.Value(), rev: e.Revision(), created: e.Created()}, nil
	case !errors.Is(err, jetstream.ErrKeyNotFound):
		return kvEntry{}, err
	}
	return s.leaderKV(ctx, kv, k)
}

// leaderKV reads kv's entry k from its stream's leader, as getKV does
// after a replica called it missing: none older than a write answered
// before the call.
func (s *Store) leaderKV(ctx context.Context, kv jetstream.KeyValue, k string) (kvEntry, error) {
	bucket := kv.Bucket()
	if _, ok := ctx.Deadline(); !ok {
		// A stream without a leader (one being elected while a node is
		// down) answers nothing: bound the wait as the client's own
		// requests are bounded.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, leaderReadTimeout)
		defer cancel()
	}
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + k})
	m, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
	if err != nil {
		return kvEntry{}, err
	}
	var resp struct {
		Message *struct {
			Seq  uint64    `json:"seq"`
			Hdrs []byte    `json:"hdrs"`
			Data []byte    `json:"data"`
			Time time.Time `json:"time"`
		} `json:"message"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return kvEntry{}, fmt.Errorf("read %s.%s: %w", bucket, k, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == int(jetstream.JSErrCodeMessageNotFound):
		return kvEntry{}, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return kvEntry{}, fmt.Errorf("read %s.%s: %s (%d)", bucket, k, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return kvEntry{}, fmt.Errorf("read %s.%s: empty answer", bucket, k)
	}
	// A delete or purge leaves a marker: KV-Operation: DEL or PURGE, or,
	// where an entry's TTL ran out, Nats-Marker-Reason. Its revision is
	// returned with the error, for a write over it.
	if h := string(resp.Message.Hdrs); strings.Contains(h, "KV-Operation: DEL") || strings.Contains(h, "KV-Operation: PURGE") ||
		strings.Contains(h, jetstream.MarkerReasonHeader+":") {
		return kvEntry{rev: resp.Message.Seq}, jetstream.ErrKeyNotFound
	}
	return kvEntry{value: resp.Message.Data, rev: resp.Message.Seq, created: resp.Message.Time}, nil
}

// GetDefinition returns revision rev of definition name (0: the latest).
//
// Errors: ErrNotFound when there is no such definition or revision.
func (s *Store) GetDefinition(ctx context.Context, name string, rev int) (DefinitionRecord, error) {
	if !validKeyPart(name) || rev < 0 {
		return DefinitionRecord{}, fmt.Errorf("definition %q: %w", name, ErrNotFound)
	}
	key := name + ".latest"
	if rev > 0 {
		key = name + "." + strconv.Itoa(rev)
	}
	rec, _, err := s.getDef(ctx, key, false)
	return rec, err
}

// ListDefinitions returns the latest revision of every definition, by
// name; a record that does not decode is left out. A failure to read one
// is an error, so a list is never short of a definition that is stored.
// Each is read from any replica: one still catching up may answer an
// earlier revision.
func (s *Store) ListDefinitions(ctx context.Context) ([]DefinitionRecord, error) {
	return s.listDefinitions(ctx, false)
}

// ListDefinitionsFromLeader is ListDefinitions read from the definitions
// stream's leader: no revision older than a put answered before the call.
// For what undoes what a definition set up (a subject no longer captured,
// an event dropped), and is kept until the next put.
func (s *Store) ListDefinitionsFromLeader(ctx context.Context) ([]DefinitionRecord, error) {
	return s.listDefinitions(ctx, true)
}

func (s *Store) listDefinitions(ctx context.Context, leader bool) ([]DefinitionRecord, error) {
	keys, err := s.defs.ListKeysFiltered(ctx, "*.latest")
	if err != nil {
		return nil, fmt.Errorf("eventstore: list definitions: %w", err)
	}
	var out []DefinitionRecord
	for k := range keys.Keys() {
		rec, _, err := s.getDef(ctx, k, leader)
		switch {
		case err == nil:
			out = append(out, rec)
		case errors.Is(err, errUndecodable):
		default:
			keys.Stop()
			return nil, fmt.Errorf("eventstore: list definitions: %w", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var keyPartPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// validKeyPart reports whether s can be part of a KV key (definition names).
func validKeyPart(s string) bool { return keyPartPattern.MatchString(s) }

// Summary is a workflow's entry in the index used for listing. The
// orchestrator keeps it in step with the history, which is the truth.
type Summary struct {
	ID         string    `msgpack:"id"`
	Definition string    `msgpack:"def"`
	Revision   int       `msgpack:"rev"`
	Status     string    `msgpack:"st"`
	Created    time.Time `msgpack:"c"`
	Closed     time.Time `msgpack:"x,omitempty"`
	// Seq is the last history sequence the summary reflects.
	Seq uint64 `msgpack:"seq"`
	// Identity is who started the workflow (its WorkflowStarted event's).
	Identity string `msgpack:"who,omitempty"`
	// Search holds the workflow's search attributes: names to strings,
	// numbers (float64 or int64), bools and times (read back in UTC).
	Search map[string]any `msgpack:"sa,omitempty"`
	// KVRev, when not 0, is the revision of the entry this one replaces,
	// as its writer stored it last (an entry of an earlier point of the
	// same history): the write is then one publish, conditional on it (an
	// entry another writer stored since makes it read and compare, as one
	// without). PutSummaries sets it to the new entry's revision. Not
	// stored.
	KVRev uint64 `msgpack:"-"`
}

// decodeSummary reads an index entry's value, with its search attributes
// in the form they were written in.
func decodeSummary(b []byte, sum *Summary) error {
	if err := msgpack.Unmarshal(b, sum); err != nil {
		return err
	}
	return events.NormalizeSearch(sum.Search)
}

// PutSummaries writes index entries in one batch and returns an error (or
// nil) for each. An entry only replaces a stored one that reflects an
// earlier point of the history (a lower Seq), so writers that race or
// arrive late never turn a closed workflow's entry back: such an entry's
// error is ErrSuperseded. New entries, and those that replace the
// revision their KVRev names, cost one asynchronous publish each;
// replacing another reads it first. Each entry stored gets its new
// revision in KVRev; one superseded, 0.
func (s *Store) PutSummaries(ctx context.Context, sums []Summary) []error {
	errs := make([]error, len(sums))
	futs := make([]jetstream.PubAckFuture, len(sums))
	for i, sum := range sums {
		data, err := msgpack.Marshal(sum)
		if err != nil {
			errs[i] = err
			continue
		}
		msg := nats.NewMsg("$KV." + WorkflowsBucket + "." + sum.ID)
		msg.Data = data
		// Succeeds only when the entry is still the one KVRev names (0:
		// the workflow has no entry yet).
		if futs[i], err = s.js.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(sum.KVRev)); err != nil {
			errs[i] = fmt.Errorf("eventstore: index %s: %w", sum.ID, err)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, f := range futs {
		if f == nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			sums[i].KVRev = ack.Sequence
		case err := <-f.Err():
			if !isConflict(err) {
				errs[i] = fmt.Errorf("eventstore: index %s: %w", sums[i].ID, err)
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				sums[i].KVRev, errs[i] = s.replaceSummary(ctx, sums[i])
			}()
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	wg.Wait()
	return errs
}

// replaceSummary writes sum over a stored entry that is older than it,
// and returns the new entry's revision.
func (s *Store) replaceSummary(ctx context.Context, sum Summary) (uint64, error) {
	data, err := msgpack.Marshal(sum)
	if err != nil {
		return 0, err
	}
	for range 10 {
		var rev uint64
		e, err := s.getKV(ctx, s.index, sum.ID)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			// The create-only write found the subject taken, and now there
			// is no entry: it was deleted with its run (retention). A
			// write that comes late must not bring that run back; one of
			// a run started again under the id since is its first entry.
			first, ferr := s.First(ctx, sum.ID)
			switch {
			case errors.Is(ferr, ErrNotFound), ferr == nil && sum.Seq < first.Seq:
				return 0, ErrSuperseded
			case ferr != nil:
				return 0, fmt.Errorf("eventstore: index %s: %w", sum.ID, ferr)
			}
			rev, err = s.index.Create(ctx, sum.ID, data)
		} else if err == nil {
			var old Summary
			if msgpack.Unmarshal(e.value, &old) == nil && old.Seq >= sum.Seq {
				ahead, aerr := s.aheadOfHistory(ctx, sum.ID, old.Seq, e.created)
				if aerr != nil {
					return 0, aerr
				}
				if !ahead {
					return 0, ErrSuperseded
				}
			}
			rev, err = s.index.Update(ctx, sum.ID, data, e.rev)
		}
		if err == nil || !errors.Is(err, jetstream.ErrKeyExists) && !isConflict(err) {
			if err != nil {
				return 0, fmt.Errorf("eventstore: index %s: %w", sum.ID, err)
			}
			return rev, nil
		}
	}
	return 0, fmt.Errorf("eventstore: index %s: the entry kept changing", sum.ID)
}

// aheadOfHistory reports whether an index entry of wf stored at stored,
// naming history sequence seq, belongs to another history than the one
// the store opened: it was stored before that history stream was made
// (the listing restored from a copy taken after the history's, or the
// history made again), and names a point wf's history has not reached.
// Its sequence then says nothing of this history's, and a writer that
// read this history replaces it. An entry stored since the stream was
// made is judged by its sequence alone, however a read of the history
// answers (a leader just elected may answer behind).
func (s *Store) aheadOfHistory(ctx context.Context, wf string, seq uint64, stored time.Time) (bool, error) {
	if stored.IsZero() || !stored.Before(s.HistoryCreated()) {
		return false, nil
	}
	last, err := s.LastSeq(ctx, wf)
	switch {
	case errors.Is(err, ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("eventstore: index %s: %w", wf, err)
	}
	return last < seq, nil
}

// GetSummary returns wf's index entry.
//
// Errors: ErrNotFound when wf is not indexed.
func (s *Store) GetSummary(ctx context.Context, wf string) (Summary, error) {
	if !ValidWorkflowID(wf) {
		return Summary{}, ErrNotFound
	}
	e, err := s.getKV(ctx, s.index, wf)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Summary{}, fmt.Errorf("workflow %s: %w", wf, ErrNotFound)
		}
		return Summary{}, fmt.Errorf("eventstore: index %s: %w", wf, err)
	}
	var sum Summary
	if err := decodeSummary(e.value, &sum); err != nil {
		return Summary{}, fmt.Errorf("eventstore: index %s: %w", wf, err)
	}
	return sum, nil
}

// WatchDefinitions calls fn with the latest revision of every definition
// and then with every new latest revision, from one goroutine, until ctx
// ends. It returns once the existing definitions have been passed to fn.
func (s *Store) WatchDefinitions(ctx context.Context, fn func(DefinitionRecord)) error {
	w, err := s.defs.Watch(ctx, "*.latest", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("eventstore: watch definitions: %w", err)
	}
	ready, _ := watchEntries(w, func(e jetstream.KeyValueEntry) {
		var rec DefinitionRecord
		if msgpack.Unmarshal(e.Value(), &rec) == nil {
			fn(rec)
		}
	})
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// eachStored calls fn with each entry of kv whose key matches filter (a
// KV key pattern), as stored when it is called, deletes left out, and
// returns once it has passed them all.
func eachStored(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(jetstream.KeyValueEntry)) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			fn(e)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// watchEntries calls fn with each entry w delivers, from one goroutine,
// until w stops. It returns a channel closed once the entries stored when
// w began have been passed to fn (or w stopped first), and one closed once
// fn has been called for the last time.
func watchEntries(w jetstream.KeyWatcher, fn func(jetstream.KeyValueEntry)) (ready, ended <-chan struct{}) {
	readyc, endedc := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(endedc)
		defer func() { _ = w.Stop() }()
		initial := true
		for e := range w.Updates() {
			if e == nil {
				if initial {
					initial = false
					close(readyc)
				}
				continue
			}
			fn(e)
		}
		if initial {
			close(readyc)
		}
	}()
	return readyc, endedc
}
