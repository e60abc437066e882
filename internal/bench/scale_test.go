package bench_test

// Scale measurements of two claims:
//
//   - TestLongHistory: the cost of folding and deciding one more event does
//     not grow with the history. One workflow runs a foreach over N items,
//     each item two echo steps (4 events per item: StepScheduled and
//     StepCompleted of each step, so N=3000 gives 12,004 events); the time
//     per event in the first, middle and last thirds of the run, and across
//     N = 1000, 2000, 3000, shows whether it stays flat.
//   - TestParkedWaits: K workflows parked in a wait hold little memory, and
//     signalling them all completes them.
//
// Both run small by default (part of `go test -race ./...`); WEFT_SCALE=1
// runs the full sizes (N = 1000, 2000, 3000; K = 100,000):
//
//	WEFT_SCALE=1 go test -count=1 -timeout 30m -run 'TestLongHistory|TestParkedWaits' -v ./internal/bench/
//
// Knobs: WEFT_SCALE_N (comma-separated item counts), WEFT_SCALE_CONC (the
// foreach's concurrency, default 10), WEFT_SCALE_K (parked workflows),
// WEFT_SCALE_C (concurrent API clients, default 64), WEFT_SCALE_HEAPPROFILE
// (a file to write a heap profile to while the workflows are parked),
// WEFT_TEST_LOG (engine logs to stderr).

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/executor"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/bench"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// scaleFull reports whether WEFT_SCALE asks for the full-size runs.
func scaleFull() bool {
	v := os.Getenv("WEFT_SCALE")
	return v != "" && v != "0"
}

