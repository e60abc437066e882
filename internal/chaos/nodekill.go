package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// nodeKillDefinition is the workflow of the node-kill run: two echo steps
// around one call to the ledger, so its output is known from its input and
// its effect is counted outside.
const nodeKillDefinition = `
name: nodekill-seq
retry: ` + retryPolicy + `
steps:
  - id: first
    task: echo
    input: { n: "${ input.n }" }
  - id: call
    task: http
    timeout: 30s
    input: { method: POST, url: "${ input.url }", body: { n: "${ steps.first.output.n }" } }
  - id: last
    task: echo
    input: "${ steps.call.output.body.key }"
output:
  n: "${ steps.first.output.n }"
  key: "${ steps.last.output }"
  echo: "${ steps.call.output.body.echo.n }"
`

// nodeKillPlan returns the i-th workflow of a node-kill run.
func nodeKillPlan(i int, ledgerURL string) *plan {
	p := &plan{index: i, shape: shapeSeq, definition: "nodekill-seq", id: fmt.Sprintf("nodekill-%05d", i),
		httpPaths: []string{"call"}}
	p.input = map[string]any{"url": ledgerURL, "n": i}
	p.want = completed(map[string]any{"n": i, "key": p.id + "/call", "echo": i})
	p.effects = p.httpPaths
	return p
}

// NodeKillConfig describes a run that kills one NATS node under a steady
// load and measures how long progress stops.
type NodeKillConfig struct {
	// Rate is the number of workflows started per second. Default 10.
	Rate int
	// Warmup is the number of workflows that must have completed before
	// the kill. Default 10.
	Warmup int
	// Down is how long the killed node stays down, under load. Default 10s.
	Down time.Duration
	// After is how long the load goes on once the node is back and
	// healthy. Default 5s.
	After time.Duration
	// Settle bounds the time, after the last start, for every workflow to
	// close. Default 45s.
	Settle time.Duration
}

func (c *NodeKillConfig) defaults() {
	if c.Rate <= 0 {
		c.Rate = 10
	}
	if c.Warmup <= 0 {
		c.Warmup = 10
	}
	if c.Down <= 0 {
		c.Down = 10 * time.Second
	}
	if c.After <= 0 {
		c.After = 5 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 45 * time.Second
	}
}

// NodeKillResult is the outcome of a node-kill run.
type NodeKillResult struct {
	// Result holds the checks of every workflow, as in a chaos run.
	*Result
	// Killed is the server name of the node killed (n1, n2 or n3), which
	// led the history stream; MetaLeader is the JetStream meta leader at
	// the kill, and Leaders the leader of each stream then.
	Killed, MetaLeader string
	Leaders            map[string]string
	// NewLeader is the node that led the history stream after the kill,
	// and Elected the time from the kill until it was seen leading.
	NewLeader string
	Elected   time.Duration
	// Elections are, for each stream and consumer ("stream/consumer") the
	// killed node led, the time from the kill until another node was seen
	// leading it, and NewLeaders that node. One missing was not seen led
	// by another node before every workflow closed.
	Elections  map[string]time.Duration
	NewLeaders map[string]string
	// Resume is the time from the kill until the first completion of a
	// workflow whose start was first requested after the kill.
	Resume time.Duration
	// Seen is the time from the kill until the client, awaiting each
	// workflow with AwaitWorkflow, first saw one started after the kill
	// completed.
	Seen time.Duration
	// FirstClose is the time from the kill until the first completion of
	// any workflow (one in flight at the kill may be it).
	FirstClose time.Duration
	// RateBack is the time from the kill until the start of the first
	// second, at or after Resume, in which at least half as many workflows
	// completed as per second in the five seconds before the kill.
	RateBack time.Duration
	// Steady is the time from the kill until the end of the last whole
	// second of the load in which fewer than half that many completed: from
	// then on the rate stayed at least half the rate before the kill.
	Steady time.Duration
	// PreRate is that rate before the kill, in completions per second.
	PreRate float64
	// DownFor is how long the node was down; Healthy the time from its
	// restart until its /healthz answered OK.
	DownFor, Healthy time.Duration
	// StartedAfterKill counts the workflows first requested after the kill.
	StartedAfterKill int
	// PerSecond are the completions per second, by the orchestrators'
	// clock of each WorkflowCompleted, from PerSecondFrom seconds relative
	// to the kill (negative: before it).
	PerSecond     []int
	PerSecondFrom int
	// Elapsed is the time of the load, from the first start until every
	// workflow closed.
	Elapsed time.Duration
	// FollowerFailed is the error that ended the follower of the
	// histories run through the kill (an eventstore.Follower, as the API
	// uses), nil when it ran throughout; a record it was not given while
	// it ran is a problem of the Result. FollowerCompared counts the
	// records stored while it ran, each checked.
	FollowerFailed   error
	FollowerCompared int
}

