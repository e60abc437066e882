// Package chaos proves Weft's guarantees against crashes: it runs a real
// deployment (a 3-node NATS cluster, two orchestrators, two executors and an
// API, each its own process, and, for the beat shape, two executors of its
// own built on package executor, whose handler heartbeats), starts
// workflows of shapes that together use every construct of the language
// against an outside "effects ledger" while killing parts with SIGKILL,
// and then checks from the histories and the ledger that nothing was lost,
// decided twice or left running.
//
// The harness also acts on the workflows as a user would: it signals
// them, cancels some (or their children) mid-run, redrives those that fail
// on purpose, and resumes those suspended on purpose, once the ledger
// stops refusing their calls; it pauses a definition while it starts runs
// of it, and resumes it; it publishes events on a trigger subject,
// and lets a cron schedule fire until it removes it.
//
// The checks, for every workflow (children and triggered ones included):
//
//   - it ended as its definition must, given its input and what the
//     harness did: status, output, error type and step;
//   - every task's idempotency key (workflow id + "/" + step path) that
//     must have run reached the ledger and succeeded there at least once,
//     and the ledger saw no key that no step has;
//   - its history holds one decision per state: each step path scheduled
//     and closed once (a redrive runs again only the steps it must), each
//     attempt recorded once, one WorkflowStarted and one closing event per
//     redrive, nothing after the close but what a failed workflow still
//     records (results and timers of its steps);
//   - the ledger saw at least as many calls per key as the history records
//     attempts (at-least-once); the surplus is reported as duplicate
//     effects, which an outside system that honours the key absorbs;
//   - every signal was received once and taken by one wait, with its
//     payload; every trigger event started exactly one workflow;
//   - nothing is left RUNNING, SUSPENDED or QUEUED once the harness is
//     done;
//   - a run whose definition sets a retention is gone once it has been
//     closed that long (GetWorkflow answers NotFound, the listing omits
//     it); its history is not checked, its effects are, from the ledger;
//   - a run's search attributes are those its definition sets, and each
//     search query lists, page after page, exactly the runs it must;
//   - a run whose step ran out of attempts under exhausted: suspend was
//     shown SUSPENDED, found waiting by the stuck detector, and after its
//     resume took its signal and went on from the next attempt, nothing
//     else of it recorded while it was suspended;
//   - runs of a definition with concurrency { key, limit } never had more
//     runs of a key than the limit calling the ledger at once (calls of
//     one run count once; repeats of a call that succeeded are
//     duplicates, counted apart), and once all closed the key's entry in
//     the slots bucket holds no run; nor, counted alike, runs of a
//     definition whose step has concurrency { key, limit };
//   - the calls of runs whose step has a rate_limit fit the limit once each
//     is charged to the second it arrived in or the one before;
//   - runs started while their definition was paused called nothing for
//     a while and were recorded, and completed after the resume;
//   - a workflow timeout fails a run whose wait or held call it finds
//     open, the held step completing in the failed run, and a redrive
//     gives a fresh one; a task attempt whose call the ledger holds past
//     its timeout fails with type timeout and is retried, until its
//     attempts are used up, or not at all when timeout is not retryable;
//   - a task whose handler heartbeats works past its attempt timeout
//     without any attempt timing out, and one whose executor is killed
//     mid-work is run again once the task ack wait ends; with a
//     concurrency limit, its heartbeats renew its slot's lease, which its
//     work outlasts: no more handlers of a key work at once than the
//     limit (beside a lease whose renewal failed, which lapses), and once
//     all closed no slot of the key is held.
package chaos

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// Config describes a chaos run.
type Config struct {
	// Workflows is the number of workflows to start. Default 100.
	Workflows int
	// Duration is the time over which they are started, at a steady rate;
	// the chaos loop runs for as long. Default 1m.
	Duration time.Duration
	// KillEvery is the time between two kills. Default 5s.
	KillEvery time.Duration
	// Seed makes the kills, pauses and injected failures repeatable.
	Seed int64
	// Dir is the run directory (store dirs, logs, reports). Default: a new
	// temporary directory, removed after a successful run unless KeepLogs.
	Dir string
	// KeepLogs keeps the run directory after a successful run. A failed
	// run always keeps it.
	KeepLogs bool
	// FailRate is the fraction of ledger calls answered 503. Default 0.2;
	// negative means none.
	FailRate float64
	// Settle bounds the time, after the start window, for every workflow
	// to close. Default 5m.
	Settle time.Duration
	// Shapes names the workflow shapes of the run (see ParseShapes); empty
	// means all.
	Shapes []string
	// Binaries are prebuilt programs; nil builds them into Dir/bin.
	Binaries *Binaries
	// Logf receives progress lines. Default: discarded.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Workflows <= 0 {
		c.Workflows = 100
	}
	if c.Duration <= 0 {
		c.Duration = time.Minute
	}
	if c.KillEvery <= 0 {
		c.KillEvery = 5 * time.Second
	}
	if c.FailRate == 0 {
		c.FailRate = 0.2
	} else if c.FailRate < 0 {
		c.FailRate = 0
	}
	if c.Settle <= 0 {
		c.Settle = 5 * time.Minute
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Harness runs one chaos proof. Close it to kill every process it started.
type Harness struct {
	cfg    Config
	dir    string
	ownDir bool
	logf   func(format string, args ...any)
	shapes [numShapes]bool

	sup    *supervisor
	nats   []*proc
	health []string // monitoring /healthz URL per NATS node
	orch   []*proc
	exec   []*proc
	api    *proc
	// beat are the executors of the beat shape's task (see beat.go), run
	// when the run has the shape.
	beat []*proc
	// beatEpoch is the epoch of the beat executors' flow control clock
	// (beatClock).
	beatEpoch time.Time
	// bins are the programs the run starts.
	bins Binaries

	natsURLs string
	apiURL   string
	// startupExits counts the parts' exits while the deployment started.
	startupExits int
	ledger       *Ledger
	client       *http.Client
	wf           weftv1connect.WorkflowServiceClient
	defs         weftv1connect.DefinitionServiceClient
	// awaitClient and awaits make the AwaitWorkflow calls, which stay
	// open until a run closes: over HTTP/2 (h2c), many to a connection,
	// each bounded by its own deadline rather than a client timeout.
	awaitClient *http.Client
	awaits      weftv1connect.WorkflowServiceClient

	// pauseMu[i] is held by the paused shape's driver while it holds
	// definition chaos-paused-i paused.
	pauseMu [pausedDefinitions]sync.Mutex
	// slowRateRevision is the revision of the ratelimited shape's
	// definition whose period is perSlow.
	slowRateRevision int32
	// longDeadlineRevision is the revision of the deadline shape's
	// definition whose timeout is deadlineLong.
	longDeadlineRevision int32

	// checks runs the detector's checks the suspended shape asks for.
	checks doctorChecks

	closeOnce sync.Once
}

// New prepares a run: it creates the run directory. Nothing runs before Run.
func New(cfg Config) (*Harness, error) {
	cfg.defaults()
	h := &Harness{cfg: cfg, dir: cfg.Dir}
	h.checks.init(h.openStore)
	if len(cfg.Shapes) == 0 {
		cfg.Shapes = shapeNames[:]
	}
	for _, s := range cfg.Shapes {
		i := shapeIndex(s)
		if i < 0 {
			return nil, fmt.Errorf("chaos: unknown shape %q (shapes: %s)", s, strings.Join(shapeNames[:], ","))
		}
		h.shapes[i] = true
	}
	if h.dir == "" {
		d, err := os.MkdirTemp("", "weft-chaos-")
		if err != nil {
			return nil, err
		}
		h.dir, h.ownDir = d, true
	} else if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(h.dir)
	if err != nil {
		return nil, err
	}
	h.dir = abs
	var logMu sync.Mutex
	h.logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		cfg.Logf("chaos: "+format, args...)
	}
	h.sup = &supervisor{logf: h.logf}
	return h, nil
}

