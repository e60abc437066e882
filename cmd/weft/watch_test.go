package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/logbuf"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
)

// parkedDef's runs wait for a signal "go"; brief's do too, and are
// deleted soon after they close.
const (
	parkedDef = `
name: parked
steps:
  - id: w
    wait: { signal: go }
output: "${ steps.w.output }"
`
	briefDef = `
name: brief
retention: 300ms
steps:
  - id: w
    wait: { signal: go }
`
)

// watchEnv is a Weft on a real embedded NATS server: an orchestrator
// and an API (wf) the test drives its runs through, besides the API
// processes that serve the watches.
type watchEnv struct {
	t    *testing.T
	nats string
	wf   weftv1connect.WorkflowServiceClient
	c    context.Context // the test's calls', ended with it
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &watchEnv{t: t, nats: natstest.Start(t).URL(), c: c}
	n := e.startNode(node.Config{Orchestrator: &orchestrator.Config{}, API: &api.Config{}, APIAddr: "127.0.0.1:0"})
	e.wf = weftv1connect.NewWorkflowServiceClient(http.DefaultClient, n.APIURL)
	defs := weftv1connect.NewDefinitionServiceClient(http.DefaultClient, n.APIURL)
	for _, src := range []string{parkedDef, briefDef} {
		if _, err := defs.PutDefinition(e.c, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src})); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// startNode starts cfg's parts on the env's NATS until the test ends.
func (e *watchEnv) startNode(cfg node.Config) *node.Node {
	e.t.Helper()
	cfg.NATSURL, cfg.Logger = e.nats, slog.New(slog.DiscardHandler)
	n, err := node.Start(context.Background(), cfg)
	if err != nil {
		e.t.Fatalf("start node: %v", err)
	}
	e.t.Cleanup(func() { e.stop(n) })
	return n
}

// startAPI starts an API process on addr (host:port).
func (e *watchEnv) startAPI(addr string) *node.Node {
	e.t.Helper()
	return e.startNode(node.Config{API: &api.Config{}, APIAddr: addr})
}

func (e *watchEnv) stop(n *node.Node) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		e.t.Errorf("stop node: %v", err)
	}
}

// start starts a run of def under id and returns its history once it
// waits for its signal.
func (e *watchEnv) start(def, id string, input float64) []*weftv1.HistoryEvent {
	e.t.Helper()
	if _, err := e.wf.StartWorkflow(e.c, connect.NewRequest(&weftv1.StartWorkflowRequest{
		Definition: def, WorkflowId: id, Input: structpb.NewNumberValue(input)})); err != nil {
		e.t.Fatal(err)
	}
	poll(e.t, id+" to wait for its signal", func() bool {
		res, err := e.wf.GetWorkflow(e.c, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		if err != nil {
			e.t.Fatal(err)
		}
		steps := res.Msg.GetWorkflow().GetSteps()
		return len(steps) == 1 && steps[0].GetStatus() == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	return e.history(id)
}

func (e *watchEnv) history(id string) []*weftv1.HistoryEvent {
	e.t.Helper()
	res, err := e.wf.GetHistory(e.c, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageSize: 1000}))
	if err != nil || res.Msg.GetNextPageToken() != "" {
		e.t.Fatalf("history of %s: %v (next page %q)", id, err, res.Msg.GetNextPageToken())
	}
	return res.Msg.GetEvents()
}

func (e *watchEnv) signal(id string) {
	e.t.Helper()
	if _, err := e.wf.SignalWorkflow(e.c, connect.NewRequest(&weftv1.SignalWorkflowRequest{
		WorkflowId: id, Name: "go", Payload: structpb.NewBoolValue(true)})); err != nil {
		e.t.Fatal(err)
	}
}

// poll checks cond every 20ms until it holds, failing t after 20s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// watching is a watchWorkflow running in its own goroutine.
type watching struct {
	notes logbuf.Buffer
	calls atomic.Int32 // the watches made
	done  chan struct{}
	err   error // set when done closes

	mu  sync.Mutex
	got []*weftv1.HistoryEvent
}

func watch(t *testing.T, url, id string) *watching {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watching{done: make(chan struct{})}
	t.Cleanup(func() { cancel(); <-w.done })
	cf := &clientFlags{server: url}
	if err := cf.setup(); err != nil {
		t.Fatal(err)
	}
	cf.streamHTTP.Transport = counting{cf.streamHTTP.Transport, &w.calls}
	go func() {
		defer close(w.done)
		w.err = watchWorkflow(ctx, cf, id, func(ev *weftv1.HistoryEvent) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.got = append(w.got, ev)
			return nil
		}, &w.notes)
	}()
	return w
}

// counting counts the requests it passes on.
type counting struct {
	http.RoundTripper
	n *atomic.Int32
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// noted polls until the watch has noted that it is made again; it fails
// t if watchWorkflow returns first.
func (w *watching) noted(t *testing.T) {
	t.Helper()
	poll(t, "the watch to note the stop", func() bool {
		select {
		case <-w.done:
			t.Fatalf("watchWorkflow returned %v at the stop, having handed on %v; want it to watch again", w.err, seqs(w.handed()))
		default:
		}
		return strings.Contains(w.notes.String(), "watching again")
	})
}

// handed returns the events handed on so far.
func (w *watching) handed() []*weftv1.HistoryEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*weftv1.HistoryEvent(nil), w.got...)
}