// ElectionsString lists the new leader of each stream and consumer the
// killed node led, with the time after the kill it was seen leading.
func (r *NodeKillResult) ElectionsString() string {
	var parts []string
	for asset, leader := range r.Leaders {
		if leader != r.Killed {
			continue
		}
		if d, ok := r.Elections[asset]; ok {
			parts = append(parts, fmt.Sprintf("%s -> %s at +%s", asset, r.NewLeaders[asset], d.Round(time.Millisecond)))
		} else {
			parts = append(parts, asset+" -> none seen")
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// Timeline renders PerSecond as "t-5s: 9 10 ... | kill | ...".
func (r *NodeKillResult) Timeline() string {
	var b strings.Builder
	fmt.Fprintf(&b, "completions per second from t%+ds:", r.PerSecondFrom)
	for i, n := range r.PerSecond {
		if r.PerSecondFrom+i == 0 {
			b.WriteString(" | kill |")
		}
		fmt.Fprintf(&b, " %d", n)
	}
	return b.String()
}

// RunNodeKill builds (unless given) the binaries, starts the deployment,
// runs a steady load of nodekill-seq workflows, kills -9 the NATS node
// that leads the history stream once Warmup workflows have completed,
// restarts it after Down, goes on for After, then waits for every
// workflow to close and checks them as a chaos run does. It closes the
// harness before it returns; a successful run's own temporary directory is
// removed unless KeepLogs.
func (h *Harness) RunNodeKill(ctx context.Context, nk NodeKillConfig) (res *NodeKillResult, err error) {
	nk.defaults()
	defer func() { h.endRun(err) }()
	if err := h.deploy(ctx, 0, 0, 0); err != nil {
		return nil, err
	}
	err = h.retry(ctx, time.Minute, func(ctx context.Context) error {
		_, err := h.defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: nodeKillDefinition}))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("put definition: %w", err)
	}
	// Streams are R3 on a fresh cluster: wait until every node is current
	// before the load, so the kill is the only disturbance.
	if err := h.waitHealthy(ctx, []int{0, 1, 2}, time.Minute); err != nil {
		return nil, fmt.Errorf("NATS not healthy before the load: %w", err)
	}
	return h.nodeKillLoad(ctx, nk)
}

// nodeKillLoad is RunNodeKill once the deployment runs.
func (h *Harness) nodeKillLoad(ctx context.Context, nk NodeKillConfig) (*NodeKillResult, error) {
	res := &NodeKillResult{Leaders: map[string]string{}}
	var (
		mu     sync.Mutex
		runs   []*run
		issued []time.Time // when each run's start was first requested
		seen   []time.Time // when the client saw each run close
		wg     sync.WaitGroup
		closed atomic.Int64
		c      counters
	)
	polls := make(chan struct{}, 16)
	// The drivers' context ends Settle after the last start (set below);
	// until then it is only the caller's.
	wctx, cancelDrivers := context.WithCancel(ctx)
	defer cancelDrivers()
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Second / time.Duration(nk.Rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			r := &run{plan: nodeKillPlan(i, h.ledger.URL())}
			mu.Lock()
			runs = append(runs, r)
			issued = append(issued, time.Now())
			seen = append(seen, time.Time{})
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.drive(wctx, r, &c, polls)
				mu.Lock()
				seen[i] = time.Now()
				mu.Unlock()
				closed.Add(1)
			}()
			select {
			case <-stopLoad:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stop := func() {
		select {
		case <-stopLoad:
		default:
			close(stopLoad)
		}
		<-loadDone
	}
	defer stop()
	h.logf("load: %d workflows/s of nodekill-seq", nk.Rate)

	// Progress first.
	wuctx, wucancel := context.WithTimeout(ctx, time.Minute)
	err := poll(wuctx, 100*time.Millisecond, func() (bool, error) { return closed.Load() >= int64(nk.Warmup), nil })
	wucancel()
	if err != nil {
		return nil, fmt.Errorf("no progress before the kill: %d of %d warm-up workflows closed: %w", closed.Load(), nk.Warmup, err)
	}
	// The five seconds before the kill measure the steady rate.
	if d := time.Until(t0.Add(5 * time.Second)); d > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(d):
		}
	}

	nc, err := nats.Connect(h.natsURLs, nats.Timeout(2*time.Second), nats.Name("weft-chaos-nodekill"),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if res.Leaders, err = streamLeaders(ctx, js); err != nil {
		return nil, err
	}
	res.Killed = res.Leaders[eventstore.HistoryStream]
	victim := -1
	for i, p := range h.nats {
		if p.name == "nats-"+res.Killed {
			victim = i
		}
	}
	if victim < 0 {
		return nil, fmt.Errorf("the history stream's leader %q is no node of the run", res.Killed)
	}
	// A follower of every history record, as the API's, through the kill.
	follow, err := h.startFollowCheck(ctx)
	if err != nil {
		return nil, fmt.Errorf("follow the histories: %w", err)
	}
	res.MetaLeader, _ = h.metaLeader(ctx, (victim+1)%len(h.nats))
	h.logf("stream leaders %v, meta leader %s; %d workflows closed", res.Leaders, res.MetaLeader, closed.Load())
	h.logf("kill -9 nats-%s (the history stream's leader) for %s", res.Killed, nk.Down)
	p := h.nats[victim]
	killAt := time.Now()
	p.kill()

	// Watch every stream and consumer the killed node led elect a new
	// leader; the watch ends when every workflow has closed.
	res.Elections, res.NewLeaders = map[string]time.Duration{}, map[string]string{}
	ectx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var ewg sync.WaitGroup
	var emu sync.Mutex
	for asset, leader := range res.Leaders {
		if leader != res.Killed {
			continue
		}
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			_ = poll(ectx, 50*time.Millisecond, func() (bool, error) {
				ictx, icancel := context.WithTimeout(ectx, time.Second)
				defer icancel()
				leader, err := assetLeader(ictx, js, asset)
				if err != nil || leader == "" || leader == res.Killed {
					return false, err
				}
				emu.Lock()
				res.Elections[asset], res.NewLeaders[asset] = time.Since(killAt), leader
				emu.Unlock()
				return true, nil
			})
		}()
	}

	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(killAt.Add(nk.Down))):
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	restartAt := time.Now()
	res.DownFor = restartAt.Sub(killAt)
	h.logf("nats-%s restarted after %s; %d workflows closed", res.Killed, res.DownFor.Round(time.Millisecond), closed.Load())
	if err := h.waitHealthy(ctx, []int{victim}, time.Minute); err != nil {
		return nil, fmt.Errorf("nats-%s not healthy after its restart: %w", res.Killed, err)
	}
	res.Healthy = time.Since(restartAt)
	h.logf("nats-%s healthy %s after its restart", res.Killed, res.Healthy.Round(time.Millisecond))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(nk.After):
	}
	stop()
	loadEnd := time.Now()
	mu.Lock()
	n := len(runs)
	mu.Unlock()
	h.logf("load stopped after %s: %d workflows started, %d closed; waiting for the rest (at most %s)",
		time.Since(t0).Round(time.Second), n, closed.Load(), nk.Settle)
	timer := time.AfterFunc(nk.Settle, cancelDrivers)
	defer timer.Stop()
	wg.Wait()
	stopWatch()
	ewg.Wait()
	res.NewLeader, res.Elected = res.NewLeaders[eventstore.HistoryStream], res.Elections[eventstore.HistoryStream]
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(t0)

	res.Result = &Result{Kills: Kills{NATS: 1}}
	missed, compared, failed, err := follow.check(ctx)
	if err != nil {
		return nil, fmt.Errorf("check the follower of the histories: %w", err)
	}
	res.FollowerFailed, res.FollowerCompared = failed, compared
	if len(missed) > 0 {
		res.Result.Problems = append(res.Result.Problems, fmt.Sprintf(
			"follower: %d history records stored while it ran were never given to it (first %d)", len(missed), missed[0]))
	}
	if err := h.verify(ctx, runs, res.Result); err != nil {
		return res, err
	}
	res.StartRetries = int(c.startRetries.Load())
	res.NotFoundAfterStart = int(c.notFoundStarts.Load())
	res.StartupExits = h.startupExits
	res.UnexpectedExits = h.sup.unexpectedExits() - h.startupExits
	res.measure(runs, issued, seen, killAt, loadEnd)
	if err := h.writeReport(res.Result); err != nil {
		h.logf("write report: %v", err)
	}
	return res, res.Result.Err()
}