// envInt reads a positive integer from the environment, else def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// envInts reads a comma-separated list of positive integers, else def.
func envInts(t *testing.T, name string, def []int) []int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want comma-separated positive integers", name, s)
		}
		out = append(out, n)
	}
	return out
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func scaleLogger() *slog.Logger {
	if os.Getenv("WEFT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discardWriter{}, nil))
}

// scaleEnv is an embedded Weft (NATS, orchestrator, executor with the
// built-ins, API on 127.0.0.1) with API clients and a NATS connection for
// watching histories.
type scaleEnv struct {
	ns   *natstest.Server
	node *node.Node
	nc   *nats.Conn
	wf   weftv1connect.WorkflowServiceClient
	defs weftv1connect.DefinitionServiceClient
}

func startScaleEnv(t *testing.T, clients int) *scaleEnv {
	t.Helper()
	ns := natstest.Start(t)
	n, err := node.Start(context.Background(), node.Config{NATSURL: ns.URL(), Store: eventstore.Config{},
		Orchestrator: &orchestrator.Config{}, Executor: &executor.Config{}, Builtins: true,
		API: &api.Config{}, APIAddr: "127.0.0.1:0", Logger: scaleLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Stop(ctx)
	})
	tr := &http.Transport{MaxIdleConns: 2 * clients, MaxIdleConnsPerHost: 2 * clients, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	httpc := &http.Client{Transport: tr}
	return &scaleEnv{ns: ns, node: n, nc: ns.Connect(t),
		wf:   weftv1connect.NewWorkflowServiceClient(httpc, n.APIURL),
		defs: weftv1connect.NewDefinitionServiceClient(httpc, n.APIURL)}
}

func (e *scaleEnv) putDef(ctx context.Context, t *testing.T, src string) *weftv1.PutDefinitionResponse {
	t.Helper()
	resp, err := e.defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
	if err != nil {
		t.Fatalf("PutDefinition: %v", err)
	}
	return resp.Msg
}

func cpuSeconds() float64 {
	cpu, _ := bench.ProcessUsage()
	return cpu
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	pv, err := structpb.NewValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

// asInt reads a whole number decoded from a history record or a proto value.
func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case uint32:
		return int64(n), true
	case float64:
		return int64(n), n == float64(int64(n))
	}
	return 0, false
}

// ---------------------------------------------------------------------------
// A: long history

const longHistoryDef = `name: scale-long-history
steps:
  - id: items
    foreach: "lists.range(input.n)"
    concurrency: %d
    do:
      - { id: first, task: echo, input: "${ item }" }
      - { id: second, task: echo, input: "${ steps.first.output }" }
`

// eventsPerItem is what one item of longHistoryDef records: StepScheduled
// and StepCompleted of each of its two echo steps. The rest of the history
// is WorkflowStarted, the foreach's StepStarted and StepCompleted, and
// WorkflowCompleted.
const eventsPerItem, eventsFixed = 4, 4

// record is one history record as the watcher saw it arrive.
type record struct {
	at     time.Time
	cpu    float64 // process CPU seconds when it arrived
	events int     // events in the record
}

// third is one third of a run's events.
type third struct {
	events      int
	wallSeconds float64
	cpuSeconds  float64
}

func (th third) wallUS() float64 { return th.wallSeconds / float64(th.events) * 1e6 }
func (th third) cpuUS() float64  { return th.cpuSeconds / float64(th.events) * 1e6 }

type historyRun struct {
	n, events    int
	wallSeconds  float64
	cpuSeconds   float64
	thirds       [3]third
	historyBytes int
	// A load after the run, as an orchestrator makes after a restart: the
	// whole history read and folded, against the latest snapshot and the
	// records after it.
	loadFull, loadSnap time.Duration
	records, tail      int
	snapBytes          int
}

func (r historyRun) wallUS() float64 { return r.wallSeconds / float64(r.events) * 1e6 }
func (r historyRun) cpuUS() float64  { return r.cpuSeconds / float64(r.events) * 1e6 }

// runLongHistory runs one workflow over n items on its own embedded Weft
// and measures it from the history records as they are stored.
func runLongHistory(t *testing.T, n, conc int, within time.Duration) historyRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	e := startScaleEnv(t, 4)
	def := e.putDef(ctx, t, fmt.Sprintf(longHistoryDef, conc))
	id := fmt.Sprintf("long-%d", n)

	var (
		mu      sync.Mutex
		recs    []record
		bytes   int
		badRec  error
		done    = make(chan struct{})
		closed  bool
		lastTyp events.Type
	)
	sub, err := e.nc.Subscribe("weft.h."+id+".>", func(m *nats.Msg) {
		at, cpu := time.Now(), cpuSeconds()
		k, last, err := events.Peek(m.Data)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if badRec == nil {
				badRec = err
			}
			return
		}
		recs = append(recs, record{at: at, cpu: cpu, events: k})
		bytes += len(m.Data)
		if last.Terminal() && !closed {
			closed, lastTyp = true, last
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}

	t0, cpu0 := time.Now(), cpuSeconds()
	if _, err := e.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
		Definition: def.Name, Revision: def.Revision, WorkflowId: id, RequestId: id,
		Input: mustValue(t, map[string]any{"n": n})})); err != nil {
		t.Fatalf("StartWorkflow: %v", err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		seen := 0
		for _, r := range recs {
			seen += r.events
		}
		mu.Unlock()
		t.Fatalf("N=%d: workflow not closed within %s (%d events seen)", n, within, seen)
	}
	mu.Lock()
	rs := append([]record(nil), recs...)
	hbytes, bad, last := bytes, badRec, lastTyp
	mu.Unlock()
	if bad != nil {
		t.Fatalf("N=%d: undecodable record: %v", n, bad)
	}
	if last != events.TypeWorkflowCompleted {
		t.Fatalf("N=%d: workflow ended with %s", n, last)
	}

	res := historyRun{n: n, historyBytes: hbytes}
	for _, r := range rs {
		res.events += r.events
	}
	end := rs[len(rs)-1]
	res.wallSeconds, res.cpuSeconds = end.at.Sub(t0).Seconds(), end.cpu-cpu0
	// Split at the records where the running count first reaches a third
	// and two thirds of the events; the first third starts at the start call.
	prevAt, prevCPU, prevCount, count, k := t0, cpu0, 0, 0, 0
	for _, r := range rs {
		count += r.events
		for k < 3 && count*3 >= (k+1)*res.events {
			res.thirds[k] = third{events: count - prevCount, wallSeconds: r.at.Sub(prevAt).Seconds(), cpuSeconds: r.cpu - prevCPU}
			prevAt, prevCPU, prevCount = r.at, r.cpu, count
			k++
		}
	}

	// The API agrees: completed, with every event and every output in order.
	// The watcher gets a record as it is published, which can be before the
	// stream has stored it: ask until the history shows it closed.
	var w *weftv1.Workflow
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := e.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
		if err != nil {
			t.Fatalf("GetWorkflow: %v", err)
		}
		w = got.Msg.Workflow
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING || time.Now().After(deadline) {
			break
		}
	}
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("N=%d: status %s, error %v", n, w.Status, w.Error)
	}
	if want := eventsPerItem*n + eventsFixed; res.events != want || int(w.HistoryLength) != want {
		t.Fatalf("N=%d: %d events seen, history_length %d, want %d", n, res.events, w.HistoryLength, want)
	}
	outs := w.Output.GetListValue().GetValues()
	if len(outs) != n {
		t.Fatalf("N=%d: output has %d items, want %d", n, len(outs), n)
	}
	for i, v := range outs {
		_, isNum := v.Kind.(*structpb.Value_NumberValue)
		if got, ok := asInt(v.GetNumberValue()); !isNum || !ok || got != int64(i) {
			t.Fatalf("N=%d: output[%d] = %v, want %d", n, i, v.AsInterface(), i)
		}
	}
	loadAgain(ctx, t, e, id, &res)
	return res
}

