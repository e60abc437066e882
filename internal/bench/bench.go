// Package bench is Weft's load tool: it starts many workflows through the
// API, waits for all of them, and reports throughput and start-to-complete
// latency, optionally against the raw JetStream cost of the same number of
// history events (the floor).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/orchestrator/definition"
)

// DefaultDefinition is three sequential echo steps.
const DefaultDefinition = `name: bench
steps:
  - { id: one, task: echo, input: "${ input }" }
  - { id: two, task: echo, input: "${ steps.one.output }" }
  - { id: three, task: echo, input: "${ steps.two.output }" }
`

// Config says what to run.
type Config struct {
	// Server is the API base URL. Required.
	Server string
	// NATSURL is the NATS server the API uses: completions are observed
	// there, and the floor is measured there. Required.
	NATSURL string
	// Source is the definition to run. Default DefaultDefinition.
	Source string
	// Input is each workflow's input (JSON). Default {"n": 1}.
	Input string
	// N workflows, run by C concurrent clients, each starting a workflow
	// and waiting for it to complete before the next. Defaults 1000 and 16.
	N, C int
	// Floor also measures plain JetStream publishes of as many events.
	Floor bool
	// Pipeline also runs as many workflows of as many steps through a bare
	// JetStream pipeline of two consumers (no state, no checks, no API).
	Pipeline bool
	// Progress receives a progress line now and then; nil for none.
	Progress io.Writer
	// Timeout bounds the whole run. Default 10m.
	Timeout time.Duration
	// ServerMsgs, when set, reads the NATS server's counts of messages in
	// and out; the run reports them per workflow (a figure that, unlike
	// time, does not drift with the machine).
	ServerMsgs func() (in, out int64)
}

// Result is what a run measured.
type Result struct {
	Workflows       int     `json:"workflows"`
	Seconds         float64 `json:"seconds"`
	WorkflowsPerS   float64 `json:"workflows_per_s"`
	StepsPerS       float64 `json:"steps_per_s"`
	EventsPerS      float64 `json:"events_per_s"`
	P50ms           float64 `json:"p50_ms"`
	P90ms           float64 `json:"p90_ms"`
	P99ms           float64 `json:"p99_ms"`
	FloorEventsPerS float64 `json:"floor_events_per_s,omitempty"`
	FloorRatio      float64 `json:"floor_ratio,omitempty"`
	// PipelineWorkflowsPerS is the bare pipeline's rate (Config.Pipeline)
	// and PipelineRatio Weft's workflows/s as a share of it.
	PipelineWorkflowsPerS float64 `json:"pipeline_workflows_per_s,omitempty"`
	PipelineRatio         float64 `json:"pipeline_ratio,omitempty"`
	// MsgsInPerWorkflow and MsgsOutPerWorkflow are the messages the NATS
	// server received and sent per workflow while the workflows ran
	// (with Config.ServerMsgs).
	MsgsInPerWorkflow  float64 `json:"server_msgs_in_per_workflow,omitempty"`
	MsgsOutPerWorkflow float64 `json:"server_msgs_out_per_workflow,omitempty"`
	// Events is the number of history events the run wrote, and
	// EventBytes their average encoded record size.
	Events     int     `json:"-"`
	EventBytes float64 `json:"-"`
	// CPUSeconds and PeakRSSMB describe this process (meaningful when
	// the server is embedded in it).
	CPUSeconds float64 `json:"-"`
	PeakRSSMB  float64 `json:"-"`
}

