package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// Result is the outcome of a chaos run.
type Result struct {
	// Workflows is the number of workflows the run started.
	Workflows int
	// Completed counts those that completed with their expected output.
	Completed int
	// NotStarted, Stuck and Failed count the lost ones: never started,
	// still running at the deadline, or closed other than COMPLETED (or
	// COMPLETED with a wrong output).
	NotStarted, Stuck, Failed int
	// Kills are the kills of the run.
	Kills Kills
	// DuplicateEffects is the number of ledger calls beyond the attempts
	// the histories record: calls whose outcome was lost with a killed
	// executor and that ran again. An outside system that honours the
	// Idempotency-Key absorbs them.
	DuplicateEffects int
	// DuplicateDecisions counts history events that record a decision a
	// second time (a step scheduled, completed or started twice, one
	// attempt recorded twice, a second WorkflowCompleted, ...).
	DuplicateDecisions int
	// LostSignals counts signals sent that no wait received with their
	// payload (or that were received more than once).
	LostSignals int
	// Mismatches counts disagreements between the histories and the
	// ledger: a task key that never reached the ledger or never succeeded
	// there, fewer calls than recorded attempts, unexpected keys.
	Mismatches int
	// P50 and P99 are completion-time percentiles (start to close, by the
	// server's clock) of the completed workflows.
	P50, P99, Max time.Duration
	// UnexpectedExits counts processes that exited without being killed
	// during the run; StartupExits those while the deployment started.
	UnexpectedExits, StartupExits int
	// StartRetries and SignalRetries count client retries of those calls.
	StartRetries, SignalRetries int
	// NotFoundAfterStart counts NotFound answers about workflows whose
	// start had already succeeded.
	NotFoundAfterStart int
	// Problems describes every failed check, one per line.
	Problems []string
	// Notes are observations that fail no check.
	Notes []string
}

// Lost is the number of workflows that did not complete as expected.
func (r *Result) Lost() int { return r.Workflows - r.Completed }

// Summary is the one-line summary of the run.
func (r *Result) Summary() string {
	k := r.Kills
	return fmt.Sprintf("chaos: workflows=%d completed=%d lost=%d kills=%d (nats=%d orch=%d exec=%d api=%d) "+
		"duplicate_effects=%d duplicate_decisions=%d mismatches=%d lost_signals=%d p99_completion=%.2fs",
		r.Workflows, r.Completed, r.Lost(), k.Total(), k.NATS, k.Orchestrator, k.Executor, k.API,
		r.DuplicateEffects, r.DuplicateDecisions, r.Mismatches, r.LostSignals, r.P99.Seconds())
}

// Err is nil when every check passed, and otherwise lists the problems.
func (r *Result) Err() error {
	if len(r.Problems) == 0 && r.Lost() == 0 && r.DuplicateDecisions == 0 && r.LostSignals == 0 && r.Mismatches == 0 {
		return nil
	}
	const show = 20
	lines := r.Problems
	more := ""
	if len(lines) > show {
		more = fmt.Sprintf("\n  ... and %d more", len(lines)-show)
		lines = lines[:show]
	}
	return fmt.Errorf("chaos: %d problem(s):\n  %s%s", len(r.Problems), strings.Join(lines, "\n  "), more)
}

// verify checks every workflow against its plan, its history and the
// ledger, and fills res.
func (h *Harness) verify(ctx context.Context, runs []*run, res *Result) error {
	ledger := h.ledger.Snapshot()
	expectedKeys := map[string]bool{}
	for _, r := range runs {
		for _, path := range r.plan.httpPaths {
			expectedKeys[r.plan.id+"/"+path] = true
		}
	}
	var mu sync.Mutex
	var durations []time.Duration
	var dumps int
	problem := func(r *run, format string, args ...any) {
		res.Problems = append(res.Problems, r.plan.id+": "+fmt.Sprintf(format, args...))
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var fatal error
	for _, r := range runs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var hist []*weftv1.HistoryEvent
			var histErr error
			if r.started {
				hist, histErr = h.history(ctx, r.plan.id)
			}
			mu.Lock()
			defer mu.Unlock()
			if histErr != nil && ctx.Err() != nil {
				fatal = ctx.Err()
				return
			}
			bad := len(res.Problems)
			h.check(r, hist, histErr, ledger, res, &durations, problem)
			if len(res.Problems) > bad && dumps < 50 {
				dumps++
				if err := h.dump(r, hist); err != nil {
					h.logf("dump %s: %v", r.plan.id, err)
				}
			}
		}()
	}
	wg.Wait()
	if fatal != nil {
		return fatal
	}
	var unexpected []string
	for key := range ledger {
		if !expectedKeys[key] {
			unexpected = append(unexpected, fmt.Sprintf("%q", key))
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		res.Mismatches += len(unexpected)
		res.Problems = append(res.Problems, fmt.Sprintf("the ledger got calls with keys no step has: %s", strings.Join(unexpected, ", ")))
	}
	sort.Strings(res.Problems)
	slices.Sort(durations)
	if n := len(durations); n > 0 {
		pct := func(p float64) time.Duration { return durations[max(0, int(math.Ceil(p*float64(n)))-1)] }
		res.P50, res.P99, res.Max = pct(0.50), pct(0.99), durations[n-1]
	}
	return nil
}

