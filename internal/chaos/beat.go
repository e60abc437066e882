package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/executor"
)

// The beat shape's task is served by executors of the harness's own, not
// by Weft's built-in ones: a Go executor as a user writes one (package
// executor's public API over the store), run as a hidden subcommand of
// the weft-chaos binary (RunBeatExecutor), killed and restarted by the
// chaos loop as Weft's executors are.

// beatTask is the task type of the beat executors, and beatExecutors how
// many of them a run starts (when it has the beat shape).
const (
	beatTask      = "chaos.beat"
	beatExecutors = 2
)

// beatTimeout is the attempt timeout of the beat shape's steps, which
// their handler outworks (beatWork) while heartbeating every beatEvery:
// each heartbeat extends the attempt to a full timeout from then.
const (
	beatTimeout = 2 * time.Second
	beatEvery   = 500 * time.Millisecond
)

// beatWork is how long the handler of the k-th beat run's left and right
// steps works after its call to the ledger: two to three timeouts.
func beatWork(k int) time.Duration { return 4*time.Second + time.Duration(k%3)*time.Second }

// The slotted steps: beatSlotItems iterations of a foreach, run at once,
// each a chaos.beat step with concurrency { key: input.k, limit:
// beatSlotLimit }; two beat runs in a row share a key. Their handler works
// past the lease its slot has without heartbeats, so that only the
// renewals by its heartbeats keep the key's other attempts waiting, and
// tells the ledger when it begins and ends (a span, see spanPath), so that
// the ledger sees how many worked at once.
//
// An executor's slot lease is the step's timeout, at least a minute, and
// a minute more, renewed by heartbeats every 30s of its flow control
// clock (executor.Config.Now): two minutes here. For the work to outlast
// it in a short run, the beat executors' clock runs beatClockRate times as
// fast as the wall clock from an epoch they share with the harness
// (beatClock): a lease lasts beatSlotLease of wall-clock time, renewed
// every 3s, outlasting 9s of failed renewals (a NATS node's kill).
const (
	beatClockRate = 10
	beatSlotLimit = 1
	beatSlotItems = 2
)

// beatSlotLease is how long a slotted step's slot is held, in wall-clock
// time, without a renewal.
const beatSlotLease = (max(beatTimeout, time.Minute) + time.Minute) / beatClockRate

// beatSlotWork is how long the handler of the k-th beat run's slotted
// steps works after its call to the ledger: two to four seconds past
// beatSlotLease.
func beatSlotWork(k int) time.Duration {
	return beatSlotLease + 2*time.Second + time.Duration(k%3)*time.Second
}

// beatClock is the beat executors' flow control clock: beatClockRate
// times as fast as the wall clock since epoch.
func beatClock(epoch time.Time) func() time.Time {
	return func() time.Time { return epoch.Add(time.Since(epoch) * beatClockRate) }
}

// beatDefinition is the beat shape's definition: a parallel step of two
// chaos.beat steps, each calling the ledger and then working input.work
// past its timeout, heartbeating, and of the slotted steps (working
// input.slot_work), and an http step after them.
var beatDefinition = `
name: chaos-beat
retry: ` + retryPolicy + `
steps:
  - id: work
    parallel:
      branches:
        left:` + beatStep("left_beat", "left") + `
        right:` + beatStep("right_beat", "right") + `
        slotted:
          - id: slots
            foreach: input.items
            do:
              - id: slot_beat
                task: ` + beatTask + `
                timeout: ` + beatTimeout.String() + `
                concurrency: { key: "${ input.k }", limit: ` + strconv.Itoa(beatSlotLimit) + ` }
                input: { url: "${ input.url }", work: "${ input.slot_work }", slot: "${ 'beat-' + input.k }", limit: ` + strconv.Itoa(beatSlotLimit) + `, body: { side: slotted, n: "${ input.n }", i: "${ index }" } }
  - id: after
    task: http
    timeout: 30s
    input: ` + call(`{ left: "${ steps.work.output.left.key }", right: "${ steps.work.output.right.key }" }`) + `
output:
  left: "${ steps.work.output.left.key }"
  right: "${ steps.work.output.right.key }"
  sides: "${ [steps.work.output.left.echo.side, steps.work.output.right.echo.side] }"
  slotted: "${ steps.slots.output.map(o, o.key) }"
  after: "${ steps.after.output.body.key }"
`

