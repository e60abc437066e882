package api

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// The states the API keeps are bounded by their size, not only by their
// number: reads of runs with large inputs keep at most StateCacheBytes of
// them, the least recently read going first, and a run larger than the
// bound alone is answered but not kept. Every read answers its own run.
func TestTheCacheOfStatesIsBoundedInBytes(t *testing.T) {
	const bound = 700 << 10
	s, start, get := boundedCache(t, bound)
	held := func() (n int, bytes int64) {
		s.states.mu.Lock()
		defer s.states.mu.Unlock()
		return s.states.runs.Len(), s.states.bytes
	}
	for i := range 10 {
		wf := fmt.Sprintf("big-%d", i)
		start(wf, 200<<10)
		get(wf)
		if n, b := held(); b > bound {
			t.Fatalf("after %d runs read, the cache counts %d bytes in %d states, past its bound of %d", i+1, b, n, bound)
		}
	}
	if n, b := held(); n > 3 || b < 200<<10 {
		t.Fatalf("the cache holds %d states of %d bytes; want at most 3 of about 200 KiB each", n, b)
	}
	if _, ok := s.states.peek("big-9"); !ok {
		t.Fatal("the run read last is not kept")
	}
	if _, ok := s.states.peek("big-0"); ok {
		t.Fatal("the run read first is still kept")
	}
	get("big-0") // read again after it was pushed out

	start("huge", 900<<10)
	get("huge")
	if _, ok := s.states.peek("huge"); ok {
		t.Fatal("a run larger than the whole bound is kept")
	}
	if _, b := held(); b > bound {
		t.Fatalf("the cache counts %d bytes, past its bound of %d", b, bound)
	}
}

// A run whose state alone is larger than StateCacheBytes is answered and
// not kept, and only it goes: the states of the other runs read stay
// cached. (Pushing the least recently used out until the total fit once
// emptied the whole cache before the large state itself went, so every
// read of one large run made every other run's next read a full one.)
func TestAStateLargerThanTheBoundPushesOutOnlyItself(t *testing.T) {
	const bound = 700 << 10
	s, start, get := boundedCache(t, bound)
	small := []string{"small-0", "small-1"}
	for _, wf := range small {
		start(wf, 100<<10)
		get(wf)
	}
	for _, wf := range small {
		if _, ok := s.states.peek(wf); !ok {
			t.Fatalf("%s is not cached before the large run is read", wf)
		}
	}
	start("huge", 900<<10)
	get("huge")
	if _, ok := s.states.peek("huge"); ok {
		t.Fatal("a run larger than the whole bound is kept")
	}
	for _, wf := range small {
		if _, ok := s.states.peek(wf); !ok {
			t.Errorf("%s (100 KiB, within the bound of %d with the other) was pushed out by a read of a run larger than the bound alone", wf, bound)
		}
	}
	s.states.mu.Lock()
	n, b := s.states.runs.Len(), s.states.bytes
	s.states.mu.Unlock()
	if b > bound || b < 200<<10 {
		t.Fatalf("the cache counts %d bytes in %d states; want the two small runs' (about 200 KiB)", b, n)
	}
}

// boundedCache returns an API whose cache of states holds at most bound
// bytes, with start, which starts a run waiting for a signal with an input
// of about size bytes, and get, which reads a run and checks it is the
// one asked for.
func boundedCache(t *testing.T, bound int) (s *Server, start func(wf string, size int), get func(wf string)) {
	ctx := t.Context()
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "w", "name: w\nsteps:\n  - { id: gate, wait: { signal: go } }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, err = New(store, Config{StateCacheBytes: bound}); err != nil {
		t.Fatal(err)
	}
	start = func(wf string, size int) {
		t.Helper()
		in, err := structpb.NewValue(map[string]any{"pad": strings.Repeat("x", size), "id": wf})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w", WorkflowId: wf, Input: in})); err != nil {
			t.Fatal(err)
		}
	}
	get = func(wf string) {
		t.Helper()
		got, err := s.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: wf}))
		if err != nil {
			t.Fatal(err)
		}
		if id := got.Msg.Workflow.Input.GetStructValue().GetFields()["id"].GetStringValue(); id != wf {
			t.Fatalf("GetWorkflow of %s answered the input of %q", wf, id)
		}
	}
	return s, start, get
}