// measure fills the pause figures from the closing times the histories
// record.
func (r *NodeKillResult) measure(runs []*run, issued, seen []time.Time, killAt, loadEnd time.Time) {
	const before = 5
	var closes []time.Time
	first, firstNew := time.Time{}, time.Time{}
	for i, run := range runs {
		if issued[i].After(killAt) {
			r.StartedAfterKill++
		}
		if run.final == nil || run.final.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || run.final.ClosedTime == nil {
			continue
		}
		at := run.final.ClosedTime.AsTime()
		closes = append(closes, at)
		if at.After(killAt) && (first.IsZero() || at.Before(first)) {
			first = at
		}
		if issued[i].After(killAt) && (firstNew.IsZero() || at.Before(firstNew)) {
			firstNew = at
		}
		if s := seen[i]; issued[i].After(killAt) && !s.IsZero() && (r.Seen == 0 || s.Sub(killAt) < r.Seen) {
			r.Seen = s.Sub(killAt)
		}
	}
	if !first.IsZero() {
		r.FirstClose = first.Sub(killAt)
	}
	if firstNew.IsZero() {
		r.Resume = -1
		r.RateBack = -1
		return
	}
	r.Resume = firstNew.Sub(killAt)
	slices.SortFunc(closes, func(a, b time.Time) int { return a.Compare(b) })
	last := closes[len(closes)-1]
	r.PerSecondFrom = -before
	r.PerSecond = make([]int, before+int(last.Sub(killAt)/time.Second)+1)
	for _, at := range closes {
		d := at.Sub(killAt)
		if d < -before*time.Second {
			continue
		}
		i := before + int(math.Floor(d.Seconds()))
		r.PerSecond[i]++
	}
	pre := 0
	for _, n := range r.PerSecond[:before] {
		pre += n
	}
	r.PreRate = float64(pre) / before
	r.RateBack = -1
	r.Steady = -1
	// The last whole second of the load after the kill with fewer than
	// half the steady completions ends the disturbance.
	for i := before; i < len(r.PerSecond); i++ {
		if sec := killAt.Add(time.Duration(i-before+1) * time.Second); sec.After(loadEnd) {
			break
		}
		if float64(r.PerSecond[i]) < r.PreRate/2 {
			r.Steady = time.Duration(i-before+1) * time.Second
		}
	}
	// Sliding one-second windows, from the first new completion on.
	for j, start := 0, firstNew; start.Before(last); start = start.Add(100 * time.Millisecond) {
		for j < len(closes) && closes[j].Before(start) {
			j++
		}
		k := j
		for k < len(closes) && closes[k].Before(start.Add(time.Second)) {
			k++
		}
		if float64(k-j) >= r.PreRate/2 {
			r.RateBack = start.Sub(killAt)
			break
		}
	}
	if r.Steady >= 0 && r.Steady < r.RateBack {
		r.Steady = r.RateBack
	}
}