// pathEvents gathers the events of one step path.
type pathEvents struct {
	scheduled     map[int]int // per gen
	keys          []string
	attemptFailed map[int]int // per attempt number
	unavailable   int         // failed attempts of type unavailable (the ledger's 503)
	failedAtts    int
	completed     int
	failed        int
	started       int
	waitStarted   int
	output        any
}

// check checks one workflow; the caller holds the lock over res.
func (h *Harness) check(r *run, hist []*weftv1.HistoryEvent, histErr error, ledger map[string]KeyCount, res *Result,
	durations *[]time.Duration, problem func(*run, string, ...any)) {
	p := r.plan
	switch {
	case !r.started:
		res.NotStarted++
		problem(r, "never started: %v", r.startErr)
		return
	case r.final == nil || !closedStatus(r.final.Status):
		res.Stuck++
		status := "unknown"
		if r.final != nil {
			status = r.final.Status.String()
			for _, s := range r.final.Steps {
				if s.Status != weftv1.StepStatus_STEP_STATUS_COMPLETED {
					status += fmt.Sprintf(", step %s %s (attempts %d)", s.Path, s.Status, s.Attempts)
				}
			}
		}
		problem(r, "did not close before the deadline: %s", status)
	case r.final.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED:
		res.Failed++
		problem(r, "closed %s: %v", r.final.Status, r.final.Error)
	default:
		got := r.final.Output.AsInterface()
		if !reflect.DeepEqual(normalize(got), p.expected) {
			res.Failed++
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(p.expected)
			problem(r, "completed with output %s, want %s", g, w)
		} else {
			res.Completed++
			if c, o := r.final.CreatedTime, r.final.ClosedTime; c != nil && o != nil {
				*durations = append(*durations, o.AsTime().Sub(c.AsTime()))
			}
		}
	}
	if r.signalErr != nil && !errors.Is(r.signalErr, errClosedEarly) {
		problem(r, "signal not sent: %v", r.signalErr)
	}
	if histErr != nil {
		problem(r, "history: %v", histErr)
		return
	}

	// Count the events: every decision must be recorded once.
	dup := func(format string, args ...any) {
		res.DuplicateDecisions++
		problem(r, "duplicate decision: "+format, args...)
	}
	paths := map[string]*pathEvents{}
	at := func(path string) *pathEvents {
		pe := paths[path]
		if pe == nil {
			pe = &pathEvents{scheduled: map[int]int{}, attemptFailed: map[int]int{}}
			paths[path] = pe
		}
		return pe
	}
	counts := map[string]int{}
	timersScheduled, timersFired := map[string]int{}, map[string]int{}
	var signals []any
	closedAt := -1
	for i, ev := range hist {
		counts[ev.Type]++
		data, _ := ev.Data.AsInterface().(map[string]any)
		pe := at(ev.StepPath)
		switch ev.Type {
		case "StepScheduled":
			gen, _ := data["gen"].(float64)
			pe.scheduled[int(gen)]++
			key, _ := data["idempotency_key"].(string)
			pe.keys = append(pe.keys, key)
		case "StepAttemptFailed":
			pe.attemptFailed[int(ev.Attempt)]++
			pe.failedAtts++
			if e, _ := data["error"].(map[string]any); e != nil && e["type"] == "unavailable" {
				pe.unavailable++
			}
		case "StepCompleted":
			pe.completed++
			pe.output = data["output"]
		case "StepFailed":
			pe.failed++
		case "StepStarted":
			pe.started++
		case "WaitStarted":
			pe.waitStarted++
		case "TimerScheduled":
			id, _ := data["timer_id"].(string)
			timersScheduled[id]++
		case "TimerFired":
			id, _ := data["timer_id"].(string)
			timersFired[id]++
		case "SignalReceived":
			signals = append(signals, data["payload"])
		case "WorkflowCompleted", "WorkflowFailed", "WorkflowCanceled":
			if closedAt < 0 {
				closedAt = i
			}
		}
	}
	if counts["WorkflowStarted"] != 1 {
		dup("%d WorkflowStarted events", counts["WorkflowStarted"])
	}
	if n := counts["WorkflowCompleted"] + counts["WorkflowFailed"] + counts["WorkflowCanceled"]; n > 1 {
		dup("%d closing events (WorkflowCompleted %d, WorkflowFailed %d, WorkflowCanceled %d)",
			n, counts["WorkflowCompleted"], counts["WorkflowFailed"], counts["WorkflowCanceled"])
	}
	if closedAt >= 0 && closedAt < len(hist)-1 {
		problem(r, "%d event(s) after the workflow closed, the first %s at sequence %d", len(hist)-1-closedAt,
			hist[closedAt+1].Type, hist[closedAt+1].Sequence)
	}
	for id, n := range timersScheduled {
		if n > 1 {
			dup("timer %s scheduled %d times", id, n)
		}
	}
	for id, n := range timersFired {
		if n > 1 {
			dup("timer %s fired %d times", id, n)
		}
	}
	for path, pe := range paths {
		if path == "" {
			continue
		}
		for gen, n := range pe.scheduled {
			if n > 1 {
				dup("step %s gen %d scheduled %d times", path, gen, n)
			}
		}
		if len(pe.scheduled) > 1 {
			dup("step %s scheduled in %d generations without a redrive", path, len(pe.scheduled))
		}
		for _, key := range pe.keys {
			if want := p.id + "/" + path; key != want {
				res.Mismatches++
				problem(r, "step %s scheduled with idempotency key %q, want %q", path, key, want)
			}
		}
		for att, n := range pe.attemptFailed {
			if n > 1 {
				dup("step %s attempt %d failure recorded %d times", path, att, n)
			}
		}
		if pe.completed > 1 {
			dup("step %s completed %d times", path, pe.completed)
		}
		if pe.started > 1 {
			dup("step %s started %d times", path, pe.started)
		}
		if pe.waitStarted > 1 {
			dup("step %s began waiting %d times", path, pe.waitStarted)
		}
		if pe.failed > 0 {
			problem(r, "step %s failed", path)
		}
		if pe.completed == 0 && counts["WorkflowCompleted"] > 0 {
			problem(r, "step %s never completed in a completed workflow", path)
		}
	}

	completed := r.final != nil && r.final.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	if !completed && r.started {
		problem(r, "%s", diagnose(hist))
	}

	// The ledger must have seen every task, and at least the attempts the
	// history records. (Of a workflow that did not complete, only the steps
	// that did.)
	for _, path := range p.httpPaths {
		key := p.id + "/" + path
		kc := ledger[key]
		pe := paths[path]
		if pe == nil {
			pe = &pathEvents{}
		}
		if !completed && pe.completed == 0 {
			continue
		}
		if kc.Calls == 0 {
			res.Mismatches++
			problem(r, "step %s: key %q never reached the ledger", path, key)
			continue
		}
		if kc.OK == 0 {
			res.Mismatches++
			problem(r, "step %s: key %q never succeeded at the ledger (%d calls)", path, key, kc.Calls)
		}
		recorded := pe.failedAtts + pe.completed
		if kc.Calls < recorded {
			res.Mismatches++
			problem(r, "step %s: history records %d attempts (%d failed, %d completed) but the ledger saw %d calls",
				path, recorded, pe.failedAtts, pe.completed, kc.Calls)
			continue
		}
		if pe.unavailable > kc.Failed {
			res.Mismatches++
			problem(r, "step %s: history records %d 503 failures but the ledger answered %d", path, pe.unavailable, kc.Failed)
		}
		res.DuplicateEffects += kc.Calls - recorded
	}

	// Signals: one sent, one received, delivered to the wait with its payload.
	if wait := paths[waitStep]; p.signal != nil && (completed || wait != nil && wait.waitStarted > 0) {
		want := normalize(p.signal)
		lost := false
		if len(signals) != 1 {
			lost = true
			problem(r, "%d SignalReceived events for the one signal sent", len(signals))
		} else if !reflect.DeepEqual(normalize(signals[0]), want) {
			lost = true
			problem(r, "signal received with payload %v, want %v", signals[0], want)
		}
		if pe := paths[waitStep]; pe == nil || pe.completed != 1 || !reflect.DeepEqual(normalize(pe.output), want) {
			lost = true
			var out any
			if pe != nil {
				out = pe.output
			}
			problem(r, "wait %s did not complete with the signal's payload (output %v)", waitStep, out)
		}
		if lost {
			res.LostSignals++
		}
	}
}