// beatStep is a branch's chaos.beat step id that calls the ledger with
// the branch's side.
func beatStep(id, side string) string {
	return `
          - id: ` + id + `
            task: ` + beatTask + `
            timeout: ` + beatTimeout.String() + `
            input: { url: "${ input.url }", work: "${ input.work }", body: { side: ` + side + `, n: "${ input.n }" } }`
}

// beatPaths are the beat shape's chaos.beat steps: left and right, then
// the slotted ones (beatSlotPaths).
var beatPaths = append([]string{"left_beat", "right_beat"}, beatSlotPaths()...)

// beatSlotPaths are the paths of the slotted steps.
func beatSlotPaths() []string {
	var out []string
	for i := range beatSlotItems {
		out = append(out, fmt.Sprintf("slots[%d].slot_beat", i))
	}
	return out
}

// beatSlotted reports whether path is of a slotted step.
func beatSlotted(path string) bool { return strings.HasPrefix(path, "slots[") }

// beatSlotScope is the slotted step's flow control scope (its definition
// and step id).
const beatSlotScope = "chaos-beat/slot_beat"

// planBeat: two steps of the beat executors in parallel, each working
// for two to three times its attempt timeout after its call to the
// ledger, kept alive by its heartbeats, beside the slotted steps, which
// work past their slot's lease one at a time (two runs in a row share
// their key), kept theirs by their heartbeats; then an http step. A beat
// executor killed mid-work leaves its attempt unrecorded: it is delivered
// again once the task ack wait ends (no heartbeat renews it) and run
// again with the same number, calling the ledger a second time (a
// duplicate effect, counted as any other), in the slot its attempt holds
// still. The run completes whatever the kills do; no attempt of a beat
// step may time out.
func planBeat(p *plan, k int) {
	work := beatWork(k)
	p.variant = "work-" + work.String()
	items, slotted := make([]any, beatSlotItems), make([]any, beatSlotItems)
	for i, path := range beatSlotPaths() {
		items[i], slotted[i] = i, p.key(path)
	}
	p.input["n"], p.input["work"], p.input["slot_work"] = p.index, work.String(), beatSlotWork(k).String()
	p.input["k"], p.input["items"] = fmt.Sprintf("k%d", k/2), items
	p.httpPaths = append(slices.Clone(beatPaths), "after")
	p.want = completed(map[string]any{"left": p.key("left_beat"), "right": p.key("right_beat"),
		"sides": []any{"left", "right"}, "slotted": slotted, "after": p.key("after")})
}