// loadAgain loads the closed workflow id twice, as an orchestrator loads a
// workflow it has not cached: folding its whole history, and from its
// latest snapshot (taken while it ran) and the records after it. Both
// must give the whole history's state.
func loadAgain(ctx context.Context, t *testing.T, e *scaleEnv, id string, res *historyRun) {
	t.Helper()
	store, err := eventstore.Open(ctx, e.nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fold := func(st *workflow.State, msgs []eventstore.Message) *workflow.State {
		for _, m := range msgs {
			if m.Err != nil {
				t.Fatalf("record %d: %v", m.Seq, m.Err)
			}
			if st.Events == 0 {
				st.FirstSeq = m.Seq // set by the reader, as runs.Fold does
			}
			for _, ev := range m.Record.Events {
				if err := st.Apply(ev); err != nil {
					t.Fatalf("record %d: %v", m.Seq, err)
				}
			}
		}
		return st
	}
	t0 := time.Now()
	msgs, err := store.Read(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	full := fold(&workflow.State{}, msgs)
	res.loadFull, res.records = time.Since(t0), len(msgs)

	t0 = time.Now()
	tail, err := store.ReadTail(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail.Snapshot == nil {
		t.Fatalf("%s: no snapshot named in a history of %d events", id, full.Events)
	}
	st, err := workflow.DecodeSnapshot(tail.Snapshot, tail.SnapshotSeq)
	if err != nil {
		t.Fatal(err)
	}
	st = fold(st, tail.Msgs)
	res.loadSnap, res.tail, res.snapBytes = time.Since(t0), len(tail.Msgs), len(tail.Snapshot)
	st.LastSeq = full.LastSeq // set by the reader, not by folding
	st.Bytes = full.Bytes     // a measure of what was read, not of the state
	if !reflect.DeepEqual(st, full) {
		t.Fatalf("%s from its snapshot differs from the whole history folded: %d events, %s; folded: %d events, %s",
			id, st.Events, st.Status, full.Events, full.Status)
	}
}

// TestLongHistory runs one workflow with a long history (a foreach over N
// items) and shows the time per event stays flat through the run and
// across N. The assertions compare ratios and take, for each, the smaller
// of wall time and this process's CPU time (NATS, orchestrator, executor
// and API all run in it), so a neighbour's load on the machine does not
// fail them while an engine cost that grows with the history (it shows in
// both) does. The thirds catch a cost that grows as the history does; a
// cost per event that grows with the size of the loop (a walk over all its
// items) is the same in every third and shows across N instead.
func TestLongHistory(t *testing.T) {
	full := scaleFull()
	ns := []int{300}
	limit, within := 5.0, 2*time.Minute // loose: -race and a shared machine
	if full {
		ns = []int{1000, 2000, 3000}
		limit, within = 3.0, 10*time.Minute
	}
	ns = envInts(t, "WEFT_SCALE_N", ns)
	for _, n := range ns {
		if n < 30 {
			t.Fatalf("WEFT_SCALE_N: %d items are too few to split a run in thirds; use at least 30", n)
		}
	}
	conc := envInt(t, "WEFT_SCALE_CONC", 10)

	var runs []historyRun
	for _, n := range ns {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			r := runLongHistory(t, n, conc, within)
			runs = append(runs, r)
			t.Logf("N=%d: %d events (%.1f MiB of records) in %.2fs wall, %.2fs CPU", n, r.events, mib(uint64(r.historyBytes)), r.wallSeconds, r.cpuSeconds)
		})
	}
	if len(runs) != len(ns) {
		t.FailNow()
	}

	var b strings.Builder
	fmt.Fprintf(&b, "foreach over N items, 2 echo steps each, concurrency %d, GOMAXPROCS %d, NumCPU %d\n", conc, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Fprintf(&b, "%6s %7s %8s %8s | %-25s | %-25s | %s\n", "N", "events", "wall s", "CPU s",
		"wall µs/event 1st/2nd/3rd", "CPU µs/event 1st/2nd/3rd", "µs/event wall, CPU (whole run)")
	for _, r := range runs {
		fmt.Fprintf(&b, "%6d %7d %8.2f %8.2f | %7.0f %7.0f %7.0f   | %7.0f %7.0f %7.0f   | %7.0f %7.0f\n",
			r.n, r.events, r.wallSeconds, r.cpuSeconds,
			r.thirds[0].wallUS(), r.thirds[1].wallUS(), r.thirds[2].wallUS(),
			r.thirds[0].cpuUS(), r.thirds[1].cpuUS(), r.thirds[2].cpuUS(),
			r.wallUS(), r.cpuUS())
	}
	fmt.Fprintf(&b, "load of the closed workflow: whole history folded | latest snapshot + records after it\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "%6d %7.1f ms (%d records)   | %7.1f ms (%.0f KiB + %d records)\n",
			r.n, float64(r.loadFull.Microseconds())/1000, r.records,
			float64(r.loadSnap.Microseconds())/1000, float64(r.snapBytes)/1024, r.tail)
	}
	t.Logf("\n%s", b.String())

	// Through one run: the last third's events cost no more than limit
	// times the first third's.
	for _, r := range runs {
		wall := r.thirds[2].wallUS() / r.thirds[0].wallUS()
		cpu := r.thirds[2].cpuUS() / r.thirds[0].cpuUS()
		t.Logf("N=%d: last/first third per event: wall %.2fx, CPU %.2fx", r.n, wall, cpu)
		if min(wall, cpu) > limit {
			t.Errorf("N=%d: the last third's events cost %.2fx (wall) and %.2fx (CPU) the first third's; limit %.1fx", r.n, wall, cpu, limit)
		}
	}
	// Across runs: with a constant cost per event the time per event stays
	// the same whatever N; with a cost per event that grows with the
	// history it grows as N does. The limit sits halfway between the two
	// (2x for 3x the items).
	if a, z := runs[0], runs[len(runs)-1]; len(runs) > 1 && z.n >= 3*a.n/2 {
		ratio := float64(z.n) / float64(a.n)
		across := 1 + (ratio-1)/2
		wall, cpu := z.wallUS()/a.wallUS(), z.cpuUS()/a.cpuUS()
		t.Logf("N=%d vs N=%d per event: wall %.2fx, CPU %.2fx (total time %.2fx for %.1fx the items); limit %.1fx",
			z.n, a.n, wall, cpu, z.wallSeconds/a.wallSeconds, ratio, across)
		if min(wall, cpu) > across {
			t.Errorf("superlinear: N=%d costs %.2fx (wall) and %.2fx (CPU) per event what N=%d does; limit %.1fx", z.n, wall, cpu, a.n, across)
		}
	}
}

// ---------------------------------------------------------------------------
// B: parked waits

const parkedDef = `name: scale-parked
steps:
  - id: approval
    wait: { signal: approve }
output: "${ {'id': workflow.id, 'approval': steps.approval.output} }"
`

// memStatus reads VmRSS and VmHWM of this process in bytes.
func memStatus(t *testing.T) (rss, hwm uint64) {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "kB" {
			continue
		}
		v, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			rss = v * 1024
		case "VmHWM:":
			hwm = v * 1024
		}
	}
	if rss == 0 || hwm == 0 {
		t.Fatalf("VmRSS/VmHWM not found in /proc/self/status")
	}
	return rss, hwm
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// parkWatch follows the history subjects of one run's workflows: which
// reached their wait, which completed and with what output.
type parkWatch struct {
	prefix string
	k      int

	mu        sync.Mutex
	parked    []bool
	completed []bool
	nParked   int
	nDone     int
	problems  []string
}