// streamLeaders returns the leader of every stream of the account, and of
// every durable consumer, as "stream/consumer".
func streamLeaders(ctx context.Context, js jetstream.JetStream) (map[string]string, error) {
	leaders := map[string]string{}
	err := retryWhile(ctx, func(error) bool { return true }, func(ctx context.Context) error {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		names := js.StreamNames(ictx)
		for name := range names.Name() {
			s, err := js.Stream(ictx, name)
			if err != nil {
				return err
			}
			info, err := s.Info(ictx)
			if err != nil {
				return err
			}
			if info.Cluster != nil {
				leaders[name] = info.Cluster.Leader
			}
			cons := s.ListConsumers(ictx)
			for ci := range cons.Info() {
				// Durable consumers only: watchers' ephemeral consumers
				// (R1) die with their node.
				if ci.Config.Durable != "" && ci.Cluster != nil {
					leaders[name+"/"+ci.Name] = ci.Cluster.Leader
				}
			}
			if err := cons.Err(); err != nil {
				return err
			}
		}
		if err := names.Err(); err != nil {
			return err
		}
		if leaders[eventstore.HistoryStream] == "" {
			return fmt.Errorf("stream %s has no leader", eventstore.HistoryStream)
		}
		return nil
	})
	return leaders, err
}

// assetLeader returns the leader of a stream, or of a consumer named as
// "stream/consumer".
func assetLeader(ctx context.Context, js jetstream.JetStream, asset string) (string, error) {
	stream, consumer, isConsumer := strings.Cut(asset, "/")
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	var cluster *jetstream.ClusterInfo
	if isConsumer {
		c, err := s.Consumer(ctx, consumer)
		if err != nil {
			return "", err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return "", err
		}
		cluster = info.Cluster
	} else {
		info, err := s.Info(ctx)
		if err != nil {
			return "", err
		}
		cluster = info.Cluster
	}
	if cluster == nil {
		return "", nil
	}
	return cluster.Leader, nil
}

// metaLeader asks a node's monitoring endpoint for the JetStream meta
// leader.
func (h *Harness) metaLeader(ctx context.Context, node int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := strings.TrimSuffix(h.health[node], "/healthz") + "/jsz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return "", err
	}
	if jsz.Meta == nil {
		return "", fmt.Errorf("%s: no meta_cluster", url)
	}
	return jsz.Meta.Leader, nil
}
