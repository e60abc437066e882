package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
)

func open(t *testing.T) *eventstore.Store {
	t.Helper()
	ns := natstest.Start(t)
	s, err := eventstore.Open(context.Background(), ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Opening again is idempotent.
	if _, err := eventstore.Open(context.Background(), ns.Connect(t), eventstore.Config{}); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	return s
}

func started(wf string) events.Event {
	return events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1, Input: map[string]any{"n": int64(1)}}}
}

func completed(out any) events.Event {
	return events.Event{Type: events.TypeWorkflowCompleted, Time: time.Unix(101, 0).UTC(),
		WorkflowCompleted: &events.WorkflowCompleted{Output: out}}
}

func TestAppendIsConditional(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf1", &zero, "start/wf1/r1", started("wf1"))
	if err != nil {
		t.Fatal(err)
	}
	// The same start again is refused (the expectation no longer holds, or
	// the message id is a duplicate); so is another start.
	if _, err := s.AppendExternal(ctx, "wf1", &zero, "start/wf1/r1", started("wf1")); !errors.Is(err, eventstore.ErrDuplicate) && !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("repeated start: %v", err)
	}
	if _, err := s.AppendExternal(ctx, "wf1", &zero, "start/wf1/r2", started("wf1")); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("second start: %v", err)
	}
	// Many writers race on the same expected sequence: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx, "wf1", seq, completed(int64(i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, eventstore.ErrConflict):
				conflicts++
			default:
				t.Errorf("append: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Fatalf("wins %d conflicts %d", wins, conflicts)
	}
	msgs, err := s.Read(ctx, "wf1", 0)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("read: %v %v", msgs, err)
	}
	if msgs[1].Record.Events[0].Type != events.TypeWorkflowCompleted {
		t.Fatalf("second record %v", msgs[1].Record)
	}
	// Other workflows do not disturb the expectation on wf1.
	if _, err := s.AppendExternal(ctx, "wf2", &zero, "start/wf2/r1", started("wf2")); err != nil {
		t.Fatal(err)
	}
	last, err := s.LastSeq(ctx, "wf1")
	if err != nil || last != msgs[1].Seq {
		t.Fatalf("last seq %d %v, want %d", last, err, msgs[1].Seq)
	}
	if _, err := s.LastSeq(ctx, "nope"); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("last seq of unknown: %v", err)
	}
	if got, err := s.Read(ctx, "wf1", msgs[0].Seq); err != nil || len(got) != 1 {
		t.Fatalf("read after first: %v %v", got, err)
	}
	first, err := s.First(ctx, "wf2")
	if err != nil || first.Record.Events[0].WorkflowStarted.WorkflowID != "wf2" {
		t.Fatalf("first: %v %v", first, err)
	}
}

func TestDefinitionsAreVersioned(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Now()
	later := now.Add(time.Minute)
	r1, changed, err := s.PutDefinition(ctx, "d", "v1", "alice", now)
	if err != nil || !changed || r1.Revision != 1 {
		t.Fatalf("put v1: %v %v %v", r1, changed, err)
	}
	// The same text again makes no revision: the first put's stays.
	if r, changed, err := s.PutDefinition(ctx, "d", "v1", "carol", later); err != nil || changed || r.Revision != 1 || r.PutBy != "alice" {
		t.Fatalf("put v1 again: %v %v %v", r, changed, err)
	}
	if r, changed, err := s.PutDefinition(ctx, "d", "v2", "bob", later); err != nil || !changed || r.Revision != 2 {
		t.Fatalf("put v2: %v %v %v", r, changed, err)
	}
	if r, err := s.GetDefinition(ctx, "d", 1); err != nil || r.Source != "v1" || r.PutBy != "alice" || !r.Created.Equal(now) {
		t.Fatalf("get rev 1: %v %v", r, err)
	}
	if r, err := s.GetDefinition(ctx, "d", 0); err != nil || r.Source != "v2" || r.Revision != 2 || r.PutBy != "bob" || !r.Created.Equal(later) {
		t.Fatalf("get latest: %v %v", r, err)
	}
	if _, err := s.GetDefinition(ctx, "d", 3); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("get rev 3: %v", err)
	}
	if _, err := s.GetDefinition(ctx, "other", 0); !errors.Is(err, eventstore.ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	list, err := s.ListDefinitions(ctx)
	if err != nil || len(list) != 1 || list[0].Revision != 2 || list[0].PutBy != "bob" {
		t.Fatalf("list: %v %v", list, err)
	}
}

