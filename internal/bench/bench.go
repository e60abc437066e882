// Package bench is Weft's load tool: it starts many workflows through the
// API, waits for each the way an API client does (or, for diagnosis, on
// NATS), and reports throughput and start-to-result latency, optionally
// against the raw JetStream cost of the same number of history events
// (the floor).
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/callagain"
	"github.com/weftworks/weft/orchestrator/definition"
)

// DefaultDefinition is three sequential echo steps.
const DefaultDefinition = `name: bench
steps:
  - { id: one, task: echo, input: "${ input }" }
  - { id: two, task: echo, input: "${ steps.one.output }" }
  - { id: three, task: echo, input: "${ steps.two.output }" }
`

// The ways a client learns that its run finished (Config.Wait).
const (
	// WaitAwait calls AwaitWorkflow after the start.
	WaitAwait = "await"
	// WaitWatch follows WatchWorkflow until the closing event.
	WaitWatch = "watch"
	// WaitPoll calls GetWorkflow, 0.5 ms apart doubling to 20 ms, until
	// the run is closed.
	WaitPoll = "poll"
	// WaitNATS watches the closing records on NATS, a path no API client
	// has (for diagnosis).
	WaitNATS = "nats"
)

// Waits lists the wait modes, the default first.
var Waits = []string{WaitAwait, WaitWatch, WaitPoll, WaitNATS}

// Config says what to run.
type Config struct {
	// Server is the API base URL. Required.
	Server string
	// Transport carries the clients' calls to Server: one that adds a
	// bearer token or TLS settings for an API that requires them. Nil: a
	// plain HTTP transport.
	Transport http.RoundTripper
	// NATSURL is the NATS server the API uses. With it the run counts
	// the history events it wrote; it is required by WaitNATS, AlsoNATS,
	// Floor and Pipeline.
	NATSURL string
	// Wait is how each client learns that its run finished: WaitAwait
	// (the default), WaitWatch, WaitPoll or WaitNATS.
	Wait string
	// AlsoNATS, with an API wait, also records when NATS carried each
	// run's closing record and reports that as a second figure.
	AlsoNATS bool
	// Source is the definition to run. Default DefaultDefinition.
	Source string
	// Input is each workflow's input (JSON). Default {"n": 1}.
	Input string
	// N workflows, run by C concurrent clients, each starting a workflow
	// and waiting for it to complete before the next. Defaults 1000 and 16.
	N, C int
	// Floor also measures plain JetStream publishes of as many events.
	Floor bool
	// FloorBatch, with Floor, also publishes them in atomic batches of
	// FloorBatch messages (nats-server's atomic batch publish, which a
	// stream of one replica with sync always writes with one fsync a
	// batch): what a group commit of records could reach.
	FloorBatch int
	// Pipeline also runs as many workflows of as many steps through a bare
	// JetStream pipeline of two consumers (no state, no checks, no API).
	Pipeline bool
	// Pollers more clients call GetWorkflow as fast as they are answered,
	// each time on one of the workflows in flight, while the run lasts.
	Pollers int
	// Progress receives a progress line now and then; nil for none.
	Progress io.Writer
	// Timeout bounds the whole run. Default 10m.
	Timeout time.Duration
	// ServerMsgs, when set, reads the NATS server's counts of messages in
	// and out; the run reports them per workflow (a figure that, unlike
	// time, does not drift with the machine).
	ServerMsgs func() (in, out int64)
}