// String renders the result for people.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "workflows: %d in %.2fs\n", r.Workflows, r.Seconds)
	fmt.Fprintf(&b, "throughput: %.0f workflows/s, %.0f steps/s, %.0f history events/s\n", r.WorkflowsPerS, r.StepsPerS, r.EventsPerS)
	fmt.Fprintf(&b, "start->complete latency: p50 %.2fms, p90 %.2fms, p99 %.2fms\n", r.P50ms, r.P90ms, r.P99ms)
	if r.FloorEventsPerS > 0 {
		fmt.Fprintf(&b, "floor: %.0f plain JetStream publishes/s of %.0f-byte records; Weft reaches %.2f of it\n", r.FloorEventsPerS, r.EventBytes, r.FloorRatio)
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
	if cfg.Server == "" || cfg.NATSURL == "" {
		return Result{}, errors.New("bench: Server and NATSURL are required")
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
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	plan, err := definition.Parse([]byte(cfg.Source))
	if err != nil {
		return Result{}, err
	}
	steps := countTasks(plan.Steps)
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.C * 2}}
	wf := weftv1connect.NewWorkflowServiceClient(httpc, cfg.Server)
	defs := weftv1connect.NewDefinitionServiceClient(httpc, cfg.Server)
	put, err := defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: cfg.Source}))
	if err != nil {
		return Result{}, fmt.Errorf("bench: put definition: %w", err)
	}
	input, err := jsonValue(cfg.Input)
	if err != nil {
		return Result{}, err
	}

	// Completions are observed on the history subjects that carry a
	// workflow's closing record; events are counted after the run, so the
	// watching costs the measured system as little as possible.
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		return Result{}, fmt.Errorf("bench: connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Result{}, err
	}
	history, err := js.Stream(ctx, eventstore.HistoryStream)
	if err != nil {
		return Result{}, fmt.Errorf("bench: history stream: %w", err)
	}
	run := fmt.Sprintf("b%d", time.Now().UnixNano()%1e9)
	var (
		mu       sync.Mutex
		waiting  = map[string]chan struct{}{}
		latency  []time.Duration
		done     = make(chan struct{})
		finished atomic.Int64
	)
	sub, err := nc.Subscribe("weft.h.*.end", func(m *nats.Msg) {
		if !strings.HasPrefix(m.Subject, "weft.h."+run+"-") {
			return
		}
		_, last, err := events.Peek(m.Data)
		if err != nil || !last.Terminal() {
			return
		}
		id := strings.Split(m.Subject, ".")[2]
		mu.Lock()
		ch := waiting[id]
		delete(waiting, id)
		mu.Unlock()
		if ch != nil {
			close(ch)
		}
		if finished.Add(1) == int64(cfg.N) {
			close(done)
		}
	})
	if err != nil {
		return Result{}, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		return Result{}, err
	}
	info, err := history.Info(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("bench: history stream: %w", err)
	}
	firstSeq := info.State.LastSeq + 1

	var cpu0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu0)
	var msgsIn, msgsOut int64
	if cfg.ServerMsgs != nil {
		msgsIn, msgsOut = cfg.ServerMsgs()
	}
	begin := time.Now()
	next := atomic.Int64{}
	errc := make(chan error, cfg.C)
	var wg sync.WaitGroup
	for range cfg.C {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(cfg.N) || ctx.Err() != nil {
					return
				}
				// Each client starts a workflow and waits for it to complete.
				id := fmt.Sprintf("%s-%d", run, i)
				ch := make(chan struct{})
				mu.Lock()
				waiting[id] = ch
				mu.Unlock()
				t0 := time.Now()
				_, err := wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
					Definition: put.Msg.Name, Revision: put.Msg.Revision, WorkflowId: id, RequestId: id, Input: input}))
				if err != nil {
					errc <- fmt.Errorf("bench: start %s: %w", id, err)
					return
				}
				select {
				case <-ch:
				case <-ctx.Done():
					return
				}
				d := time.Since(t0)
				mu.Lock()
				latency = append(latency, d)
				mu.Unlock()
			}
		}()
	}
	progress := time.NewTicker(time.Second)
	defer progress.Stop()
wait:
	for {
		select {
		case <-done:
			break wait
		case err := <-errc:
			return Result{}, err
		case <-ctx.Done():
			return Result{}, fmt.Errorf("bench: %d of %d workflows done when time ran out", finished.Load(), cfg.N)
		case <-progress.C:
			if cfg.Progress != nil {
				el := time.Since(begin).Seconds()
				fmt.Fprintf(cfg.Progress, "\r%d/%d workflows done, %.0f/s   ", finished.Load(), cfg.N, float64(finished.Load())/el)
			}
		}
	}
	elapsed := time.Since(begin)
	wg.Wait()
	if cfg.Progress != nil {
		fmt.Fprintln(cfg.Progress)
	}
	var cpu1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &cpu1)
	if cfg.ServerMsgs != nil {
		in, out := cfg.ServerMsgs()
		msgsIn, msgsOut = in-msgsIn, out-msgsOut
	}

	nEvents, nBytes, err := countEvents(ctx, history, firstSeq, "weft.h."+run+"-", cfg.N)
	if err != nil {
		return Result{}, err
	}
	res := Result{Workflows: cfg.N, Seconds: elapsed.Seconds(), Events: nEvents}
	res.WorkflowsPerS = float64(cfg.N) / res.Seconds
	if cfg.ServerMsgs != nil {
		res.MsgsInPerWorkflow, res.MsgsOutPerWorkflow = float64(msgsIn)/float64(cfg.N), float64(msgsOut)/float64(cfg.N)
	}
	res.StepsPerS = float64(cfg.N*steps) / res.Seconds
	res.EventsPerS = float64(res.Events) / res.Seconds
	if res.Events > 0 {
		res.EventBytes = float64(nBytes) / float64(res.Events)
	}
	mu.Lock()
	sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
	res.P50ms, res.P90ms, res.P99ms = pct(latency, 0.50), pct(latency, 0.90), pct(latency, 0.99)
	mu.Unlock()
	res.CPUSeconds = tv(cpu1.Utime) + tv(cpu1.Stime) - tv(cpu0.Utime) - tv(cpu0.Stime)
	res.PeakRSSMB = float64(cpu1.Maxrss) / 1024
	if cfg.Floor {
		if res.FloorEventsPerS, err = floor(ctx, nc, res.Events, int(res.EventBytes), cfg.C); err != nil {
			return res, err
		}
		res.FloorRatio = res.EventsPerS / res.FloorEventsPerS
	}
	if cfg.Pipeline {
		if res.PipelineWorkflowsPerS, err = pipeline(ctx, nc, cfg.N, steps, int(res.EventBytes), cfg.C); err != nil {
			return res, err
		}
		if res.PipelineWorkflowsPerS > 0 {
			res.PipelineRatio = res.WorkflowsPerS / res.PipelineWorkflowsPerS
		}
	}
	return res, nil
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

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

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
// server's own storage settings, and returns publishes per second.
func floor(ctx context.Context, nc *nats.Conn, n, size, c int) (float64, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("WEFT_BENCH_FLOOR_%d", time.Now().UnixNano()%1e9)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"weft.benchfloor." + name}, Storage: jetstream.FileStorage}); err != nil {
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
			for next.Add(1) <= int64(n) {
				if _, err := js.Publish(ctx, "weft.benchfloor."+name, payload); err != nil {
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
