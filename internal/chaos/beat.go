package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
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

// beatWork is how long the handler of the k-th beat run works after its
// call to the ledger: two to three timeouts.
func beatWork(k int) time.Duration { return 4*time.Second + time.Duration(k%3)*time.Second }

// beatDefinition is the beat shape's definition: a parallel step of two
// chaos.beat steps, each calling the ledger and then working input.work
// past its timeout, heartbeating, and an http step after them.
var beatDefinition = `
name: chaos-beat
retry: ` + retryPolicy + `
steps:
  - id: work
    parallel:
      branches:
        left:` + beatStep("left_beat", "left") + `
        right:` + beatStep("right_beat", "right") + `
  - id: after
    task: http
    timeout: 30s
    input: ` + call(`{ left: "${ steps.work.output.left.key }", right: "${ steps.work.output.right.key }" }`) + `
output:
  left: "${ steps.work.output.left.key }"
  right: "${ steps.work.output.right.key }"
  sides: "${ [steps.work.output.left.echo.side, steps.work.output.right.echo.side] }"
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

// beatPaths are the beat shape's chaos.beat steps.
var beatPaths = []string{"left_beat", "right_beat"}

// planBeat: two steps of the beat executors in parallel, each working
// for two to three times its attempt timeout after its call to the
// ledger, kept alive by its heartbeats, then an http step. A beat
// executor killed mid-work leaves its attempt unrecorded: it is delivered
// again once the task ack wait ends (no heartbeat renews it) and run
// again with the same number, calling the ledger a second time (a
// duplicate effect, counted as any other). The run completes whatever
// the kills do; no attempt of a beat step may time out.
func planBeat(p *plan, k int) {
	work := beatWork(k)
	p.variant = "work-" + work.String()
	p.input["n"], p.input["work"] = p.index, work.String()
	p.httpPaths = append(append([]string{}, beatPaths...), "after")
	p.want = completed(map[string]any{"left": p.key("left_beat"), "right": p.key("right_beat"),
		"sides": []any{"left", "right"}, "after": p.key("after")})
}

// beatHandler calls the ledger at input.url with input.body and the
// task's idempotency key, then works for input.work, heartbeating every
// beatEvery from its start to its end. Its output is the ledger's answer
// (key and echo), how long it worked after it and the heartbeats it made.
// A 503 of the ledger is a retried failure of type unavailable, as the
// http task's.
func beatHandler(client *http.Client) executor.Handler {
	return func(ctx context.Context, t *executor.Task) (any, error) {
		in, _ := t.Input.(map[string]any)
		url, _ := in["url"].(string)
		workText, _ := in["work"].(string)
		work, err := time.ParseDuration(workText)
		if url == "" || err != nil {
			return nil, executor.NonRetryable(executor.NewError("bad_input", "chaos.beat needs url and work (a duration): %v", t.Input))
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
	w, err := executor.New(store, executor.Config{Logger: log})
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if err := w.Register(beatTask, beatHandler(client)); err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	log.Info("weft running", "parts", "executor", "task", beatTask, "nats", cfg.NATSURL)
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
// worked past the timeout, heartbeating. It counts them in res.
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
		if time.Duration(worked)*time.Millisecond <= beatTimeout || beats == 0 {
			msgs = append(msgs, fmt.Sprintf("beat step %s: completed without working past its %s timeout, heartbeating (output %v)", path, beatTimeout, pe.output))
			continue
		}
		res.BeatSteps++
		res.BeatHeartbeats += int(beats)
		if kc, recorded := ledger[p.key(path)], pe.failedAtts+pe.taskCompleted+pe.taskFailed; kc.Calls > recorded {
			res.BeatRepeats += kc.Calls - recorded
		}
	}
	return msgs
}

// startBeatExecutors starts the beat executors (the hidden executor
// subcommand of bin, the weft-chaos binary) and waits until each runs.
func (h *Harness) startBeatExecutors(ctx context.Context, bin string) error {
	if bin == "" {
		return errors.New("chaos: the beat shape needs the weft-chaos binary (Binaries.Chaos)")
	}
	args := []string{"executor", "--nats-url", h.natsURLs, "--replicas", fmt.Sprint(storeConfig.Replicas),
		"--task-ack-wait", storeConfig.TaskAckWait.String()}
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