// A revision stored before definitions recorded who put them reads with
// PutBy empty.
func TestDefinitionWithoutPutBy(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	js, err := jetstream.New(s.Conn())
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventstore.DefinitionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	old, err := msgpack.Marshal(map[string]any{"name": "old", "rev": 1, "src": "v1", "hash": eventstore.HashSource("v1"), "created": created})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"old.1", "old.latest"} {
		if _, err := kv.Put(ctx, key, old); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.GetDefinition(ctx, "old", 1)
	if err != nil || r.Source != "v1" || r.PutBy != "" || !r.Created.Equal(created) {
		t.Fatalf("get an old revision: %+v %v", r, err)
	}
	if r, changed, err := s.PutDefinition(ctx, "old", "v2", "dave", created.Add(time.Hour)); err != nil || !changed || r.Revision != 2 || r.PutBy != "dave" {
		t.Fatalf("put after an old revision: %+v %v %v", r, changed, err)
	}
}

// indexBucket opens the workflow index bucket directly.
func indexBucket(t *testing.T, s *eventstore.Store) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	js, err := jetstream.New(s.Conn())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := js.KeyValue(context.Background(), eventstore.WorkflowsBucket)
	if err != nil {
		t.Fatal(err)
	}
	return js, bucket
}

// The listing is the index in memory, newest first (ties by id), paged
// from a cursor, and follows the index as entries are added, changed and
// deleted.
func TestListing(t *testing.T) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := time.Now().UTC().Truncate(time.Second)
	put := func(sums ...eventstore.Summary) {
		t.Helper()
		for _, err := range s.PutSummaries(ctx, sums) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	sum := func(id string, sec int, status string, seq uint64) eventstore.Summary {
		return eventstore.Summary{ID: id, Definition: "d", Status: status, Created: base.Add(time.Duration(sec) * time.Second), Seq: seq}
	}
	kv, bucket := indexBucket(t, s)
	// b and c share a creation time: ordered by id. y is deleted before the
	// listing starts.
	put(sum("a", 0, "RUNNING", 1), sum("b", 1, "RUNNING", 1), sum("c", 1, "RUNNING", 1), sum("y", 2, "RUNNING", 1))
	if err := bucket.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	l, err := s.WatchListing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(page []eventstore.Summary) string {
		var out []string
		for _, p := range page {
			out = append(out, p.ID+":"+p.Status)
		}
		return strings.Join(out, ",")
	}
	all := func() string {
		page, more := l.Page(0, "", 100, nil)
		if more {
			t.Fatal("more after a page larger than the listing")
		}
		return ids(page)
	}
	if got := all(); got != "c:RUNNING,b:RUNNING,a:RUNNING" {
		t.Fatalf("initial listing %s", got)
	}
	counts := func(def, prefix string) string {
		return fmt.Sprint(l.Count(def, prefix))
	}
	if got := counts("d", ""); got != "map[RUNNING:3]" || counts("", "") != got || counts("other", "") != "map[]" {
		t.Fatalf("initial counts %s, all %s, other %s", got, counts("", ""), counts("other", ""))
	}
	// Pages from a cursor; more says whether kept entries follow.
	page, more := l.Page(0, "", 1, nil)
	if ids(page) != "c:RUNNING" || !more {
		t.Fatalf("first page %s more=%v", ids(page), more)
	}
	page, more = l.Page(page[0].Created.UnixNano(), page[0].ID, 1, nil)
	if ids(page) != "b:RUNNING" || !more {
		t.Fatalf("second page %s more=%v", ids(page), more)
	}
	notB := func(s eventstore.Summary) bool { return s.ID != "b" }
	if page, more = l.Page(0, "", 1, notB); ids(page) != "c:RUNNING" || !more {
		t.Fatalf("filtered first page %s more=%v", ids(page), more)
	}
	if page, more = l.Page(page[0].Created.UnixNano(), page[0].ID, 1, notB); ids(page) != "a:RUNNING" || more {
		t.Fatalf("filtered last page %s more=%v", ids(page), more)
	}
	// Changes arrive: a new workflow, a status change, an older one written
	// late (a create-only entry), and a deletion.
	put(sum("d", 5, "RUNNING", 1), sum("a", 0, "COMPLETED", 4), sum("z", -5, "RUNNING", 1))
	if err := bucket.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	// Waiting for the index's latest write makes every change visible.
	seq, err := s.IndexSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Stream(ctx, "KV_"+eventstore.WorkflowsBucket); err != nil {
		t.Fatal(err)
	} else if info, err := st.Info(ctx); err != nil || info.State.LastSeq != seq {
		t.Fatalf("IndexSeq %d; the bucket's stream ends at %v (%v)", seq, info.State.LastSeq, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := l.WaitFor(wctx, seq); err != nil {
		t.Fatal(err)
	}
	if got, want := all(), "d:RUNNING,c:RUNNING,a:COMPLETED,z:RUNNING"; got != want {
		t.Fatalf("listing after changes %s, want %s", got, want)
	}
	// Counts follow the changes, kept or (with an id prefix) counted.
	for _, tc := range []struct{ def, prefix, want string }{
		{"d", "", "map[COMPLETED:1 RUNNING:3]"},
		{"", "", "map[COMPLETED:1 RUNNING:3]"},
		{"d", "z", "map[RUNNING:1]"},
		{"", "a", "map[COMPLETED:1]"},
		{"other", "a", "map[]"},
	} {
		if got := counts(tc.def, tc.prefix); got != tc.want {
			t.Errorf("counts of %q with prefix %q: %s, want %s", tc.def, tc.prefix, got, tc.want)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	cancel()
	for l.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("listing still following after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An index entry only ever moves forward in its workflow's history: a
// late or racing writer with an older state changes nothing.
func TestSummariesOnlyMoveForward(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	put := func(status string, seq uint64) {
		t.Helper()
		for _, err := range s.PutSummaries(ctx, []eventstore.Summary{{ID: "wf", Definition: "d", Status: status, Seq: seq}}) {
			if err != nil && !errors.Is(err, eventstore.ErrSuperseded) {
				t.Fatalf("put %s@%d: %v", status, seq, err)
			}
		}
	}
	get := func() eventstore.Summary {
		t.Helper()
		sum, err := s.GetSummary(ctx, "wf")
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	put("RUNNING", 1)
	put("COMPLETED", 8)
	put("RUNNING", 1) // a running entry written late
	if got := get(); got.Status != "COMPLETED" || got.Seq != 8 {
		t.Fatalf("a late running entry replaced the closed one: %+v", got)
	}
	put("RUNNING", 9) // redriven
	if got := get(); got.Status != "RUNNING" || got.Seq != 9 {
		t.Fatalf("a newer entry was not written: %+v", got)
	}
	// Racing writers of many entries at once: the newest of each wins.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sums []eventstore.Summary
			for i := range 50 {
				sums = append(sums, eventstore.Summary{ID: "r" + strconv.Itoa(i), Status: "S" + strconv.Itoa(w), Seq: uint64(w + 1)})
			}
			for _, err := range s.PutSummaries(ctx, sums) {
				if err != nil && !errors.Is(err, eventstore.ErrSuperseded) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i := range 50 {
		sum, err := s.GetSummary(ctx, "r"+strconv.Itoa(i))
		if err != nil || sum.Seq != 4 || sum.Status != "S3" {
			t.Fatalf("entry r%d = %+v, %v; want the newest (S3@4)", i, sum, err)
		}
	}
}

// An index entry keeps who started the run and its search attributes, and
// reads them back, from GetSummary and from a listing, as they were
// written: numbers as int64 or float64, times in UTC.
func TestSummaryKeepsIdentityAndSearch(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	due := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)
	search := map[string]any{"customer": "ann", "n": int64(7), "big": int64(1) << 40, "neg": int64(-1),
		"ratio": 0.5, "vip": true, "due": due}
	sum := eventstore.Summary{ID: "wf", Definition: "d", Status: "RUNNING", Seq: 1, Created: due, Identity: "alice", Search: search}
	for _, err := range s.PutSummaries(ctx, []eventstore.Summary{sum}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(from string, got eventstore.Summary) {
		t.Helper()
		if got.Identity != "alice" || !reflect.DeepEqual(got.Search, search) {
			t.Errorf("%s: identity %q, search %#v\nwant alice, %#v", from, got.Identity, got.Search, search)
		}
		if d, _ := got.Search["due"].(time.Time); d.Location() != time.UTC {
			t.Errorf("%s: a time reads back in %v, want UTC", from, d.Location())
		}
	}
	got, err := s.GetSummary(ctx, "wf")
	if err != nil {
		t.Fatal(err)
	}
	check("GetSummary", got)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := s.WatchListing(wctx)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := l.Page(0, "", 10, nil)
	if len(page) != 1 {
		t.Fatalf("listing holds %d entries, want 1", len(page))
	}
	check("listing", page[0])
}

// A scheduled timer is delivered once it is due, even across a restart of
// the server.
func TestTimerFiresAfterRestart(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(2 * time.Second)
	timer := events.TimerDue{WorkflowID: "wf", TimerID: "t1", Path: "p", Due: due}
	if err := s.ScheduleTimer(ctx, timer); err != nil {
		t.Fatal(err)
	}
	if err := s.ScheduleTimer(ctx, timer); err != nil { // idempotent
		t.Fatal(err)
	}
	ns.Restart()
	s, err = eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	feed, err := s.Feed(ctx, eventstore.SourceTimers, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Stop()
	d, err := feed.Next()
	if err != nil {
		t.Fatal(err)
	}
	if d.Timer == nil || d.Timer.TimerID != "t1" || d.WorkflowID != "wf" {
		t.Fatalf("delivery %+v", d)
	}
	if time.Now().Before(due.Truncate(time.Second)) {
		t.Fatalf("timer fired early: due %s", due)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	// It fired once: nothing else arrives.
	got := make(chan *eventstore.Delivery, 1)
	go func() {
		if d, err := feed.Next(); err == nil {
			got <- d
		}
	}()
	select {
	case d := <-got:
		t.Fatalf("second delivery %+v", d)
	case <-time.After(1500 * time.Millisecond):
	}
}

// settled reports what StepProgressAfter says of the step's outcome.
func settled(ctx context.Context, s *eventstore.Store, wf, path string, gen int, after uint64) (bool, error) {
	p, err := s.StepProgressAfter(ctx, wf, path, gen, after)
	return p.Settled, err
}

func TestStepSettled(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf/r", started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	sched := events.Event{Type: events.TypeStepScheduled, StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "echo", FirstAttempt: 1}}
	cmdSeq, err := s.Append(ctx, "wf", seq, sched)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := settled(ctx, s, "wf", "a", 1, cmdSeq); err != nil || ok {
		t.Fatalf("before completion: %v %v", ok, err)
	}
	last := cmdSeq
	for _, att := range []int{1, 2} {
		failed := events.Event{Type: events.TypeStepAttemptFailed, StepAttemptFailed: &events.StepAttemptFailed{Path: "a", Gen: 1, Attempt: att}}
		if last, err = s.Append(ctx, "wf", last, failed); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := s.StepProgressAfter(ctx, "wf", "a", 1, cmdSeq); err != nil || p != (eventstore.StepProgress{Attempts: 2}) {
		t.Fatalf("after two failed attempts: %+v %v", p, err)
	}
	done := events.Event{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Path: "a", Gen: 1, Attempt: 3, Output: "x"}}
	doneSeq, err := s.Append(ctx, "wf", last, done)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := settled(ctx, s, "wf", "a", 1, cmdSeq); err != nil || !ok {
		t.Fatalf("after completion: %v %v", ok, err)
	}
	if p, err := s.StepProgressAfter(ctx, "wf", "a", 1, cmdSeq); err != nil || p != (eventstore.StepProgress{Settled: true, Attempts: 3}) {
		t.Fatalf("after completion: %+v %v", p, err)
	}
	if ok, _ := settled(ctx, s, "wf", "a", 2, cmdSeq); ok {
		t.Fatal("another scheduling of the step is not settled")
	}
	// A step canceled after its command is settled too.
	sched = events.Event{Type: events.TypeStepScheduled, StepScheduled: &events.StepScheduled{Path: "b", Gen: 1, Task: "echo", FirstAttempt: 1}}
	if last, err = s.Append(ctx, "wf", doneSeq, sched); err != nil {
		t.Fatal(err)
	}
	if ok, _ := settled(ctx, s, "wf", "b", 1, last); ok {
		t.Fatal("a running step is settled")
	}
	cancel := events.Event{Type: events.TypeStepCanceled, StepCanceled: &events.StepCanceled{Path: "b", Cause: "fan"}}
	if _, err := s.Append(ctx, "wf", last, cancel); err != nil {
		t.Fatal(err)
	}
	if ok, err := settled(ctx, s, "wf", "b", 1, last); err != nil || !ok {
		t.Fatalf("after cancellation: %v %v", ok, err)
	}
}

// A feed whose consumer is deleted under it subscribes again instead of
// quietly stopping.
func TestFeedSurvivesConsumerDeletion(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	feed, err := s.Feed(ctx, eventstore.SourceExternal, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Stop()
	js, _ := jetstream.New(nc)
	if err := js.DeleteConsumer(ctx, eventstore.HistoryStream, eventstore.ExternalConsumer); err != nil {
		t.Fatal(err)
	}
	got := make(chan *eventstore.Delivery, 1)
	go func() {
		for {
			d, err := feed.Next()
			if errors.Is(err, eventstore.ErrFeedClosed) {
				return
			}
			if err == nil {
				got <- d
				return
			}
		}
	}()
	// Keep appending until the re-created consumer delivers one.
	deadline := time.Now().Add(30 * time.Second)
	var zero uint64
	for i := 0; ; i++ {
		wf := "wf" + strconv.Itoa(i)
		if _, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf)); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			if d.Message == nil {
				t.Fatalf("delivery %+v", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the feed never delivered again after its consumer was deleted")
		}
	}
}

// Read follows each record's link to the one before it, among other
// workflows' records, from any point; records written without links (by
// other writers) are read by scanning forward instead.
func TestReadFollowsLinks(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	seqs := map[string][]uint64{}
	for _, wf := range []string{"a", "b"} {
		seq, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf))
		if err != nil {
			t.Fatal(err)
		}
		seqs[wf] = append(seqs[wf], seq)
	}
	for i := range 10 {
		for _, wf := range []string{"a", "b"} {
			last := seqs[wf][len(seqs[wf])-1]
			seq, err := s.Append(ctx, wf, last, stepCompleted(i))
			if err != nil {
				t.Fatal(err)
			}
			seqs[wf] = append(seqs[wf], seq)
		}
	}
	check := func(wf string, after uint64, want []uint64) {
		t.Helper()
		msgs, err := s.Read(ctx, wf, after)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, m := range msgs {
			if m.Err != nil {
				t.Fatalf("record %d: %v", m.Seq, m.Err)
			}
			got = append(got, m.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Read(%s, %d) = %v, want %v", wf, after, got, want)
		}
	}
	check("a", 0, seqs["a"])
	check("b", 0, seqs["b"])
	check("a", seqs["a"][4], seqs["a"][5:])
	check("a", seqs["a"][4]+1, seqs["a"][5:]) // from between two of its records
	check("a", seqs["a"][10], nil)
	if msgs, err := s.Read(ctx, "nope", 0); err != nil || len(msgs) != 0 {
		t.Fatalf("Read of an unknown workflow: %v %v", msgs, err)
	}
	// A record without a link (here a raw publish) is still read, forward.
	js, err := s.Conn().JetStream()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := events.Encode(stepCompleted(99))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish("weft.h.a.ev", raw)
	if err != nil {
		t.Fatal(err)
	}
	check("a", 0, append(append([]uint64{}, seqs["a"]...), ack.Sequence))
	check("a", seqs["a"][8], append(append([]uint64{}, seqs["a"][9:]...), ack.Sequence))
}

// A listing started after the bucket's last messages were removed (delete
// markers purged) is caught up at once, not after every call's wait.
func TestListingAfterPurge(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	_, bucket := indexBucket(t, s)
	for _, err := range s.PutSummaries(ctx, []eventstore.Summary{{ID: "a", Definition: "d", Status: "RUNNING", Seq: 1}, {ID: "b", Definition: "d", Status: "RUNNING", Seq: 1}}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := bucket.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := bucket.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(-1)); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := s.WatchListing(lctx)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := s.IndexSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer wcancel()
	if err := l.WaitFor(wctx, seq); err != nil {
		t.Fatalf("WaitFor(%d) after a purge: %v", seq, err)
	}
	if page, _ := l.Page(0, "", 10, nil); len(page) != 1 || page[0].ID != "a" {
		t.Fatalf("listing after a purge: %v", page)
	}
}

// Records stored before the store's connection last (re)connected count as
// from before the session; records stored after it do not.
func TestStoredBeforeSession(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	nc := ns.Connect(t)
	s, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	before, err := s.AppendExternal(ctx, "old", &zero, "start/old", started("old"))
	if err != nil {
		t.Fatal(err)
	}
	// Opened again (as after a restart), the record is from before.
	s, err = eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := s.AppendExternal(ctx, "new", &zero, "start/new", started("new"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, seq uint64, want bool) {
		t.Helper()
		if got, err := s.StoredBeforeSession(ctx, seq); err != nil || got != want {
			t.Fatalf("%s: StoredBeforeSession(%d) = %v, %v; want %v", what, seq, got, err, want)
		}
	}
	check("a record stored before Open", before, true)
	check("a record stored after Open", after, false)
	// The server restarts; the connection reconnects: what was stored
	// until then is from before the new session.
	ns.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for nc.Stats().Reconnects == 0 || !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var latest uint64
	for {
		latest, err = s.AppendExternal(ctx, "later", &zero, "start/later", started("later"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	check("a record stored before the reconnect was seen", after, true)
	check("the record the reconnect was first seen after", latest, true)
	next, err := s.AppendExternal(ctx, "next", &zero, "start/next", started("next"))
	if err != nil {
		t.Fatal(err)
	}
	check("a record stored after the reconnect was seen", next, false)
}

// A puller whose task consumer was made again by another process begins
// a new session when it next fetches, though its own delivery sequence does
// not go back (another executor took the commands delivered anew): a
// command stored since its store opened is then from before the session.
func TestAPullerFindsItsConsumerMadeAgain(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	a, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.TaskPuller(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	var zero uint64
	seq, err := a.AppendExternal(ctx, "wf", &zero, "start/wf", started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := a.Append(ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled,
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "echo", FirstAttempt: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if before, err := a.StoredBeforeSession(ctx, cmd); err != nil || before {
		t.Fatalf("a command stored after Open: before the session %v, %v", before, err)
	}
	// Another process deletes the consumer and makes it again, and takes
	// what it delivers anew.
	b, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, eventstore.HistoryStream, eventstore.TaskConsumerName("echo")); err != nil {
		t.Fatal(err)
	}
	pb, err := b.TaskPuller(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Fetch(ctx, 1, 5*time.Second, func(d *eventstore.Delivery) { _ = d.Ack() }); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := p.Fetch(ctx, 1, 100*time.Millisecond, func(*eventstore.Delivery) {}); err != nil {
			t.Fatal(err)
		}
		if before, err := a.StoredBeforeSession(ctx, cmd); err != nil {
			t.Fatal(err)
		} else if before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the puller did not find its consumer made again")
		}
	}
}

// A step suspended after its command ran out of attempts is settled: a
// redelivered command does not run its last attempt again.
func TestStepSuspendedIsSettled(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	var zero uint64
	seq, err := s.AppendExternal(ctx, "wf", &zero, "start/wf/r", started("wf"))
	if err != nil {
		t.Fatal(err)
	}
	cmdSeq, err := s.Append(ctx, "wf", seq, events.Event{Type: events.TypeStepScheduled,
		StepScheduled: &events.StepScheduled{Path: "a", Gen: 1, Task: "echo", FirstAttempt: 1, Retry: events.RetryPolicy{MaxAttempts: 2, Suspend: true}}})
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.Append(ctx, "wf", cmdSeq, events.Event{Type: events.TypeStepAttemptFailed, StepAttemptFailed: &events.StepAttemptFailed{Path: "a", Gen: 1, Attempt: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "wf", last, events.Event{Type: events.TypeStepSuspended, StepSuspended: &events.StepSuspended{Path: "a", Gen: 1, Attempt: 2}}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.StepProgressAfter(ctx, "wf", "a", 1, cmdSeq); err != nil || p != (eventstore.StepProgress{Settled: true, Attempts: 2}) {
		t.Fatalf("after the suspension: %+v %v", p, err)
	}
}

// A bucket's gets may be answered by any replica, and a replica that is
// catching up after a restart answers "not found" for what it has not yet
// received. A definition that exists is never called missing for that.
// Here a mirror that takes part in the bucket's gets and holds none of its
// entries stands in for such a replica.
func TestDefinitionFoundWhileAReplicaLags(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutDefinition(ctx, "d", "v1", "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "LAGGING",
		Mirror: &jetstream.StreamSource{
			Name:          "KV_" + eventstore.DefinitionsBucket,
			FilterSubject: "$KV." + eventstore.DefinitionsBucket + ".other.>",
		},
		MirrorDirect: true,
	}); err != nil {
		t.Fatal(err)
	}
	// The mirror joins the gets once it has received something.
	if _, _, err := s.PutDefinition(ctx, "other", "v1", "alice", time.Now()); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventstore.DefinitionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err := kv.Get(ctx, "d.latest"); errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirror answered no get; the test shows nothing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 40 {
		r, err := s.GetDefinition(ctx, "d", 0)
		if err != nil || r.Source != "v1" {
			t.Fatalf("get %d: %v %v", i, r, err)
		}
		if _, err := s.GetDefinition(ctx, "d", 2); !errors.Is(err, eventstore.ErrNotFound) {
			t.Fatalf("get missing revision %d: %v", i, err)
		}
	}
}

// An index entry written over the revision its writer stored last is one
// conditional publish; over a revision another writer replaced since, it
// is read and compared as without one: a newer entry stays.
func TestPutSummariesOverAKnownRevision(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	at := time.Unix(100, 0).UTC()
	put := func(seq, rev uint64) (uint64, error) {
		sums := []eventstore.Summary{{ID: "wf", Definition: "d", Revision: 1, Status: "RUNNING", Created: at, Seq: seq, KVRev: rev}}
		err := s.PutSummaries(ctx, sums)[0]
		return sums[0].KVRev, err
	}
	r1, err := put(1, 0)
	if err != nil || r1 == 0 {
		t.Fatalf("create: rev %d, %v", r1, err)
	}
	r2, err := put(2, r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("over rev %d: rev %d, %v", r1, r2, err)
	}
	r3, err := put(4, r1) // a revision replaced since: read and compared
	if err != nil || r3 <= r2 {
		t.Fatalf("over the stale rev %d: rev %d, %v", r1, r3, err)
	}
	if _, err := put(3, r2); !errors.Is(err, eventstore.ErrSuperseded) {
		t.Fatalf("an older entry over a stale revision: %v, want ErrSuperseded", err)
	}
	if sum, err := s.GetSummary(ctx, "wf"); err != nil || sum.Seq != 4 {
		t.Fatalf("the entry: %+v, %v; want seq 4", sum, err)
	}
}

// ClosedAfter tells a run completed or canceled after a command from one
// still open, failed (a redrive goes on) or closed before the command.
func TestClosedAfter(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	closedAfter := func(wf string, after uint64) bool {
		t.Helper()
		ok, err := s.ClosedAfter(ctx, wf, after)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, c := range []struct {
		wf   string
		end  *events.Event
		want bool
	}{
		{"open", nil, false},
		{"done", &events.Event{Type: events.TypeWorkflowCompleted, WorkflowCompleted: &events.WorkflowCompleted{}}, true},
		{"canceled", &events.Event{Type: events.TypeWorkflowCanceled, WorkflowCanceled: &events.WorkflowCanceled{}}, true},
		{"failed", &events.Event{Type: events.TypeWorkflowFailed, WorkflowFailed: &events.WorkflowFailed{}}, false},
	} {
		cmd, err := s.Append(ctx, c.wf, 0, started(c.wf))
		if err != nil {
			t.Fatal(err)
		}
		if c.end != nil {
			c.end.Time = time.Unix(200, 0).UTC()
			end, err := s.Append(ctx, c.wf, cmd, *c.end)
			if err != nil {
				t.Fatal(err)
			}
			if closedAfter(c.wf, end) {
				t.Errorf("%s: closed after its own close", c.wf)
			}
		}
		if got := closedAfter(c.wf, cmd); got != c.want {
			t.Errorf("%s: closed after the command: %v, want %v", c.wf, got, c.want)
		}
	}
}

// A feed stopped hands back the deliveries it buffered but never handed
// out: another orchestrator gets them at once, not after the ack wait
// (here a minute).
func TestAStoppedFeedHandsItsBufferBack(t *testing.T) {
	ns := natstest.Start(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, ns.Connect(t), eventstore.Config{OrchestratorAckWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var zero uint64
	for i := range n {
		wf := "wf" + strconv.Itoa(i)
		if _, err := s.AppendExternal(ctx, wf, &zero, "start/"+wf, started(wf)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.Feed(ctx, eventstore.SourceExternal, 32)
	if err != nil {
		t.Fatal(err)
	}
	d, err := first.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(); err != nil {
		t.Fatal(err)
	}
	// The rest were pulled with it: wait until the consumer handed out all.
	poll(t, 10*time.Second, "every start handed to the first feed", func() bool {
		in, err := s.ExternalInputsOf(ctx)
		return err == nil && in.Delivered >= n
	})
	first.Stop()
	second, err := s.Feed(ctx, eventstore.SourceExternal, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	got := make(chan int, 1)
	go func() {
		seen := 0
		for seen < n-1 {
			d, err := second.Next()
			if err != nil {
				break
			}
			_ = d.Ack()
			seen++
		}
		got <- seen
	}()
	select {
	case seen := <-got:
		if seen != n-1 {
			t.Fatalf("the second feed got %d of the %d starts the first buffered", seen, n-1)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the starts the stopped feed buffered were not handed back within 20s (ack wait a minute)")
	}
}