// result waits for watchWorkflow to return.
func (w *watching) result(t *testing.T) error {
	t.Helper()
	select {
	case <-w.done:
		return w.err
	case <-time.After(20 * time.Second):
		t.Fatalf("watchWorkflow did not return; handed on %v; notes %q", seqs(w.handed()), w.notes.String())
		return nil
	}
}

func seqs(evs []*weftv1.HistoryEvent) []uint64 {
	var s []uint64
	for _, ev := range evs {
		s = append(s, ev.GetSequence())
	}
	return s
}

// sameEvents fails t unless got is want: the same sequences, types and
// times, in order.
func sameEvents(t *testing.T, what string, got, want []*weftv1.HistoryEvent) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.GetSequence() == uint64(i+1) && g.GetSequence() == w.GetSequence() && g.GetType() == w.GetType() &&
			g.GetTime().AsTime().Equal(w.GetTime().AsTime())
	}
	if !ok {
		t.Fatalf("%s: handed on %v; want the run's events %v, each once and in order", what, seqs(got), seqs(want))
	}
}

// wantStopNoted fails t unless notes say once that the watch is made
// again, after the stop of its API process ended it as Unavailable.
func wantStopNoted(t *testing.T, notes string) {
	t.Helper()
	if !strings.Contains(notes, "unavailable: this API process is stopping") || strings.Count(notes, "watching again") != 1 {
		t.Errorf("notes %q; want the stop's unavailable noted once, and the watch made again", notes)
	}
}

// watchToAStop starts a run id of def and watches it through an API node
// until the watch has handed on the run's first events; then it stops the
// node, once the watch noted the outage. It returns the watch, the
// stopped node's address and the events before the stop.
func (e *watchEnv) watchToAStop(def, id string) (*watching, string, []*weftv1.HistoryEvent) {
	e.t.Helper()
	before := e.start(def, id, 1)
	first := e.startAPI("127.0.0.1:0")
	w := watch(e.t, first.APIURL, id)
	poll(e.t, "the watch to hand on the run's first events", func() bool { return len(w.handed()) >= len(before) })
	e.stop(first)
	w.noted(e.t)
	return w, strings.TrimPrefix(first.APIURL, "http://"), before
}

// A watch that the stop of its API process ends (Unavailable) is made
// again, on a new API process on the same address, and goes on after the
// last event it handed on: each event once, in order, to the close.
func TestWatchWorkflowGoesOnAfterAStop(t *testing.T) {
	e := newWatchEnv(t)
	w, addr, before := e.watchToAStop("parked", "goes-on")
	second := e.startAPI(addr)
	poll(t, "the watch to be made again on the new API process", func() bool {
		_, watches := second.API.Waiting()
		return watches == 1
	})
	e.signal("goes-on")
	if err := w.result(t); err != nil {
		t.Fatalf("watchWorkflow: %v; notes %q", err, w.notes.String())
	}

	all := e.history("goes-on")
	if last := all[len(all)-1].GetType(); last != "WorkflowCompleted" || len(all) <= len(before) {
		t.Fatalf("the run's history %v ends with %s; want more events than the %d before the stop, to its close", seqs(all), last, len(before))
	}
	sameEvents(t, "a watch across a stop", w.handed(), all)
	wantStopNoted(t, w.notes.String())
}

// A run deleted and started again under the watched id while no API
// process answered is not the one watched: the watch ends with an error
// and hands on none of the new run's events.
func TestWatchWorkflowEndsOnARunStartedAgain(t *testing.T) {
	e := newWatchEnv(t)
	w, addr, before := e.watchToAStop("brief", "reborn")
	e.signal("reborn")
	poll(t, "the run to be deleted once closed", func() bool {
		_, err := e.wf.GetWorkflow(e.c, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: "reborn"}))
		return connect.CodeOf(err) == connect.CodeNotFound
	})
	after := e.start("brief", "reborn", 2)
	if after[0].GetTime().AsTime().Equal(before[0].GetTime().AsTime()) {
		t.Fatalf("the run started again began at %s, as the first one", before[0].GetTime().AsTime())
	}
	e.startAPI(addr)

	err := w.result(t)
	if err == nil || !strings.Contains(err.Error(), "started again") {
		t.Fatalf("watchWorkflow over a run started again = %v; want an error saying so", err)
	}
	sameEvents(t, "a watch over a run started again", w.handed(), before)
	wantStopNoted(t, w.notes.String())
}

// Other errors end watchWorkflow at once, after one watch: it is not made
// again (nor noted).
func TestWatchWorkflowEndsAtOtherErrors(t *testing.T) {
	e := newWatchEnv(t)
	n := e.startAPI("127.0.0.1:0")
	w := watch(t, n.APIURL, "unknown")
	if err := w.result(t); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("watchWorkflow of an unknown run = %v; want not_found", err)
	}
	if notes, got, n := w.notes.String(), w.handed(), w.calls.Load(); notes != "" || len(got) != 0 || n != 1 {
		t.Fatalf("watchWorkflow of an unknown run handed on %v and noted %q after %d watches; want nothing, after 1", seqs(got), notes, n)
	}
}