func (w *parkWatch) problem(format string, args ...any) {
	if len(w.problems) < 20 {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

func (w *parkWatch) handle(m *nats.Msg) {
	// weft.h.<id>.<kind>...
	parts := strings.SplitN(m.Subject, ".", 4)
	if len(parts) < 4 || !strings.HasPrefix(parts[2], w.prefix) {
		return
	}
	id := parts[2]
	i, err := strconv.Atoi(strings.TrimPrefix(id, w.prefix))
	if err != nil || i < 0 || i >= w.k {
		return
	}
	rec, err := events.Decode(m.Data)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.problem("%s: undecodable record: %v", id, err)
		return
	}
	for _, ev := range rec.Events {
		switch {
		case ev.Type == events.TypeWaitStarted:
			if !w.parked[i] {
				w.parked[i] = true
				w.nParked++
			}
		case ev.Type == events.TypeWorkflowCompleted:
			if w.completed[i] {
				continue
			}
			w.completed[i] = true
			w.nDone++
			out, _ := ev.WorkflowCompleted.Output.(map[string]any)
			payload, _ := out["approval"].(map[string]any)
			n, ok := asInt(payload["n"])
			if out["id"] != id || !ok || n != int64(i) || payload["id"] != id {
				w.problem("%s: output %v does not hold its signal payload", id, ev.WorkflowCompleted.Output)
			}
		case ev.Terminal():
			w.problem("%s: ended with %s", id, ev.Type)
		}
	}
}

func (w *parkWatch) counts() (parked, done int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nParked, w.nDone
}

// waitFor polls until cond holds, ctx ends or within passes.
func waitFor(ctx context.Context, within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	return true
}

// fanOut calls fn(i) for i in [0, k) from c goroutines, retrying each call
// up to 5 times (calls are idempotent by request id), and returns the
// first error that outlived its retries.
func fanOut(ctx context.Context, k, c int, fn func(ctx context.Context, i, attempt int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= k || ctx.Err() != nil {
					return
				}
				var err error
				for attempt := range 5 {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					err = fn(cctx, i, attempt)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
					select {
					case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
					case <-ctx.Done():
					}
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("item %d: %w", i, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// progress logs, every interval until stop is closed, how far a phase
// got, and how the orchestrator's input consumer stands (inputs waiting
// for an ack, and redeliveries: inputs that waited longer than the ack
// wait and were handed out again).
func progress(t *testing.T, e *scaleEnv, interval time.Duration, stop <-chan struct{}, what, doneWhat string, count func() (calls, done int)) *sync.WaitGroup {
	var wg sync.WaitGroup
	if interval <= 0 {
		return &wg
	}
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		begin := time.Now()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		prev, prevAt := 0, begin
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				calls, done := count()
				cons := "?"
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if c, err := js.Consumer(ctx, eventstore.HistoryStream, eventstore.ExternalConsumer); err == nil {
					if ci, err := c.Info(ctx); err == nil {
						cons = fmt.Sprintf("%d unacked, %d redelivered", ci.NumAckPending, ci.NumRedelivered)
					}
				}
				cancel()
				t.Logf("%s +%3.0fs: %d calls returned, %d %s (%.0f/s over the last %.0fs); orchestrator inputs: %s",
					what, now.Sub(begin).Seconds(), calls, done, doneWhat, float64(done-prev)/now.Sub(prevAt).Seconds(), now.Sub(prevAt).Seconds(), cons)
				prev, prevAt = done, now
			}
		}
	}()
	return &wg
}

// TestParkedWaits parks K workflows in a wait, measures this process's
// memory (it embeds NATS, the orchestrator, the executor and the API, so
// it is an upper bound of the server's), then signals them all and checks
// that each completed with its own signal's payload.
func TestParkedWaits(t *testing.T) {
	full := scaleFull()
	k := 500
	if full {
		k = 100000
	}
	k = envInt(t, "WEFT_SCALE_K", k)
	c := envInt(t, "WEFT_SCALE_C", 64)
	within := min(2*time.Minute+time.Duration(k)*10*time.Millisecond, 20*time.Minute)
	var every time.Duration // progress lines for long runs
	if k >= 10000 {
		every = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()

	rss0, _ := memStatus(t)
	e := startScaleEnv(t, c)
	def := e.putDef(ctx, t, parkedDef)
	w := &parkWatch{prefix: fmt.Sprintf("pk%d-", time.Now().UnixNano()%1e9), k: k, parked: make([]bool, k), completed: make([]bool, k)}
	sub, err := e.nc.Subscribe("weft.h.*.>", w.handle)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	idOf := func(i int) string { return w.prefix + strconv.Itoa(i) }
	report := func(what string) {
		p, d := w.counts()
		w.mu.Lock()
		probs := append([]string(nil), w.problems...)
		w.mu.Unlock()
		t.Fatalf("%s: %d of %d parked, %d completed when time ran out (%s in all); problems: %v", what, p, k, d, within, probs)
	}
	t.Logf("K=%d workflows, %d concurrent API clients, GOMAXPROCS %d, time limit %s", k, c, runtime.GOMAXPROCS(0), within)

	// Start K workflows.
	cpu0 := cpuSeconds()
	t0 := time.Now()
	var calls atomic.Int64
	stop := make(chan struct{})
	pw := progress(t, e, every, stop, "start", "parked", func() (int, int) { p, _ := w.counts(); return int(calls.Load()), p })
	err = fanOut(ctx, k, c, func(ctx context.Context, i, _ int) error {
		id := idOf(i)
		_, err := e.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: def.Name, Revision: def.Revision, WorkflowId: id, RequestId: id}))
		if err == nil {
			calls.Add(1)
		}
		return err
	})
	startDur := time.Since(t0)
	parkedOK := err == nil && waitFor(ctx, within, func() bool { p, _ := w.counts(); return p == k })
	close(stop)
	pw.Wait()
	if err != nil {
		t.Fatalf("starting: %v", err)
	}
	if !parkedOK {
		report("parking")
	}
	parkDur := time.Since(t0)
	cpuPark := cpuSeconds() - cpu0

	// The API shows them waiting (a sample, spread over the range).
	step := max(1, k/200)
	for i := 0; i < k; i += step {
		got, err := e.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: idOf(i)}))
		if err != nil {
			t.Fatalf("GetWorkflow %s: %v", idOf(i), err)
		}
		wf := got.Msg.Workflow
		if wf.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING || len(wf.Steps) != 1 ||
			wf.Steps[0].Status != weftv1.StepStatus_STEP_STATUS_WAITING {
			t.Fatalf("%s is not parked in its wait: %v", idOf(i), wf)
		}
	}

	// Memory while parked.
	rssParked, hwmParked := memStatus(t)
	runtime.GC()
	rssGC, _ := memStatus(t)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if path := os.Getenv("WEFT_SCALE_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
		t.Logf("heap profile while parked: %s", path)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "start:    %d StartWorkflow calls in %.2fs = %.0f/s; all parked after %.2fs = %.0f/s (%.1f CPU s)\n",
		k, startDur.Seconds(), float64(k)/startDur.Seconds(), parkDur.Seconds(), float64(k)/parkDur.Seconds(), cpuPark)
	fmt.Fprintf(&b, "parked:   VmRSS %.0f MiB (%.0f MiB after runtime.GC; %.0f MiB before the server started), VmHWM %.0f MiB\n",
		mib(rssParked), mib(rssGC), mib(rss0), mib(hwmParked))
	fmt.Fprintf(&b, "          Go heap in use %.0f MiB, Go runtime total (Sys) %.0f MiB, %d goroutines; %.1f KiB RSS per parked workflow\n",
		mib(ms.HeapInuse), mib(ms.Sys), runtime.NumGoroutine(), float64(rssParked-min(rss0, rssParked))/float64(k)/1024)
	t.Logf("\n%s", b.String())
	const gib = 1 << 30
	if full && rssParked > gib {
		t.Errorf("%d parked workflows hold %.0f MiB RSS (%.0f MiB after GC); the target is at most 1024 MiB", k, mib(rssParked), mib(rssGC))
	}

	// Signal them all.
	cpu1 := cpuSeconds()
	t1 := time.Now()
	calls.Store(0)
	stop = make(chan struct{})
	pw = progress(t, e, every, stop, "signal", "completed", func() (int, int) { _, d := w.counts(); return int(calls.Load()), d })
	err = fanOut(ctx, k, c, func(ctx context.Context, i, attempt int) error {
		id := idOf(i)
		payload, err := structpb.NewValue(map[string]any{"n": i, "id": id})
		if err != nil {
			return err
		}
		_, err = e.wf.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: id, Name: "approve",
			RequestId: "sig-" + id, Payload: payload}))
		if attempt > 0 && connect.CodeOf(err) == connect.CodeFailedPrecondition {
			err = nil // an earlier attempt got through and the workflow completed
		}
		if err == nil {
			calls.Add(1)
		}
		return err
	})
	signalDur := time.Since(t1)
	doneOK := err == nil && waitFor(ctx, within, func() bool { _, d := w.counts(); return d == k })
	close(stop)
	pw.Wait()
	if err != nil {
		report(fmt.Sprintf("signalling (%d calls returned): %v", calls.Load(), err))
	}
	if !doneOK {
		report("completing")
	}
	doneDur := time.Since(t1)
	cpuDone := cpuSeconds() - cpu1
	rssEnd, hwmEnd := memStatus(t)

	w.mu.Lock()
	probs := append([]string(nil), w.problems...)
	w.mu.Unlock()
	if len(probs) > 0 {
		t.Fatalf("problems: %s", strings.Join(probs, "; "))
	}
	// The API shows them completed with their payloads (a sample).
	for i := 0; i < k; i += step {
		got, err := e.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: idOf(i)}))
		if err != nil {
			t.Fatalf("GetWorkflow %s: %v", idOf(i), err)
		}
		wf := got.Msg.Workflow
		out := wf.Output.GetStructValue().GetFields()
		n, _ := asInt(out["approval"].GetStructValue().GetFields()["n"].GetNumberValue())
		if wf.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || out["id"].GetStringValue() != idOf(i) || n != int64(i) {
			t.Fatalf("%s: status %s, output %v", idOf(i), wf.Status, wf.Output.AsInterface())
		}
	}

	b.Reset()
	fmt.Fprintf(&b, "signal:   %d SignalWorkflow calls in %.2fs = %.0f/s; all completed after %.2fs = %.0f/s (%.1f CPU s)\n",
		k, signalDur.Seconds(), float64(k)/signalDur.Seconds(), doneDur.Seconds(), float64(k)/doneDur.Seconds(), cpuDone)
	fmt.Fprintf(&b, "end:      VmRSS %.0f MiB, peak (VmHWM) %.0f MiB\n", mib(rssEnd), mib(hwmEnd))
	t.Logf("\n%s", b.String())
}