// Dir is the run directory.
func (h *Harness) Dir() string { return h.dir }

// Close kills every process of the run (SIGKILL to each process group),
// waits for them to exit and stops the ledger. It is safe to call more
// than once.
func (h *Harness) Close() {
	h.closeOnce.Do(func() {
		h.sup.closeAll()
		h.checks.close()
		if h.ledger != nil {
			_ = h.ledger.Close()
		}
		if h.client != nil {
			h.client.CloseIdleConnections()
		}
		if h.awaitClient != nil {
			h.awaitClient.CloseIdleConnections()
		}
	})
}

// Run builds (unless given) the binaries, starts the deployment, runs the
// workload under chaos, waits for every workflow to close and checks the
// results. It returns the result, and an error when any check failed or
// the run could not be carried out. Run closes the harness before it
// returns; a successful run's own temporary directory is removed unless
// KeepLogs.
func (h *Harness) Run(ctx context.Context) (res *Result, err error) {
	defer func() { h.endRun(err) }()
	if err := h.deploy(ctx, h.cfg.FailRate, 0.05, 300*time.Millisecond); err != nil {
		return nil, err
	}
	if h.enabled(shapeBeat) {
		if err := h.startBeatExecutors(ctx, h.bins.Chaos); err != nil {
			return nil, err
		}
	}
	if err := h.putDefinitions(ctx); err != nil {
		return nil, err
	}
	return h.runWorkload(ctx)
}