// check fills in the defaults and rejects what cannot run.
func (cfg *Config) check() error {
	if cfg.Server == "" {
		return errors.New("bench: Server is required")
	}
	if cfg.Wait == "" {
		cfg.Wait = WaitAwait
	}
	if !slices.Contains(Waits, cfg.Wait) {
		return fmt.Errorf("bench: Wait %q: use one of %s", cfg.Wait, strings.Join(Waits, ", "))
	}
	if cfg.AlsoNATS && cfg.Wait == WaitNATS {
		return errors.New("bench: AlsoNATS is for the API waits; Wait nats measures on NATS already")
	}
	if cfg.NATSURL == "" && (cfg.Wait == WaitNATS || cfg.AlsoNATS || cfg.Floor || cfg.Pipeline) {
		return errors.New("bench: Wait nats, AlsoNATS, Floor and Pipeline need NATSURL")
	}
	if cfg.Source == "" {
		cfg.Source = DefaultDefinition
	}
	if cfg.Input == "" {
		cfg.Input = `{"n": 1}`
	}
	if cfg.N <= 0 {
		cfg.N = 1000
	}
	if cfg.C <= 0 {
		cfg.C = 16
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	return nil
}

// Result is what a run measured.
type Result struct {
	Workflows int `json:"workflows"`
	// Wait is how the clients learned that their runs finished.
	Wait            string  `json:"wait"`
	Seconds         float64 `json:"seconds"`
	WorkflowsPerS   float64 `json:"workflows_per_s"`
	StepsPerS       float64 `json:"steps_per_s"`
	EventsPerS      float64 `json:"events_per_s,omitempty"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	FloorEventsPerS float64 `json:"floor_events_per_s,omitempty"`
	FloorRatio      float64 `json:"floor_ratio,omitempty"`
	// FloorBatchedPerS is the floor's publishes/s in atomic batches
	// (Config.FloorBatch).
	FloorBatchedPerS float64 `json:"floor_batched_per_s,omitempty"`
	// NATSWorkflowsPerS and NATSP50ms, NATSP90ms, NATSP99ms are the same
	// figures taken when NATS carried each closing record (Config.AlsoNATS).
	NATSWorkflowsPerS float64 `json:"nats_workflows_per_s,omitempty"`
	NATSP50ms         float64 `json:"nats_p50_ms,omitempty"`
	NATSP90ms         float64 `json:"nats_p90_ms,omitempty"`
	NATSP99ms         float64 `json:"nats_p99_ms,omitempty"`
	// PipelineWorkflowsPerS is the bare pipeline's rate (Config.Pipeline)
	// and PipelineRatio Weft's workflows/s as a share of it.
	PipelineWorkflowsPerS float64 `json:"pipeline_workflows_per_s,omitempty"`
	PipelineRatio         float64 `json:"pipeline_ratio,omitempty"`
	// PollsPerS is how many GetWorkflow calls the pollers made a second
	// (Config.Pollers).
	PollsPerS float64 `json:"polls_per_s,omitempty"`
	// MadeAgain is how many calls the API could not answer (it
	// restarted, say: callagain.Retryable) the clients made again.
	MadeAgain int `json:"calls_made_again,omitempty"`
	// MsgsInPerWorkflow and MsgsOutPerWorkflow are the messages the NATS
	// server received and sent per workflow while the workflows ran
	// (with Config.ServerMsgs).
	MsgsInPerWorkflow  float64 `json:"server_msgs_in_per_workflow,omitempty"`
	MsgsOutPerWorkflow float64 `json:"server_msgs_out_per_workflow,omitempty"`
	// Events is the number of history events the run wrote, and
	// EventBytes their average encoded record size (counted when the run
	// has Config.NATSURL).
	Events     int     `json:"-"`
	EventBytes float64 `json:"-"`
	// CPUSeconds and PeakRSSMB describe this process (meaningful when
	// the server is embedded in it).
	CPUSeconds float64 `json:"-"`
	PeakRSSMB  float64 `json:"-"`
}

// waitNames says in words how the clients learned of each finish.
var waitNames = map[string]string{
	WaitAwait: "clients await through the API",
	WaitWatch: "clients watch through the API",
	WaitPoll:  "clients poll through the API",
	WaitNATS:  "clients wait for closing records on NATS",
}

// String renders the result for people.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workflows: %d in %.2fs", r.Workflows, r.Seconds)
	if name := waitNames[r.Wait]; name != "" {
		fmt.Fprintf(&b, " (%s)", name)
	}
	fmt.Fprintf(&b, "\nthroughput: %.0f workflows/s, %.0f steps/s", r.WorkflowsPerS, r.StepsPerS)
	if r.EventsPerS > 0 {
		fmt.Fprintf(&b, ", %.0f history events/s", r.EventsPerS)
	}
	fmt.Fprintf(&b, "\nstart->complete latency: p50 %.2fms, p90 %.2fms, p99 %.2fms\n", r.P50ms, r.P90ms, r.P99ms)
	if r.PollsPerS > 0 {
		fmt.Fprintf(&b, "meanwhile: %.0f GetWorkflow calls/s on running workflows\n", r.PollsPerS)
	}
	if r.MadeAgain > 0 {
		fmt.Fprintf(&b, "made again: %d calls the API could not answer\n", r.MadeAgain)
	}
	if r.NATSWorkflowsPerS > 0 {
		fmt.Fprintf(&b, "seen on NATS: %.0f workflows/s, start->closing record latency: p50 %.2fms, p90 %.2fms, p99 %.2fms\n", r.NATSWorkflowsPerS, r.NATSP50ms, r.NATSP90ms, r.NATSP99ms)
	}
	if r.FloorEventsPerS > 0 {
		fmt.Fprintf(&b, "floor: %.0f plain JetStream publishes/s of %.0f-byte records; Weft reaches %.2f of it\n", r.FloorEventsPerS, r.EventBytes, r.FloorRatio)
	}
	if r.FloorBatchedPerS > 0 {
		fmt.Fprintf(&b, "floor in atomic batches: %.0f publishes/s\n", r.FloorBatchedPerS)
	}
	if r.PipelineWorkflowsPerS > 0 {
		fmt.Fprintf(&b, "pipeline: %.0f workflows/s through a bare two-consumer JetStream pipeline; Weft reaches %.2f of it\n", r.PipelineWorkflowsPerS, r.PipelineRatio)
	}
	if r.MsgsInPerWorkflow > 0 {
		fmt.Fprintf(&b, "NATS server messages per workflow: %.1f in, %.1f out\n", r.MsgsInPerWorkflow, r.MsgsOutPerWorkflow)
	}
	if r.CPUSeconds > 0 {
		fmt.Fprintf(&b, "process: %.2f CPU seconds, peak RSS %.0f MiB\n", r.CPUSeconds, r.PeakRSSMB)
	}
	return b.String()
}

// Run applies the definition, starts the workflows, waits for all of
// them to complete and measures.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.check(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	plan, err := definition.Parse([]byte(cfg.Source))
	if err != nil {
		return Result{}, err
	}
	steps := countTasks(plan.Steps)
	input, err := jsonValue(cfg.Input)
	if err != nil {
		return Result{}, err
	}
	// The clients are outside ones: Connect with JSON over HTTP/1.1.
	var rt http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: cfg.C * 2}
	if cfg.Transport != nil {
		rt = cfg.Transport
	}
	httpc := &http.Client{Transport: rt}
	defer httpc.CloseIdleConnections()
	wf := weftv1connect.NewWorkflowServiceClient(httpc, cfg.Server, connect.WithProtoJSON())
	defs := weftv1connect.NewDefinitionServiceClient(httpc, cfg.Server, connect.WithProtoJSON())
	put, err := defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: cfg.Source}))
	if err != nil {
		return Result{}, fmt.Errorf("bench: put definition: %w", err)
	}
	start := func(ctx context.Context, _ int, id string) error {
		_, err := wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: put.Msg.Name, Revision: put.Msg.Revision, WorkflowId: id, RequestId: id, Input: input}))
		return err
	}
	run := fmt.Sprintf("b%d", time.Now().UnixNano()%1e9)
	var ns *natsSide
	if cfg.NATSURL != "" {
		if ns, err = dialNATS(ctx, cfg.NATSURL, cfg.Wait == WaitNATS || cfg.AlsoNATS, run, cfg.N); err != nil {
			return Result{}, err
		}
		defer ns.close()
	}
	wait := waitFunc(cfg.Wait, wf, ns)
	open := &openRuns{at: map[int]int{}}
	started := func(ctx context.Context, i int, id string) error {
		err := start(ctx, i, id)
		open.add(i)
		return err
	}
	waited := func(ctx context.Context, i int, id string) error {
		err := wait(ctx, i, id)
		open.remove(i)
		return err
	}
	stopPolls := poll(ctx, cfg, wf, run, open)
	before := takeUsage(cfg)
	t, err := runClients(ctx, cfg, run, started, waited)
	polls := stopPolls()
	if err != nil {
		return Result{}, err
	}
	res := measured(cfg, steps, t, before, takeUsage(cfg))
	res.PollsPerS = float64(polls) / t.elapsed.Seconds()
	if ns == nil {
		return res, nil
	}
	if cfg.AlsoNATS {
		if err := ns.closings.figures(ctx, t, &res); err != nil {
			return Result{}, err
		}
	}
	return res, ns.extras(ctx, cfg, run, steps, &res)
}

// openRuns are the numbers of the workflows started and not yet seen
// closed by their clients.
type openRuns struct {
	mu  sync.Mutex
	ids []int
	at  map[int]int // number → index in ids
}

func (o *openRuns) add(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.at[i]; !ok {
		o.at[i] = len(o.ids)
		o.ids = append(o.ids, i)
	}
}

func (o *openRuns) remove(i int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	k, ok := o.at[i]
	if !ok {
		return
	}
	last := o.ids[len(o.ids)-1]
	o.ids[k], o.at[last] = last, k
	o.ids = o.ids[:len(o.ids)-1]
	delete(o.at, i)
}

// pick returns one of the open runs at random.
func (o *openRuns) pick() (int, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ids) == 0 {
		return 0, false
	}
	return o.ids[rand.IntN(len(o.ids))], true
}

// poll runs cfg.Pollers clients calling GetWorkflow on one of the
// workflows in flight (started, not yet seen closed by its client), as
// fast as they are answered; stop ends them and returns how many calls
// were answered.
func poll(ctx context.Context, cfg Config, wf weftv1connect.WorkflowServiceClient, run string, open *openRuns) (stop func() int64) {
	ctx, cancel := context.WithCancel(ctx)
	var calls atomic.Int64
	var wg sync.WaitGroup
	for range cfg.Pollers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i, ok := open.pick()
				if !ok {
					runtime.Gosched()
					continue
				}
				_, err := wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: fmt.Sprintf("%s-%d", run, i)}))
				if err == nil {
					calls.Add(1)
				}
			}
		})
	}
	return func() int64 {
		cancel()
		wg.Wait()
		return calls.Load()
	}
}

// clientFunc is one step of a client's turn with workflow number i, id.
type clientFunc func(ctx context.Context, i int, id string) error

// waitFunc returns how a client waits for its run to finish.
func waitFunc(wait string, wf weftv1connect.WorkflowServiceClient, ns *natsSide) clientFunc {
	switch wait {
	case WaitWatch:
		return watchClosed(wf)
	case WaitPoll:
		return pollClosed(wf)
	case WaitNATS:
		return ns.closings.wait
	default:
		return awaitClosed(wf)
	}
}

// awaitClosed calls AwaitWorkflow (again when an await ends with the run
// still open) until it returns the closed run.
func awaitClosed(wf weftv1connect.WorkflowServiceClient) clientFunc {
	return func(ctx context.Context, _ int, id string) error {
		for {
			// The server's default timeout; a run open longer is awaited again.
			_, err := wf.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{WorkflowId: id}))
			if err == nil || connect.CodeOf(err) != connect.CodeDeadlineExceeded || ctx.Err() != nil {
				return err
			}
		}
	}
}

// watchClosed follows WatchWorkflow until the event that closes the run.
func watchClosed(wf weftv1connect.WorkflowServiceClient) clientFunc {
	return func(ctx context.Context, _ int, id string) error {
		stream, err := wf.WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: id}))
		if err != nil {
			return err
		}
		defer stream.Close()
		for stream.Receive() {
			if events.Type(stream.Msg().GetEvent().GetType()).Terminal() {
				return nil
			}
		}
		if err := stream.Err(); err != nil {
			return err
		}
		return errors.New("the watch ended before the run closed")
	}
}

// pollClosed calls GetWorkflow until the run is closed, 0.5 ms apart at
// first and twice as long each time up to 20 ms.
func pollClosed(wf weftv1connect.WorkflowServiceClient) clientFunc {
	return func(ctx context.Context, _ int, id string) error {
		delay := 500 * time.Microsecond
		for {
			res, err := wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
			if err != nil {
				return err
			}
			switch res.Msg.GetWorkflow().GetStatus() {
			case weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED, weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED:
			default:
				return nil
			}
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			delay = min(2*delay, 20*time.Millisecond)
		}
	}
}

// timing is what the clients measured: when they began, how long until
// the last had its result, and for each workflow when its start call was
// made and how long it took from there to the result.
type timing struct {
	begin   time.Time
	elapsed time.Duration
	starts  []time.Time
	latency []time.Duration
	// madeAgain counts the calls made again that the API could not
	// answer (callagain.Retryable).
	madeAgain atomic.Int64
}

// againPolicy is how the clients make a call again that the API could not
// answer (it restarts, say) before the bench stops: for a minute after
// the first failure, 50 ms apart doubling to 1 s (short, so a restart
// costs the measured latency little more than it lasts).
var againPolicy = callagain.Policy{For: time.Minute, Pause: 50 * time.Millisecond, MaxPause: time.Second}

// again calls fn with callagain.Do, counting each call made again in
// made. A start can be made again: it names its request id.
func again(ctx context.Context, made *atomic.Int64, fn func() error) error {
	_, err := callagain.Do(ctx, againPolicy, fn, func(int, error) { made.Add(1) })
	return err
}

// runClients runs cfg.N workflows with cfg.C clients, each starting a
// workflow, waiting for it to finish and taking the next.
func runClients(ctx context.Context, cfg Config, run string, start, wait clientFunc) (*timing, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := &timing{starts: make([]time.Time, cfg.N), latency: make([]time.Duration, cfg.N)}
	var next, finished atomic.Int64
	done := make(chan struct{})
	errc := make(chan error, cfg.C) // a client sends at most one
	var wg sync.WaitGroup
	t.begin = time.Now()
	for range cfg.C {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.N || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("%s-%d", run, i)
				t.starts[i] = time.Now()
				if err := again(ctx, &t.madeAgain, func() error { return start(ctx, i, id) }); err != nil {
					errc <- fmt.Errorf("bench: start %s: %w", id, err)
					return
				}
				if err := again(ctx, &t.madeAgain, func() error { return wait(ctx, i, id) }); err != nil {
					errc <- fmt.Errorf("bench: wait for %s: %w", id, err)
					return
				}
				t.latency[i] = time.Since(t.starts[i])
				if finished.Add(1) == int64(cfg.N) {
					close(done)
				}
			}
		})
	}
	err := waitClients(ctx, cfg, t.begin, done, errc, &finished)
	t.elapsed = time.Since(t.begin)
	cancel()
	wg.Wait()
	return t, err
}

// waitClients waits until done, a client's error or the end of ctx,
// writing progress lines now and then.
func waitClients(ctx context.Context, cfg Config, begin time.Time, done <-chan struct{}, errc <-chan error, finished *atomic.Int64) error {
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
	if cfg.Progress != nil {
		defer fmt.Fprintln(cfg.Progress)
	}
	for {
		select {
		case <-done:
			return nil
		case err := <-errc:
			if ctx.Err() == nil {
				return err
			}
		case <-ctx.Done():
		case <-progress.C:
			if cfg.Progress != nil {
				n := finished.Load()
				fmt.Fprintf(cfg.Progress, "\r%d/%d workflows done, %.0f/s   ", n, cfg.N, float64(n)/time.Since(begin).Seconds())
			}
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bench: %d of %d workflows done when time ran out", finished.Load(), cfg.N)
		}
	}
}

// usage is this process's CPU use and peak RSS, and the NATS server's
// message counts, at one moment.
type usage struct {
	cpu       float64 // seconds
	peakRSSMB float64
	in, out   int64
}

func takeUsage(cfg Config) usage {
	var u usage
	u.cpu, u.peakRSSMB = processUsage()
	if cfg.ServerMsgs != nil {
		u.in, u.out = cfg.ServerMsgs()
	}
	return u
}

// measured turns the clients' timing and the usage before and after
// into a result.
func measured(cfg Config, steps int, t *timing, before, after usage) Result {
	res := Result{Workflows: cfg.N, Wait: cfg.Wait, Seconds: t.elapsed.Seconds()}
	res.WorkflowsPerS = float64(cfg.N) / res.Seconds
	res.StepsPerS = float64(cfg.N*steps) / res.Seconds
	res.P50ms, res.P90ms, res.P99ms = percentiles(t.latency)
	res.MadeAgain = int(t.madeAgain.Load())
	if cfg.ServerMsgs != nil {
		res.MsgsInPerWorkflow = float64(after.in-before.in) / float64(cfg.N)
		res.MsgsOutPerWorkflow = float64(after.out-before.out) / float64(cfg.N)
	}
	res.CPUSeconds = after.cpu - before.cpu
	res.PeakRSSMB = after.peakRSSMB
	return res
}

// percentiles sorts d and returns its 50th, 90th and 99th percentiles in
// milliseconds.
func percentiles(d []time.Duration) (p50, p90, p99 float64) {
	slices.Sort(d)
	return pct(d, 0.50), pct(d, 0.90), pct(d, 0.99)
}

// natsSide is the bench's own connection to the NATS server the API uses:
// where the history is read from after the run and, with a NATS wait or
// Config.AlsoNATS, closing records are watched during it.
type natsSide struct {
	nc       *nats.Conn
	history  jetstream.Stream
	firstSeq uint64    // the history's first sequence of the run
	closings *closings // nil unless closing records are watched
	unsub    func()
}

// dialNATS connects, subscribes to the closing records of run's n
// workflows when watch is set, and notes where the history stands.
func dialNATS(ctx context.Context, url string, watch bool, run string, n int) (_ *natsSide, err error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, fmt.Errorf("bench: connect to NATS: %w", err)
	}
	ns := &natsSide{nc: nc, unsub: func() {}}
	defer func() {
		if err != nil {
			ns.close()
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if ns.history, err = js.Stream(ctx, eventstore.HistoryStream); err != nil {
		return nil, fmt.Errorf("bench: history stream: %w", err)
	}
	if watch {
		if ns.closings, ns.unsub, err = watchClosings(nc, run, n); err != nil {
			return nil, err
		}
	}
	info, err := ns.history.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: history stream: %w", err)
	}
	ns.firstSeq = info.State.LastSeq + 1
	return ns, nil
}

func (ns *natsSide) close() {
	ns.unsub()
	ns.nc.Close()
}

// extras counts the run's history events and measures the floor and the
// pipeline when asked to.
func (ns *natsSide) extras(ctx context.Context, cfg Config, run string, steps int, res *Result) error {
	nEvents, nBytes, err := countEvents(ctx, ns.history, ns.firstSeq, "weft.h."+run+"-", cfg.N)
	if err != nil {
		return err
	}
	res.Events = nEvents
	res.EventsPerS = float64(nEvents) / res.Seconds
	if nEvents > 0 {
		res.EventBytes = float64(nBytes) / float64(nEvents)
	}
	if cfg.Floor {
		if res.FloorEventsPerS, err = floor(ctx, ns.nc, res.Events, int(res.EventBytes), cfg.C, 1); err != nil {
			return err
		}
		res.FloorRatio = res.EventsPerS / res.FloorEventsPerS
		if cfg.FloorBatch > 1 {
			if res.FloorBatchedPerS, err = floor(ctx, ns.nc, res.Events, int(res.EventBytes), cfg.C, cfg.FloorBatch); err != nil {
				return err
			}
		}
	}
	if cfg.Pipeline {
		if res.PipelineWorkflowsPerS, err = pipeline(ctx, ns.nc, cfg.N, steps, int(res.EventBytes), cfg.C); err != nil {
			return err
		}
		if res.PipelineWorkflowsPerS > 0 {
			res.PipelineRatio = res.WorkflowsPerS / res.PipelineWorkflowsPerS
		}
	}
	return nil
}

// closings records when NATS carried the closing record of each of a
// run's workflows (the history subjects weft.h.<id>.end), and wakes the
// clients waiting for them.
type closings struct {
	prefix string // weft.h.<run>-
	mu     sync.Mutex
	at     []time.Time           // by workflow number; zero until seen
	wake   map[int]chan struct{} // clients waiting, by workflow number
	seen   int
	all    chan struct{} // closed once every closing record is seen
}

// watchClosings subscribes to the closing records of run's n workflows.
func watchClosings(nc *nats.Conn, run string, n int) (*closings, func(), error) {
	c := &closings{prefix: "weft.h." + run + "-", at: make([]time.Time, n), wake: map[int]chan struct{}{}, all: make(chan struct{})}
	sub, err := nc.Subscribe("weft.h.*.end", c.handle)
	if err != nil {
		return nil, nil, err
	}
	unsub := func() { _ = sub.Unsubscribe() }
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		unsub()
		return nil, nil, err
	}
	return c, unsub, nil
}

func (c *closings) handle(m *nats.Msg) {
	now := time.Now()
	rest, ok := strings.CutPrefix(m.Subject, c.prefix)
	if !ok {
		return
	}
	i, err := strconv.Atoi(strings.TrimSuffix(rest, ".end"))
	if err != nil || i < 0 || i >= len(c.at) {
		return
	}
	if _, last, err := events.Peek(m.Data); err != nil || !last.Terminal() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at[i].IsZero() {
		return
	}
	c.at[i] = now
	if ch := c.wake[i]; ch != nil {
		close(ch)
		delete(c.wake, i)
	}
	if c.seen++; c.seen == len(c.at) {
		close(c.all)
	}
}

// wait returns once the closing record of workflow i is seen.
func (c *closings) wait(ctx context.Context, i int, _ string) error {
	c.mu.Lock()
	if !c.at[i].IsZero() {
		c.mu.Unlock()
		return nil
	}
	ch := c.wake[i]
	if ch == nil {
		ch = make(chan struct{})
		c.wake[i] = ch
	}
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// figures waits for every closing record and sets the NATS figures of
// res: throughput until the last was seen, and latency from each start
// call until its workflow's closing record was seen.
func (c *closings) figures(ctx context.Context, t *timing, res *Result) error {
	select {
	case <-c.all:
	case <-ctx.Done():
		c.mu.Lock()
		defer c.mu.Unlock()
		return fmt.Errorf("bench: %d of %d closing records seen on NATS when time ran out", c.seen, len(c.at))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	latency := make([]time.Duration, len(c.at))
	var last time.Time
	for i, at := range c.at {
		latency[i] = at.Sub(t.starts[i])
		if at.After(last) {
			last = at
		}
	}
	res.NATSWorkflowsPerS = float64(len(c.at)) / last.Sub(t.begin).Seconds()
	res.NATSP50ms, res.NATSP90ms, res.NATSP99ms = percentiles(latency)
	return nil
}

// countEvents reads the history stream from seq on and counts the events
// (and record bytes) of the records whose subject starts with prefix,
// until it has read the closing records of closed workflows (a closing
// record is seen as it is published, which can be before the stream
// stores it).
func countEvents(ctx context.Context, history jetstream.Stream, seq uint64, prefix string, closed int) (count, size int, err error) {
	cons, err := history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: read history: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: read history: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for closed > 0 {
		m, err := it.Next()
		if err != nil {
			return 0, 0, fmt.Errorf("bench: read history (%d closing records still to come): %w", closed, err)
		}
		if !strings.HasPrefix(m.Subject(), prefix) {
			continue
		}
		n, last, err := events.Peek(m.Data())
		if err != nil {
			continue
		}
		count += n
		size += len(m.Data())
		switch last {
		case events.TypeWorkflowCompleted, events.TypeWorkflowFailed, events.TypeWorkflowCanceled:
			closed--
		}
	}
	return count, size, nil
}

func pct(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func countTasks(steps []*definition.Step) int {
	n := 0
	for _, s := range steps {
		if s.Kind == definition.KindTask {
			n++
		}
	}
	return n
}

// floor publishes n messages of size bytes into a scratch stream with c
// concurrent synchronous publishers (as Weft's writers are), using the
// server's own storage settings, and returns publishes per second. With
// batch > 1 each publisher sends atomic batches of batch messages.
func floor(ctx context.Context, nc *nats.Conn, n, size, c, batch int) (float64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("WEFT_BENCH_FLOOR_%d", time.Now().UnixNano()%1e9)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"weft.benchfloor." + name}, Storage: jetstream.FileStorage,
		AllowAtomicPublish: batch > 1}); err != nil {
		return 0, fmt.Errorf("bench: floor stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }()
	payload := make([]byte, max(size, 1))
	var next atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	var firstErr error
	var once sync.Once
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				end := next.Add(int64(batch))
				k := batch - int(max(0, end-int64(n)))
				if k <= 0 {
					return
				}
				var err error
				if batch == 1 {
					_, err = js.Publish(ctx, "weft.benchfloor."+name, payload)
				} else {
					err = publishBatch(ctx, nc, "weft.benchfloor."+name, fmt.Sprintf("%s-%d", name, end), payload, k)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("bench: floor: %w", firstErr)
	}
	return float64(n) / time.Since(begin).Seconds(), nil
}

// publishBatch publishes k copies of payload to subject as one atomic
// batch named id, waiting for the stream's answer to its commit.
func publishBatch(ctx context.Context, nc *nats.Conn, subject, id string, payload []byte, k int) error {
	for i := 1; i <= k; i++ {
		m := nats.NewMsg(subject)
		m.Data = payload
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
		if i < k {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		reply, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return fmt.Errorf("batch commit answered %q: %w", reply.Data, err)
		}
		if ack.Error != nil {
			return fmt.Errorf("batch commit: %s", ack.Error.Description)
		}
	}
	return nil
}
