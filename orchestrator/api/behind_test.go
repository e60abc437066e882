package api

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/natstest"
)

// storeLater stores ev in wf's history after its record at sequence
// after, 100ms from now, once this process's follower has passed it on (a
// stream that delivered a record before its reads show it).
func storeLater(t *testing.T, s *Server, wf string, after uint64, ev events.Event) {
	t.Helper()
	storeIn(t, s, wf, after, ev, 100*time.Millisecond)
}

// storeIn is storeLater, stored d from now.
func storeIn(t *testing.T, s *Server, wf string, after uint64, ev events.Event, d time.Duration) {
	t.Helper()
	s.interest.record(eventstore.Followed{Workflow: wf, Seq: after + 1, Prev: after, HasPrev: true})
	stored := time.AfterFunc(d, func() {
		prev := after
		seq, err := s.store.AppendExternal(context.Background(), wf, &prev, "later/"+wf, ev)
		if err != nil || seq != after+1 {
			t.Errorf("%s was stored at %d (%v); the test expected %d", ev.Type, seq, err, after+1)
		}
	})
	t.Cleanup(func() { stored.Stop() })
}

// recordedLast checks that wf's history holds n records, the last of them
// beginning with an event of type typ.
func recordedLast(t *testing.T, s *Server, wf string, n int, typ events.Type) {
	t.Helper()
	msgs, err := s.store.Read(context.Background(), wf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if last := msgs[len(msgs)-1]; len(msgs) != n || last.Record.Events[0].Type != typ {
		t.Fatalf("history: %d records, the last %v; want %d, the last a %s", len(msgs), last.Record.Events, n, typ)
	}
}

// forget makes the follower's table forget wf, as it does a run whose
// last record is older than followedKeep.
func (f *followedSeqs) forget(wf string) {
	f.mu.Lock()
	delete(f.last, maphash.String(f.seed, wf))
	f.mu.Unlock()
}

// passClose does what the follower does with a record closing wf at seq
// (the record after prev): offers it to the cache, remembers it, wakes
// the calls waiting on wf, and counts it passed on. (A record made here
// cannot say it closes its run.)
func passClose(s *Server, wf string, seq, prev uint64) {
	s.interest.seen(eventstore.Followed{Workflow: wf, Seq: seq, Prev: prev, HasPrev: true})
	s.interest.followed.note(wf, seq)
	s.interest.mu.Lock()
	for w := range s.interest.waiters[wf] {
		w.poke(seq)
	}
	s.interest.mu.Unlock()
	s.interest.passed(seq)
}

// noFollowerAPI serves an API over a fresh store whose follower never
// comes (the test passes records on itself; epoch 1 counts as in place),
// and starts run wf; it returns the API, a client and the start's
// sequence.
func noFollowerAPI(t *testing.T, wf string) (*Server, weftv1connect.WorkflowServiceClient, uint64) {
	t.Helper()
	ctx := context.Background()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.interest.follow = func(context.Context) (*eventstore.Follower, error) {
		return nil, errors.New("no follower in this test")
	}
	s.interest.running.Store(1)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	var zero uint64
	first, err := store.AppendExternal(ctx, wf, &zero, "start/"+wf, events.Event{Type: events.TypeWorkflowStarted, Time: time.Unix(100, 0).UTC(),
		WorkflowStarted: &events.WorkflowStarted{WorkflowID: wf, Definition: "d", Revision: 1}})
	if err != nil {
		t.Fatal(err)
	}
	return s, weftv1connect.NewWorkflowServiceClient(http.DefaultClient, srv.URL), first
}

// The follower's table of last records remembers every run whose record
// it passed on lately, exactly, however many other runs' records pass
// meanwhile (a table of slots by hash forgot a run whose slot another
// took: with 100,000 others, nearly always), and forgets the oldest past
// its bound.
func TestTheFollowersTableRemembersEveryRecentRun(t *testing.T) {
	f := newFollowedSeqs()
	f.note("wf", 7)
	f.note("wf", 5) // a record passed on out of order does not go back
	for i := range 100_000 {
		f.note(fmt.Sprintf("other-%d", i), uint64(10+i))
	}
	if got := f.of("wf"); got != 7 {
		t.Fatalf("of(wf) after 100,000 other runs' records = %d; want 7", got)
	}
	if got := f.of("other-99999"); got != 100_009 {
		t.Fatalf("of(other-99999) = %d", got)
	}
	if f.of("never") != 0 {
		t.Fatal("a run never passed on is remembered")
	}
	for i := range followedNotes {
		f.note(fmt.Sprintf("more-%d", i), uint64(200_000+i))
	}
	if f.of("wf") != 0 || f.of("other-0") != 0 {
		t.Fatal("runs noted before the last followedNotes records are still remembered")
	}
	if n := len(f.last); n != followedNotes {
		t.Fatalf("the table holds %d runs; want %d", n, followedNotes)
	}
	if n := len(f.notes) - f.head; n != followedNotes {
		t.Fatalf("the table holds %d notes; want %d", n, followedNotes)
	}
	f.clear()
	if f.of("more-0") != 0 {
		t.Fatal("clear forgot nothing")
	}
}

// failed is a run's failure, as recorded.
var failed = events.Event{Type: events.TypeWorkflowFailed, Time: time.Unix(102, 0).UTC(),
	WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: "boom", Message: "failed"}}}