// endRun closes the harness after a run and removes the run's own
// directory when it passed (unless KeepLogs), or names it.
func (h *Harness) endRun(err error) {
	h.Close()
	switch {
	case err == nil && h.ownDir && !h.cfg.KeepLogs:
		_ = os.RemoveAll(h.dir)
	case err != nil || h.cfg.KeepLogs:
		h.logf("run directory (logs, reports): %s", h.dir)
	}
}

// deploy builds the binaries (unless given), starts the ledger (failing
// and slowing calls at the given rates), the NATS cluster and Weft's parts.
func (h *Harness) deploy(ctx context.Context, failRate, slowRate float64, slow time.Duration) error {
	bins := h.cfg.Binaries
	if bins == nil {
		h.logf("building weft and nats-server into %s", filepath.Join(h.dir, "bin"))
		b, err := Build(ctx, filepath.Join(h.dir, "bin"))
		if err != nil {
			return err
		}
		bins = &b
	}
	h.bins = *bins
	var err error
	if h.ledger, err = StartLedger(h.cfg.Seed, failRate, slowRate, slow); err != nil {
		return fmt.Errorf("start ledger: %w", err)
	}
	if err := h.startCluster(ctx, bins.NATSServer); err != nil {
		return err
	}
	return h.startWeft(ctx, bins.Weft, 2, false)
}