// diagnose describes where the history of a workflow that did not
// complete stands.
func diagnose(hist []*weftv1.HistoryEvent) string {
	if len(hist) == 0 {
		return "no history at all"
	}
	if len(hist) == 1 && hist[0].Type == "WorkflowStarted" {
		return fmt.Sprintf("history holds only WorkflowStarted (sequence %d): no decision was ever recorded", hist[0].Sequence)
	}
	var signals []uint64
	for _, ev := range hist {
		switch ev.Type {
		case "SignalReceived":
			signals = append(signals, ev.Sequence)
		case "StepCompleted":
			if ev.StepPath == waitStep && len(signals) > 0 {
				signals = signals[1:]
			}
		case "WaitStarted":
			if len(signals) > 0 {
				return fmt.Sprintf("signal received at sequence %d, before the wait %s began at sequence %d, was never taken by it",
					signals[0], ev.StepPath, ev.Sequence)
			}
		}
	}
	last := hist[len(hist)-1]
	return fmt.Sprintf("history ends with %s at sequence %d (path %q, %d events)", last.Type, last.Sequence, last.StepPath, len(hist))
}

// history reads a workflow's whole history.
func (h *Harness) history(ctx context.Context, id string) ([]*weftv1.HistoryEvent, error) {
	var all []*weftv1.HistoryEvent
	token := ""
	for {
		var resp *connect.Response[weftv1.GetHistoryResponse]
		err := h.retry(ctx, time.Minute, func(ctx context.Context) error {
			var err error
			resp, err = h.wf.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id, PageSize: 1000, PageToken: token}))
			return err
		})
		if err != nil {
			return all, err
		}
		all = append(all, resp.Msg.Events...)
		if token = resp.Msg.NextPageToken; token == "" || len(resp.Msg.Events) == 0 {
			return all, nil
		}
	}
}