// A retry of a run this process's follower saw fail is not refused as
// "RUNNING" by a read that comes back behind that record: the read is
// made again until it reaches it, and the retry is applied. (Chaos seed
// 43: a client awaited a run's failure, and its retry was refused.)
func TestARetryIsNotRefusedByAReadBehindTheFollower(t *testing.T) {
	ctx := context.Background()
	const wf = "retry-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	storeLater(t, s, wf, first, failed)
	if _, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"})); err != nil {
		t.Fatalf("retry of a run the follower saw fail: %v", err)
	}
	recordedLast(t, s, wf, 3, events.TypeWorkflowRetried)
}

// A read that stays behind what the follower passed on answers a retry
// Unavailable (try again), never FailedPrecondition: the run may have
// failed, as the follower's record says.
func TestARetryReadStayingBehindIsUnavailable(t *testing.T) {
	ctx := context.Background()
	const wf = "retry-stays-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	s.interest.followed.note(wf, first+10) // never stored
	_, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"}))
	if connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("retry of a run read behind the follower: %v; want unavailable", err)
	}
	// Without a record seen beyond the read, a running run is refused.
	s.interest.followed.clear()
	_, err = s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("retry of a running run: %v; want failed_precondition", err)
	}
}

// A cancel of a run this process's follower saw redriven is not refused
// as "FAILED" by a read that comes back behind the redrive: the read is
// made again until it reaches it, and the cancel is recorded.
func TestACancelIsNotRefusedByAReadBehindTheFollower(t *testing.T) {
	ctx := context.Background()
	const wf = "cancel-behind"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	after := first
	failedAt, err := s.store.AppendExternal(ctx, wf, &after, "fail/"+wf, failed)
	if err != nil {
		t.Fatal(err)
	}
	storeLater(t, s, wf, failedAt, events.Event{Type: events.TypeWorkflowRetried, Time: time.Unix(103, 0).UTC(),
		WorkflowRetried: &events.WorkflowRetried{Reason: "x"}})
	_, err = s.CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: wf, RequestId: "c1"}))
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		t.Fatalf("cancel of a run the follower saw retried was refused from a read behind it: %v", err)
	}
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	recordedLast(t, s, wf, 4, events.TypeCancelRequested)
}

// A retry of a run this process's follower saw fail is not refused as
// "RUNNING" from a read behind that record when the run's state was
// pushed out of the cache and the follower passed on the records of
// 100,000 other runs since (a table of slots by hash forgot the run, and
// the read behind counted as whole: chaos seed 43's loss again).
func TestARetryIsNotRefusedWhileTheFollowerPassesOnOtherRuns(t *testing.T) {
	ctx := context.Background()
	const wf = "retry-busy"
	s, first := readRun(t, wf, 4, slog.New(slog.DiscardHandler))
	s.cfg.Now = time.Now
	if e, ok := s.states.peek(wf); ok {
		s.states.drop(wf, e)
	}
	storeIn(t, s, wf, first, failed, 3*time.Second)
	began := time.Now()
	for i := range 100_000 {
		s.interest.record(eventstore.Followed{Workflow: fmt.Sprintf("other-%d", i), Seq: first + 2 + uint64(i)})
	}
	t.Logf("100,000 records passed on in %s", time.Since(began).Round(time.Millisecond))
	_, err := s.RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: wf, RequestId: "r1"}))
	if connect.CodeOf(err) == connect.CodeFailedPrecondition {
		t.Fatalf("retry of a run the follower saw fail was refused from a read behind it: %v", err)
	}
}