// freePorts returns n distinct free TCP ports of 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startCluster starts three nats-server nodes routed to each other and
// waits until JetStream has a meta leader.
func (h *Harness) startCluster(ctx context.Context, bin string) error {
	ports, err := freePorts(9)
	if err != nil {
		return err
	}
	client, route, monitor := ports[0:3], ports[3:6], ports[6:9]
	logs := filepath.Join(h.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	var urls []string
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", route[j]))
			}
		}
		args := []string{
			"-a", "127.0.0.1", "-p", fmt.Sprint(client[i]), "-m", fmt.Sprint(monitor[i]),
			"--server_name", name, "-js", "-sd", filepath.Join(h.dir, "nats", name),
			"--cluster_name", "weft-chaos", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", route[i]),
			"--routes", strings.Join(routes, ","),
		}
		h.nats = append(h.nats, h.sup.add(&proc{name: "nats-" + name, kind: kindNATS, path: bin, args: args,
			logPath: filepath.Join(logs, "nats-"+name+".log")}))
		h.health = append(h.health, fmt.Sprintf("http://127.0.0.1:%d/healthz", monitor[i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	h.natsURLs = strings.Join(urls, ",")
	for _, p := range h.nats {
		if err := p.start(); err != nil {
			return err
		}
	}
	h.logf("NATS cluster starting: %s", h.natsURLs)
	if err := waitMetaLeader(ctx, h.natsURLs, 2*time.Minute); err != nil {
		return fmt.Errorf("NATS cluster: %w (logs in %s)", err, logs)
	}
	h.logf("NATS cluster has a JetStream meta leader")
	return nil
}

// maxHistoryEvents is the orchestrators' history limit in a chaos run:
// far above what the shapes need, except the child that spins on purpose.
const maxHistoryEvents = 600

// maxChildDepth is the orchestrators' bound on chains of child workflows
// in a chaos run: the chain shape runs into it; the other shapes' children
// are one deep.
const maxChildDepth = 2

// storeConfig is the store configuration of Weft's parts (their flags).
var storeConfig = eventstore.Config{Replicas: 3, TaskAckWait: 3 * time.Second}

// startWeft starts two orchestrators, executors executors and the API, and
// waits until the API answers. together starts them all at once, as a
// deployment tool does; otherwise one orchestrator starts first.
func (h *Harness) startWeft(ctx context.Context, bin string, executors int, together bool) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	common := []string{"--nats-url", h.natsURLs, "--replicas", fmt.Sprint(storeConfig.Replicas),
		"--task-ack-wait", storeConfig.TaskAckWait.String(), "--log-level", "info"}
	part := func(name, kind, sub string, extra ...string) *proc {
		args := append(append([]string{sub}, common...), extra...)
		return h.sup.add(&proc{name: name, kind: kind, path: bin, args: args,
			logPath: filepath.Join(h.dir, "logs", name+".log")})
	}
	// The second orchestrator snapshots every workflow every few events, so
	// kills land on loads from snapshots as well as from whole histories,
	// and keeps 1 MiB of states (64 KiB a shard), so runs are pushed out
	// of its cache and read again all the time.
	// Both hold histories to maxHistoryEvents, which one child variant
	// outgrows on purpose, and chains of children to maxChildDepth, which
	// the chain shape passes on purpose.
	limits := []string{"--max-history-events", fmt.Sprint(maxHistoryEvents), "--max-child-depth", fmt.Sprint(maxChildDepth)}
	h.orch = []*proc{part("orchestrator-1", kindOrchestrator, "orchestrator", limits...),
		part("orchestrator-2", kindOrchestrator, "orchestrator", append([]string{"--snapshot-every", "3", "--cache-mib", "1"}, limits...)...)}
	h.exec = nil
	for i := range executors {
		h.exec = append(h.exec, part(fmt.Sprintf("executor-%d", i+1), kindExecutor, "executor"))
	}
	h.api = part("api", kindAPI, "api", "--addr", apiAddr)
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rest := append(append(append([]*proc{}, h.orch...), h.exec...), h.api)
	if !together {
		// One orchestrator first, so the run's start is not what it measures.
		first := h.orch[0]
		if err := first.start(); err != nil {
			return err
		}
		if err := h.waitReady(wctx, first); err != nil {
			return fmt.Errorf("%s did not start: %w (see %s)", first.name, err, first.logPath)
		}
		rest = rest[1:]
	}
	for _, p := range rest {
		if err := p.start(); err != nil {
			return err
		}
	}
	for _, p := range rest {
		if err := h.waitReady(wctx, p); err != nil {
			return fmt.Errorf("%s did not start: %w (see %s)", p.name, err, p.logPath)
		}
	}
	h.apiURL = "http://" + apiAddr
	h.client = &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	h.wf = weftv1connect.NewWorkflowServiceClient(h.client, h.apiURL)
	h.defs = weftv1connect.NewDefinitionServiceClient(h.client, h.apiURL)
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	h.awaitClient = &http.Client{Transport: &http.Transport{
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		Protocols:   h2c,
	}}
	h.awaits = weftv1connect.NewWorkflowServiceClient(h.awaitClient, h.apiURL)
	if err := h.waitAPI(wctx); err != nil {
		return fmt.Errorf("the API at %s did not answer: %w (logs in %s)", h.apiURL, err, filepath.Join(h.dir, "logs"))
	}
	h.startupExits = h.sup.unexpectedExits()
	h.logf("weft parts running; API at %s", h.apiURL)
	return nil
}

// waitReady polls until a weft part has logged that it runs.
func (h *Harness) waitReady(ctx context.Context, p *proc) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, error) {
		return p.running() && p.logged("weft running"), nil
	})
}