// beatHandler calls the ledger at input.url with input.body and the
// task's idempotency key, then works for input.work, heartbeating every
// beatEvery from its start to its end. Its output is the ledger's answer
// (key and echo), how long it worked after it and the heartbeats it made.
// A 503 of the ledger is a retried failure of type unavailable, as the
// http task's. With input.slot (a slotted step, of concurrency limit
// input.limit), the handler's run, from its start to its return, is a
// span of the slot at the ledger (see spanPath), made with spans.
func beatHandler(client, spans *http.Client) executor.Handler {
	return func(ctx context.Context, t *executor.Task) (any, error) {
		in, _ := t.Input.(map[string]any)
		url, _ := in["url"].(string)
		workText, _ := in["work"].(string)
		work, err := time.ParseDuration(workText)
		if url == "" || err != nil {
			return nil, executor.NonRetryable(executor.NewError("bad_input", "chaos.beat needs url and work (a duration): %v", t.Input))
		}
		if slot, _ := in["slot"].(string); slot != "" {
			var limit int
			switch n := in["limit"].(type) {
			case int64:
				limit = int(n)
			case float64:
				limit = int(n)
			}
			if limit <= 0 {
				return nil, executor.NonRetryable(executor.NewError("bad_input", "chaos.beat with a slot needs its limit: %v", t.Input))
			}
			holder := fmt.Sprintf("%s/%s/%d", t.WorkflowID, t.Path, t.Attempt)
			end, err := openSpan(ctx, spans, url, slot, limit, holder)
			if err != nil {
				return nil, err
			}
			defer end()
		}
		beats := 0
		ticker := time.NewTicker(beatEvery)
		defer ticker.Stop()
		stopBeats, beaten := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(beaten)
			for {
				select {
				case <-ticker.C:
					t.Heartbeat()
					beats++
				case <-stopBeats:
					return
				}
			}
		}()
		stop := func() int { close(stopBeats); <-beaten; return beats }
		body, err := json.Marshal(in["body"])
		if err != nil {
			stop()
			return nil, executor.NonRetryable(err)
		}
		answer, err := callLedger(ctx, client, url, t.IdempotencyKey, body)
		if err != nil {
			stop()
			return nil, err
		}
		began := time.Now()
		select {
		case <-time.After(work):
		case <-ctx.Done():
			stop()
			return nil, context.Cause(ctx)
		}
		worked := time.Since(began)
		return map[string]any{"key": answer.Key, "echo": answer.Echo, "worked_ms": worked.Milliseconds(),
			"beats": int64(stop())}, nil
	}
}