// A watch woken by a record its read does not show yet keeps reading
// until it does, also when the follower's table no longer remembers the
// run (its record older than followedKeep, or more than followedNotes
// records since): the wake itself said which record it was for. Here
// the record is the run's failure: a watch that stops reading stays open
// on a closed run for ever.
func TestAWatchBehindKeepsReadingWhenTheTableForgetsItsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const wf = "watched-forgotten"
	s, client, first := noFollowerAPI(t, wf)
	stream, err := client.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: wf}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() || stream.Msg().Event.Type != string(events.TypeWorkflowStarted) {
		t.Fatalf("first event: %v %v", stream.Msg(), stream.Err())
	}
	storeLater(t, s, wf, first, failed)
	s.interest.followed.forget(wf)
	got := make(chan string, 1)
	go func() {
		if stream.Receive() {
			got <- stream.Msg().Event.Type
			return
		}
		got <- fmt.Sprintf("end: %v", stream.Err())
	}()
	select {
	case typ := <-got:
		if typ != string(events.TypeWorkflowFailed) {
			t.Fatalf("the watch sent %s; want WorkflowFailed", typ)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run's failure, stored 100ms after the watch was woken for it, was not sent in 5s: the watch waits for a wake that came before its read")
	}
}

// An await woken by its run's close, whose look reads the run behind that
// record (its cached state pushed out, so the look asks the stream), looks
// again until it reaches it: the close's wake came before the read and
// does not come again, and an await that parked answered DeadlineExceeded
// for a run that closed. Both when the follower's table no longer
// remembers the run, and when the read stays behind longer than a read
// waits (maxBehindWait).
func TestAnAwaitWokenByACloseItCannotReadYetLooksAgain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		forget  bool          // the table forgets the run
		storeIn time.Duration // when the close is stored after it was passed on
	}{
		{name: "table forgot the run", forget: true, storeIn: 100 * time.Millisecond},
		{name: "read behind past maxBehindWait", storeIn: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			const wf = "awaited-behind"
			s, client, first := noFollowerAPI(t, wf)
			const timeout = 8 * time.Second
			type answer struct {
				r   *connect.Response[weftv1.AwaitWorkflowResponse]
				err error
			}
			answered := make(chan answer, 1)
			began := time.Now()
			go func() {
				r, err := client.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: wf, Timeout: durationpb.New(timeout)}))
				answered <- answer{r, err}
			}()
			// The await registered and looked (the run runs; its state
			// cached), then reads of other runs push the state out.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if a, _ := s.Waiting(); a == 1 {
					if e, ok := s.states.peek(wf); ok {
						s.states.drop(wf, e)
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("the await did not register and look")
				}
			}
			// The follower passes on the run's failure before reads show it.
			passClose(s, wf, first+1, first)
			if tc.forget {
				s.interest.followed.forget(wf)
			}
			stored := time.AfterFunc(tc.storeIn, func() {
				prev := first
				if seq, err := s.store.AppendExternal(context.Background(), wf, &prev, "later/"+wf, failed); err != nil || seq != first+1 {
					t.Errorf("the failure was stored at %d (%v); the test expected %d", seq, err, first+1)
				}
			})
			defer stored.Stop()
			a := <-answered
			if a.err != nil {
				t.Fatalf("await of a run that failed %s after its close was passed on: %v (after %s)", tc.storeIn, a.err, time.Since(began).Round(time.Millisecond))
			}
			if st := a.r.Msg.Workflow.Status; st != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED {
				t.Fatalf("await answered %s; want FAILED", st)
			}
		})
	}
}