// waitAPI polls the API until it answers.
func (h *Harness) waitAPI(ctx context.Context) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, error) {
		_, err := h.defs.ListDefinitions(ctx, connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
		return err == nil, err
	})
}

// putDefinitions puts the workflow shapes, retrying while parts start.
// The trigger and the cron schedule are put only when the run has their
// shapes.
func (h *Harness) putDefinitions(ctx context.Context) error {
	sources := slices.Clip(staticDefinitions)
	for i := range pausedDefinitions {
		sources = append(sources, pausedDefinition(i))
	}
	// The slow revision first: its runs name it, the others take the
	// latest.
	slow, err := h.putDefinition(ctx, ratelimitedDefinition(perSlow))
	if err != nil {
		return err
	}
	h.slowRateRevision = slow
	sources = append(sources, ratelimitedDefinition(ratePer))
	// Likewise the deadline shape's revision with the long timeout.
	long, err := h.putDefinition(ctx, deadlineDefinition(deadlineLong))
	if err != nil {
		return err
	}
	h.longDeadlineRevision = long
	sources = append(sources, deadlineDefinition(deadlineShort), taskTimeoutDefinition, beatDefinition)
	if h.shapes[shapeTrigger] {
		sources = append(sources, triggerDefinition)
	}
	if h.shapes[shapeCron] {
		sources = append(sources, cronDefinition(h.ledger.URL(), true))
	}
	for _, src := range sources {
		if _, err := h.putDefinition(ctx, src); err != nil {
			return err
		}
	}
	return nil
}

// putDefinition puts src, retrying while parts start, and returns its
// revision.
func (h *Harness) putDefinition(ctx context.Context, src string) (int32, error) {
	var rev int32
	err := h.retry(ctx, time.Minute, func(ctx context.Context) error {
		resp, err := h.defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: src}))
		if err == nil {
			rev = resp.Msg.Revision
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put definition: %w", err)
	}
	return rev, nil
}

// poll calls check every interval until it reports done or ctx ends; the
// error returned then is the last one check gave.
func poll(ctx context.Context, interval time.Duration, check func() (bool, error)) error {
	var last error
	for {
		done, err := check()
		if done {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// retryable reports whether an API error may go away by itself: transport
// errors and the server's transient failures while parts restart.
func retryable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeAlreadyExists,
		connect.CodeFailedPrecondition, connect.CodePermissionDenied, connect.CodeUnauthenticated,
		connect.CodeUnimplemented, connect.CodeDataLoss, connect.CodeOutOfRange:
		return false
	}
	return true
}

// retry calls fn until it succeeds, fails for good, or limit passes.
func (h *Harness) retry(ctx context.Context, limit time.Duration, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return retryWhile(ctx, retryable, fn)
}

// retryWhile calls fn with backoff while it fails with errors again says
// may go away, until ctx ends.
func retryWhile(ctx context.Context, again func(error) bool, fn func(ctx context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil || !again(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up: %w", err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}