// dump writes a workflow's state and history to the run directory.
func (h *Harness) dump(r *run, hist []*weftv1.HistoryEvent) error {
	dir := filepath.Join(h.dir, "workflows")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "workflow %s (%s)\n", r.plan.id, r.plan.definition)
	if r.final != nil {
		fmt.Fprintf(&b, "state: %s\n", protojson.Format(r.final))
	}
	fmt.Fprintf(&b, "history (%d events):\n", len(hist))
	for _, ev := range hist {
		data, _ := protojson.Marshal(ev.Data)
		fmt.Fprintf(&b, "%4d %s %-18s attempt=%d path=%s %s\n", ev.Sequence, ev.Time.AsTime().Format("15:04:05.000"),
			ev.Type, ev.Attempt, ev.StepPath, data)
	}
	keys := h.ledger.Snapshot()
	fmt.Fprintf(&b, "ledger:\n")
	for _, path := range r.plan.httpPaths {
		key := r.plan.id + "/" + path
		kc := keys[key]
		fmt.Fprintf(&b, "  %s calls=%d ok=%d failed=%d\n", key, kc.Calls, kc.OK, kc.Failed)
	}
	return os.WriteFile(filepath.Join(dir, r.plan.id+".txt"), []byte(b.String()), 0o644)
}

// writeReport writes the summary, the problems and the notes to the run
// directory.
func (h *Harness) writeReport(res *Result) error {
	var b strings.Builder
	fmt.Fprintln(&b, res.Summary())
	fmt.Fprintf(&b, "completion: p50=%s p99=%s max=%s\n", res.P50.Round(time.Millisecond), res.P99.Round(time.Millisecond), res.Max.Round(time.Millisecond))
	fmt.Fprintf(&b, "not_started=%d stuck=%d failed=%d start_retries=%d signal_retries=%d unexpected_exits=%d startup_exits=%d\n",
		res.NotStarted, res.Stuck, res.Failed, res.StartRetries, res.SignalRetries, res.UnexpectedExits, res.StartupExits)
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return os.WriteFile(filepath.Join(h.dir, "report.txt"), []byte(b.String()), 0o644)
}