// openSpan begins a span of holder in slot (of limit) at the ledger at
// base, and returns the function that ends it: it tells the ledger, and
// closes the begin's request, held open by the ledger until then (a
// killed process's closes with it). client must have no timeout.
func openSpan(ctx context.Context, client *http.Client, base, slot string, limit int, holder string) (end func(), err error) {
	id := fmt.Sprintf("%d-%016x", os.Getpid(), rand.Uint64())
	at := func(q url.Values) string { return strings.TrimSuffix(base, "/") + spanPath + "?" + q.Encode() }
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	req, err := http.NewRequestWithContext(hctx, http.MethodPost,
		at(url.Values{"phase": {"begin"}, "id": {id}, "slot": {slot}, "limit": {strconv.Itoa(limit)}, "holder": {holder}}), nil)
	if err != nil {
		cancel()
		return nil, executor.NonRetryable(err)
	}
	held, err := client.Do(req)
	switch {
	case err != nil:
		cancel()
		return nil, executor.NewError("connection", "begin a span: %v", err)
	case held.StatusCode != http.StatusOK:
		held.Body.Close()
		cancel()
		return nil, executor.NonRetryable(executor.NewError("client_error", "begin a span: HTTP %s", held.Status))
	}
	return func() {
		defer cancel()
		defer held.Body.Close()
		ectx, ecancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ecancel()
		req, err := http.NewRequestWithContext(ectx, http.MethodPost, at(url.Values{"phase": {"end"}, "id": {id}}), nil)
		if err != nil {
			return
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}, nil
}

// callLedger POSTs body to url with key as its Idempotency-Key and
// returns the ledger's answer.
func callLedger(ctx context.Context, client *http.Client, url, key string, body []byte) (*ledgerResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, executor.NonRetryable(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return nil, executor.NewError("connection", "%v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, executor.NewError("connection", "read the answer: %v", err)
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		return nil, executor.NewError("unavailable", "HTTP %s", resp.Status)
	case resp.StatusCode >= 500:
		return nil, executor.NewError("server_error", "HTTP %s", resp.Status)
	case resp.StatusCode >= 300:
		return nil, executor.NonRetryable(executor.NewError("client_error", "HTTP %s: %s", resp.Status, strings.TrimSpace(string(data))))
	}
	var answer ledgerResponse
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, executor.NonRetryable(fmt.Errorf("the ledger's answer: %w", err))
	}
	return &answer, nil
}

// BeatExecutorConfig is the configuration of a beat executor: its NATS
// and the store's settings, which must match those of Weft's parts.
type BeatExecutorConfig struct {
	NATSURL string
	Store   eventstore.Config
	Logger  *slog.Logger
	// ClockEpoch, when set, makes the executor's flow control clock
	// beatClock(ClockEpoch); zero leaves it the wall clock.
	ClockEpoch time.Time
}

// RunBeatExecutor runs an executor of the chaos.beat task type until ctx
// ends, as a user's Go executor: it connects to NATS, opens the store,
// registers the handler on an executor.Worker and starts it. It logs
// "weft running" once it takes commands, as Weft's parts do.
func RunBeatExecutor(ctx context.Context, cfg BeatExecutorConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("weft-chaos-beat"), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to NATS at %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	var store *eventstore.Store
	// The cluster may be electing leaders: keep trying a while.
	err = retryWhile(ctx, func(error) bool { return true }, func(ctx context.Context) error {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		store, err = eventstore.Open(octx, nc, cfg.Store)
		if err != nil {
			log.Warn("JetStream not ready; retrying", "err", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("open the store: %w", err)
	}
	ecfg := executor.Config{Logger: log}
	if !cfg.ClockEpoch.IsZero() {
		ecfg.Now = beatClock(cfg.ClockEpoch)
	}
	w, err := executor.New(store, ecfg)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	spans := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if err := w.Register(beatTask, beatHandler(client, spans)); err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	log.Info("weft running", "parts", "executor", "task", beatTask, "nats", cfg.NATSURL, "clock_epoch", cfg.ClockEpoch)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// checkBeat checks the beat steps of a beat run that ended as expected:
// none had an attempt that timed out, and the attempt that completed each
// worked past the timeout (a slotted step's past its slot's lease),
// heartbeating. It counts them in res.
func checkBeat(p *plan, paths map[string]*pathEvents, ledger map[string]KeyCount, res *Result) []string {
	var msgs []string
	for _, path := range beatPaths {
		pe := paths[path]
		if pe == nil || pe.taskCompleted == 0 {
			msgs = append(msgs, fmt.Sprintf("beat step %s: no attempt completed it", path))
			continue
		}
		if pe.timeouts > 0 {
			msgs = append(msgs, fmt.Sprintf("beat step %s: %d attempt(s) timed out though their handler heartbeat every %s", path, pe.timeouts, beatEvery))
		}
		out, _ := pe.output.(map[string]any)
		worked, _ := out["worked_ms"].(float64)
		beats, _ := out["beats"].(float64)
		past, what := beatTimeout, "timeout"
		if beatSlotted(path) {
			past, what = beatSlotLease, "slot's lease"
		}
		if time.Duration(worked)*time.Millisecond <= past || beats == 0 {
			msgs = append(msgs, fmt.Sprintf("beat step %s: completed without working past its %s %s, heartbeating (output %v)", path, past, what, pe.output))
			continue
		}
		res.BeatSteps++
		res.BeatSlotSteps += btoi(beatSlotted(path))
		res.BeatHeartbeats += int(beats)
		if kc, recorded := ledger[p.key(path)], pe.failedAtts+pe.taskCompleted+pe.taskFailed; kc.Calls > recorded {
			res.BeatRepeats += kc.Calls - recorded
		}
	}
	return msgs
}

// renewFailed matches a beat executor's log line of a slot's renewal that
// failed, naming the attempt.
var renewFailed = regexp.MustCompile(`could not renew the attempt's concurrency slot.* workflow_id="?([^" ]+)"? .*step="?([^" ]+)"? attempt=(\d+)`)

// failedRenewals returns the holders (run/path/attempt, as the slotted
// steps' spans name them) whose slot's renewal a beat executor logged as
// failed, over all of its starts.
func (h *Harness) failedRenewals() map[string]bool {
	out := map[string]bool{}
	for _, p := range h.beat {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		for _, m := range renewFailed.FindAllStringSubmatch(string(data), -1) {
			out[m[1]+"/"+m[2]+"/"+m[3]] = true
		}
	}
	return out
}

// checkBeatSlots checks the slotted steps of the beat runs once every
// workflow closed: no more holders of a key worked at once, by the spans
// at the ledger, than the limit, but for an overlap beside a holder whose
// executor could not renew its lease (it lapsed: the slot was free); and
// once all closed no key's slot is held. A killed executor's handler is
// dead: its span ends with its connection. It notes what the spans saw.
func (h *Harness) checkBeatSlots(ctx context.Context, runs []*run, res *Result) {
	keys := map[string]bool{}
	for _, r := range runs {
		if r.started && r.plan.shape == shapeBeat {
			keys[r.plan.input["k"].(string)] = true
		}
	}
	if len(keys) == 0 {
		return
	}
	sc, failed := h.ledger.Spans(), h.failedRenewals()
	lapsed := 0
	for _, o := range sc.Overlaps {
		unrenewed := 0
		for _, b := range o.Beside {
			unrenewed += btoi(failed[b])
		}
		if len(o.Beside)+1-unrenewed <= sc.Limits[o.Slot] {
			lapsed++
			continue
		}
		res.Problems = append(res.Problems, fmt.Sprintf("beat slot %s: %s began at %s beside %v, beyond the limit %d, none of whose lease's renewals failed",
			o.Slot, o.Holder, o.At.Format("15:04:05.000"), o.Beside, sc.Limits[o.Slot]))
	}
	over := 0
	if len(sc.Over) > 0 {
		over = sc.Over[0]
	}
	res.Notes = append(res.Notes, fmt.Sprintf("beat slots: %d slotted steps over %d keys (limit %d) completed after working past the %s lease of a slot not renewed; "+
		"%d spans at the ledger, %d ended by their handler (the longest %s, %d past the lease), %d cut by a kill, %d twins; most holders of a key working at once %d (%d keys reached the limit); "+
		"%d attempts' lease renewals failed; %d overlaps beyond the limit, %d of them beside a lease whose renewal failed",
		res.BeatSlotSteps, len(keys), beatSlotLimit, beatSlotLease, sc.Spans, sc.Ended, sc.Longest.Round(time.Millisecond), over, sc.Cut, sc.Twins,
		maxValue(sc.Most), atLeast(sc.Most, beatSlotLimit), len(failed), len(sc.Overlaps), lapsed))
	// A slot is given back after its attempt, or dropped by the step's
	// next attempt or settled command; none may be held (by the beat
	// executors' clock) once every run closed.
	for _, key := range sortedKeys(keys) {
		if left := h.slotsLeft(ctx, func(store *eventstore.Store) (bool, string, error) {
			held, err := store.SlotHolders(ctx, beatSlotScope, key, beatClock(h.beatEpoch)())
			return len(held) == 0, fmt.Sprintf("held by %v", held), err
		}); left != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("beat: the slotted step's slots of key %s after every run closed: %s", key, left))
		}
	}
}

// startBeatExecutors starts the beat executors (the hidden executor
// subcommand of bin, the weft-chaos binary) and waits until each runs.
func (h *Harness) startBeatExecutors(ctx context.Context, bin string) error {
	if bin == "" {
		return errors.New("chaos: the beat shape needs the weft-chaos binary (Binaries.Chaos)")
	}
	// The clock's epoch is the wall clock's (no monotonic reading), as
	// the executors read it from their flag.
	h.beatEpoch = time.Now().Round(0)
	h.ledger.SpansOver(beatSlotLease)
	args := []string{"executor", "--nats-url", h.natsURLs, "--replicas", fmt.Sprint(storeConfig.Replicas),
		"--task-ack-wait", storeConfig.TaskAckWait.String(), "--clock-epoch", h.beatEpoch.Format(time.RFC3339Nano)}
	h.beat = nil
	for i := range beatExecutors {
		name := fmt.Sprintf("beat-executor-%d", i+1)
		h.beat = append(h.beat, h.sup.add(&proc{name: name, kind: kindExecutor, path: bin, args: args,
			logPath: filepath.Join(h.dir, "logs", name+".log")}))
	}
	for _, p := range h.beat {
		if err := p.start(); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for _, p := range h.beat {
		if err := h.waitReady(wctx, p); err != nil {
			return fmt.Errorf("%s did not start: %w (see %s)", p.name, err, p.logPath)
		}
	}
	h.logf("%d executors of %s running", len(h.beat), beatTask)
	return nil
}
