package chaos

import (
	"context"
	"encoding/json"
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
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// Result is the outcome of a chaos run.
type Result struct {
	// Workflows is the number of workflows checked: those the harness
	// started, their children, and those the triggers started.
	Workflows int
	// AsExpected counts those that ended as their definition must, given
	// their input and what the harness did to them; Completed, Failed and
	// Canceled split them by status.
	AsExpected, Completed, Failed, Canceled int
	// NotStarted, NotClosed and Wrong count the others: never started,
	// still running at the deadline, or closed otherwise than expected
	// (status, output or error type).
	NotStarted, NotClosed, Wrong int
	// OtherOutcomes counts the runs that ended with the other outcome
	// their plan accepts, one a kill may bring about (see outcome.or);
	// they count as expected.
	OtherOutcomes int
	// WorkflowTimeouts counts the closes of runs on their workflow
	// timeout (a redriven run may close so twice), and AttemptTimeouts
	// the task attempts that ran out of time, as the histories record
	// them.
	WorkflowTimeouts, AttemptTimeouts int
	// BeatSteps counts the beat shape's steps that completed after
	// working past their attempt timeout, and BeatHeartbeats the
	// heartbeats of the attempts that completed them; BeatRepeats counts
	// their calls to the ledger beyond the attempts the histories record
	// (an attempt run again after its executor died mid-work), which are
	// among DuplicateEffects.
	BeatSteps, BeatHeartbeats, BeatRepeats int
	// BeatSlotSteps counts those of BeatSteps of a concurrency key that
	// worked past the lease of their slot not renewed.
	BeatSlotSteps int
	// DeletedUnread counts the runs of the retention shape deleted before
	// the harness read their close; they count as expected when every
	// effect succeeded at the ledger.
	DeletedUnread int
	// Shapes counts the workflows per shape.
	Shapes map[string]*ShapeCount
	// Doctor is what the stuck and drift detector found after the run.
	Doctor DoctorCounts
	// Kills are the kills of the run.
	Kills Kills
	// DuplicateEffects is the number of ledger calls beyond the attempts
	// the histories record: calls whose outcome was lost with a killed
	// executor and that ran again. An outside system that honours the
	// Idempotency-Key absorbs them.
	DuplicateEffects int
	// DuplicateDecisions counts history events that record a decision a
	// second time (a step scheduled, completed or started twice, one
	// attempt recorded twice, a second closing event without a redrive,
	// a step run again by a redrive that should not run it, ...), and
	// trigger events that started more than one workflow.
	DuplicateDecisions int
	// LostSignals counts workflows whose signals were not each received
	// once and taken by the wait they were meant for (or one of which
	// satisfied two waits).
	LostSignals int
	// Mismatches counts disagreements between the histories and the
	// ledger: a task key that never reached the ledger or never succeeded
	// there, fewer calls than recorded attempts, unexpected keys.
	Mismatches int
	// P50 and P99 are completion-time percentiles (start to close, by the
	// server's clock) of the workflows that completed as expected.
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

// ShapeCount is the number of workflows of one shape, of those that ended
// as expected, and of those any check found a problem with.
type ShapeCount struct{ Total, AsExpected, WithProblems int }

// DoctorCounts is what the stuck and drift detector reports: workflows
// running with nothing left that will move them on, workflows whose
// stored listing or snapshot disagrees with their history, and workflows
// it could not check.
type DoctorCounts struct{ Stuck, Drifted, Unchecked int }

// Lost is the number of workflows that did not end as expected.
func (r *Result) Lost() int { return r.Workflows - r.AsExpected }

// Summary is the one-line summary of the run.
func (r *Result) Summary() string {
	k := r.Kills
	return fmt.Sprintf("chaos: workflows=%d as_expected=%d (completed=%d failed=%d canceled=%d) lost=%d kills=%d (nats=%d orch=%d exec=%d api=%d) "+
		"duplicate_effects=%d duplicate_decisions=%d mismatches=%d lost_signals=%d stuck=%d drifted=%d unchecked=%d p99_completion=%.2fs",
		r.Workflows, r.AsExpected, r.Completed, r.Failed, r.Canceled, r.Lost(), k.Total(), k.NATS, k.Orchestrator, k.Executor, k.API,
		r.DuplicateEffects, r.DuplicateDecisions, r.Mismatches, r.LostSignals, r.Doctor.Stuck, r.Doctor.Drifted, r.Doctor.Unchecked, r.P99.Seconds())
}

// ShapeLine lists the workflows per shape as ended-as-expected/total,
// with the number that had problems when any did.
func (r *Result) ShapeLine() string {
	var parts []string
	for _, name := range sortedKeys(r.Shapes) {
		c := r.Shapes[name]
		part := fmt.Sprintf("%s=%d/%d", name, c.AsExpected, c.Total)
		if c.WithProblems > 0 {
			part += fmt.Sprintf("(%d with problems)", c.WithProblems)
		}
		parts = append(parts, part)
	}
	return "shapes (as expected/total): " + strings.Join(parts, " ")
}

// Err is nil when every check passed, and otherwise lists the problems.
func (r *Result) Err() error {
	if len(r.Problems) == 0 && r.Lost() == 0 && r.DuplicateDecisions == 0 && r.LostSignals == 0 && r.Mismatches == 0 &&
		r.Doctor == (DoctorCounts{}) {
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
// ledger, runs the stuck and drift detector, and fills res.
func (h *Harness) verify(ctx context.Context, runs []*run, res *Result) error {
	ledger := h.ledger.Snapshot()
	expectedKeys := map[string]bool{}
	for _, r := range runs {
		for _, path := range r.plan.httpPaths {
			expectedKeys[r.plan.key(path)] = true
		}
	}
	if res.Shapes == nil {
		res.Shapes = map[string]*ShapeCount{}
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
			if r.started && !r.plan.retained {
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
			if len(res.Problems) > bad {
				res.Shapes[r.plan.shapeName()].WithProblems++
			}
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
	h.checkDeleted(ctx, runs, res)
	h.checkQueries(ctx, runs, res)
	h.checkFlow(ctx, runs, res)
	h.checkBeatSlots(ctx, runs, res)
	h.doctor(ctx, res)
	sort.Strings(res.Problems)
	slices.Sort(durations)
	if n := len(durations); n > 0 {
		pct := func(p float64) time.Duration { return durations[max(0, int(math.Ceil(p*float64(n)))-1)] }
		res.P50, res.P99, res.Max = pct(0.50), pct(0.99), durations[n-1]
	}
	if note := suspendedNote(runs); note != "" {
		res.Notes = append(res.Notes, note)
	}
	if h.enabled(shapeDeadline) || h.enabled(shapeTaskTimeout) {
		res.Notes = append(res.Notes, fmt.Sprintf("timeouts: %d closes on a workflow timeout, %d task attempts timed out; "+
			"%d runs ended with the other outcome a kill may bring about", res.WorkflowTimeouts, res.AttemptTimeouts, res.OtherOutcomes))
	}
	if len(h.beat) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("heartbeats: %d %s steps completed after working past their %s timeout (%d heartbeats); "+
			"%d of their ledger calls beyond the recorded attempts (attempts run again after their executor died); %d kills of their executors",
			res.BeatSteps, beatTask, beatTimeout, res.BeatHeartbeats, res.BeatRepeats, res.Kills.Beat))
	}
	res.Notes = append(res.Notes, res.ShapeLine())
	return nil
}

// doctor opens the run's store as Weft's parts do and runs checkDoctor
// over it.
func (h *Harness) doctor(ctx context.Context, res *Result) {
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nc, store, err := h.openStore(octx)
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("doctor not run: %v", err))
		return
	}
	defer nc.Close()
	counts, findings, beat, err := checkDoctor(octx, store)
	if err != nil {
		res.Problems = append(res.Problems, fmt.Sprintf("doctor: %v", err))
		return
	}
	res.Doctor = counts
	for _, f := range findings {
		res.Problems = append(res.Problems, "doctor: "+f)
	}
	if len(beat) > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("doctor: %d slot(s) of %s left to their leases, judged by checkBeatSlots on the beat executors' clock instead: %s",
			len(beat), beatSlotScope, strings.Join(beat, "; ")))
	}
}

// openStore connects to the run's NATS cluster and opens its store as
// Weft's parts do; the caller closes the connection.
func (h *Harness) openStore(ctx context.Context) (*nats.Conn, *eventstore.Store, error) {
	nc, err := nats.Connect(h.natsURLs, nats.Timeout(2*time.Second), nats.Name("weft-chaos-doctor"))
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	store, err := eventstore.OpenExisting(ctx, nc, storeConfig)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open the store: %w", err)
	}
	return nc, store, nil
}

// checkDoctor is `weft doctor`'s check, with its defaults, over the run's
// store once every workflow closed. It returns the counts of workflows it
// finds stuck and drifted, and a line per finding; but the findings of a
// slot of the beat shape's slotted step come apart (beat), and count in
// neither: its lease ends were written by the beat executors' clock, ten
// times as fast as the wall clock doctor reads them by, so a lease left
// to end by itself looks held ten times as long. checkBeatSlots judges
// those slots by the executors' clock.
func checkDoctor(ctx context.Context, store *eventstore.Store) (counts DoctorCounts, lines, beat []string, err error) {
	rep, err := doctor.Check(ctx, store, doctor.Options{})
	if err != nil {
		return DoctorCounts{}, nil, nil, err
	}
	counts = DoctorCounts{Unchecked: rep.Unchecked}
	for _, r := range rep.Problems {
		stuck, drifted := false, false
		for _, f := range r.Findings {
			line := fmt.Sprintf("%s %s (%s): %s", f.Kind, r.ID, r.Definition, f.Reason)
			if f.Kind == doctor.FindingStuck && strings.Contains(f.Reason, "of step "+beatSlotScope+" until ") {
				beat = append(beat, line)
				continue
			}
			lines = append(lines, line)
			stuck = stuck || f.Kind == doctor.FindingStuck
			drifted = drifted || f.Kind == doctor.FindingDrifted
		}
		if stuck {
			counts.Stuck++
		}
		if drifted {
			counts.Drifted++
		}
	}
	return counts, lines, beat, nil
}

// pathEvents gathers the events of one step path.
type pathEvents struct {
	scheduled     map[int]int // per gen
	keys          []string
	attemptFailed map[int]int // per attempt number
	unavailable   int         // failed attempts of type unavailable (the ledger's 503)
	failedAtts    int
	// timeouts counts the attempts that ran out of time.
	timeouts int
	// taskCompleted and taskFailed count StepCompleted and StepFailed
	// events of task attempts; completed and failed count all of them
	// (a catch completes the step it handled without an attempt).
	taskCompleted, taskFailed int
	completed, failed         int
	// suspended counts StepSuspended events: the last attempts of the
	// step's schedulings that suspended it.
	suspended int
	skipped   int
	// completedNow, startedNow and waitStartedNow count since the last
	// redrive: a redrive may run a loop again.
	completedNow, startedNow, waitStartedNow int
	childStarted                             int
	output                                   any
}

// afterFailure are the events a failed workflow still records: results of
// tasks and children it had started, and timers of its steps.
var afterFailure = map[string]bool{"StepCompleted": true, "StepAttemptFailed": true, "StepFailed": true, "TimerFired": true}

// statusName is a workflow status as plans spell it.
func statusName(s weftv1.WorkflowStatus) string {
	return strings.TrimPrefix(s.String(), "WORKFLOW_STATUS_")
}

// mismatch says how a closed workflow differs from its plan's outcome, or
// returns "".
func mismatch(want outcome, wf *weftv1.Workflow) string {
	got := statusName(wf.Status)
	if got != want.status {
		var e string
		if wf.Error != nil {
			e = fmt.Sprintf(": %s at %q: %s", wf.Error.Type, wf.Error.StepPath, wf.Error.Message)
		}
		return fmt.Sprintf("closed %s%s, want %s", got, e, want.status)
	}
	switch got {
	case "COMPLETED":
		if out := normalize(wf.Output.AsInterface()); !reflect.DeepEqual(out, want.output) {
			g, _ := json.Marshal(out)
			w, _ := json.Marshal(want.output)
			return fmt.Sprintf("completed with output %s, want %s", g, w)
		}
		if want.search == nil {
			break
		}
		if got := normalize(wf.SearchAttributes.AsMap()); !reflect.DeepEqual(got, want.search) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want.search)
			return fmt.Sprintf("completed with search attributes %s, want %s", g, w)
		}
	case "FAILED":
		e := wf.Error
		if e.GetType() != want.errType || want.errStep != "" && e.GetStepPath() != want.errStep {
			return fmt.Sprintf("failed with %s at %q (%s), want %s at %q", e.GetType(), e.GetStepPath(), e.GetMessage(), want.errType, want.errStep)
		}
	}
	return ""
}

// shapeName names the shape of a plan in the counts.
func (p *plan) shapeName() string {
	if p.parent != "" {
		return shapeNames[p.shape] + ".kid"
	}
	return shapeNames[p.shape]
}

// check checks one workflow; the caller holds the lock over res.
func (h *Harness) check(r *run, hist []*weftv1.HistoryEvent, histErr error, ledger map[string]KeyCount, res *Result,
	durations *[]time.Duration, problem func(*run, string, ...any)) {
	p := r.plan
	res.Workflows++
	sc := res.Shapes[p.shapeName()]
	if sc == nil {
		sc = &ShapeCount{}
		res.Shapes[p.shapeName()] = sc
	}
	sc.Total++
	label := p.definition
	if p.variant != "" {
		label += " " + p.variant
	}
	asExpected := false
	ended := p.want // the outcome it ended with, when as expected
	switch {
	case !r.started:
		res.NotStarted++
		problem(r, "never started (%s): %v", label, r.startErr)
		return
	case r.deleted && r.final == nil:
		// Its close was not read: the ledger says whether it went through.
		res.DeletedUnread++
		if missing := p.unsucceeded(ledger); len(missing) > 0 {
			res.Wrong++
			problem(r, "deleted before its close was read, with effects that never succeeded (%s): %v", label, missing)
			break
		}
		asExpected = true
	case r.final == nil || !closedStatus(r.final.Status):
		res.NotClosed++
		status := "unknown"
		if r.final != nil {
			status = r.final.Status.String()
			for _, s := range r.final.Steps {
				if s.Status != weftv1.StepStatus_STEP_STATUS_COMPLETED && s.Status != weftv1.StepStatus_STEP_STATUS_SKIPPED &&
					s.Status != weftv1.StepStatus_STEP_STATUS_PENDING {
					status += fmt.Sprintf(", step %s %s (attempts %d)", s.Path, s.Status, s.Attempts)
				}
			}
		}
		problem(r, "did not close before the deadline (%s): %s", label, status)
	default:
		msg := mismatch(p.want, r.final)
		if msg != "" && p.want.or != nil && mismatch(*p.want.or, r.final) == "" {
			msg, ended = "", *p.want.or
			res.OtherOutcomes++
		}
		if msg != "" {
			res.Wrong++
			problem(r, "%s (%s)", msg, label)
			break
		}
		asExpected = true
		if c, o := r.final.CreatedTime, r.final.ClosedTime; ended.status == "COMPLETED" && c != nil && o != nil {
			*durations = append(*durations, o.AsTime().Sub(c.AsTime()))
		}
	}
	if asExpected {
		res.AsExpected++
		sc.AsExpected++
		switch ended.status {
		case "COMPLETED":
			res.Completed++
		case "FAILED":
			res.Failed++
		case "CANCELED":
			res.Canceled++
		}
	}
	if r.signalErr != nil {
		problem(r, "signal not sent (%s): %v", label, r.signalErr)
	}
	if r.actionErr != nil {
		problem(r, "cancel, redrive or resume not done (%s): %v", label, r.actionErr)
	}
	if r.pausedView != "" {
		problem(r, "while its definition was paused (%s): %s", label, r.pausedView)
	}
	if r.suspendedView != "" {
		problem(r, "shown SUSPENDED otherwise than planned (%s): %s", label, r.suspendedView)
	}
	if p.redrive != nil && !r.redriven && r.final != nil && closedStatus(r.final.Status) {
		problem(r, "not redriven (%s): it first closed %s with %v, the redrive waits for %s at %q", label,
			r.final.Status, r.firstFailure, p.redrive.errType, p.redrive.errStep)
	}
	if histErr != nil {
		problem(r, "history: %v", histErr)
		return
	}
	if p.retained {
		// Its history is deleted: the ledger alone shows its effects.
		if missing := p.unsucceeded(ledger); asExpected && len(missing) > 0 {
			res.Mismatches += len(missing)
			problem(r, "effects that never succeeded at the ledger: %v", missing)
		}
		return
	}

	// Count the events: every decision must be recorded once (once per
	// redrive for the loops a redrive runs again).
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
	consumed := map[float64]int{} // SignalReceived sequence -> waits it satisfied
	closedAt, closings := -1, 0
	var late []string
	for i, ev := range hist {
		counts[ev.Type]++
		data, _ := ev.Data.AsInterface().(map[string]any)
		pe := at(ev.StepPath)
		if closedAt >= 0 && ev.Type != "WorkflowRetried" && ev.Type != "WorkflowExpired" && !closingEvent(ev.Type) &&
			(hist[closedAt].Type != "WorkflowFailed" || !afterFailure[ev.Type]) {
			late = append(late, fmt.Sprintf("%s at sequence %d", ev.Type, ev.Sequence))
		}
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
			if e, _ := data["error"].(map[string]any); e != nil && e["type"] == "timeout" {
				res.AttemptTimeouts++
				pe.timeouts++
			}
		case "StepCompleted":
			pe.completed++
			pe.completedNow++
			if ev.Attempt > 0 {
				pe.taskCompleted++
			}
			pe.output = data["output"]
			if seq, ok := data["signal_sequence"].(float64); ok {
				consumed[seq]++
			}
		case "StepFailed":
			pe.failed++
			if ev.Attempt > 0 {
				pe.taskFailed++
				if e, _ := data["error"].(map[string]any); e != nil && e["type"] == "timeout" {
					res.AttemptTimeouts++
					pe.timeouts++
				}
			}
		case "StepSkipped":
			pe.skipped++
		case "StepSuspended":
			pe.suspended++
		case "StepStarted":
			pe.startedNow++
			if pe.startedNow > 1 {
				dup("step %s started %d times", ev.StepPath, pe.startedNow)
			}
		case "WaitStarted":
			pe.waitStartedNow++
			if pe.waitStartedNow > 1 {
				dup("step %s began waiting %d times", ev.StepPath, pe.waitStartedNow)
			}
		case "ChildStarted":
			pe.childStarted++
		case "TimerScheduled":
			id, _ := data["timer_id"].(string)
			timersScheduled[id]++
		case "TimerFired":
			id, _ := data["timer_id"].(string)
			timersFired[id]++
		case "SignalReceived":
			signals = append(signals, normalize(data["payload"]))
		case "WorkflowRetried":
			if closedAt < 0 || hist[closedAt].Type != "WorkflowFailed" {
				problem(r, "redriven at sequence %d while not failed", ev.Sequence)
			}
			closedAt, closings = -1, 0
			for _, pe := range paths {
				pe.completedNow, pe.startedNow, pe.waitStartedNow = 0, 0, 0
			}
		case "WorkflowCompleted", "WorkflowFailed", "WorkflowCanceled":
			if e, _ := data["error"].(map[string]any); ev.Type == "WorkflowFailed" && ev.StepPath == "" && e != nil && e["type"] == "timeout" {
				res.WorkflowTimeouts++
			}
			closings++
			if closings > 1 {
				dup("a second closing event (%s at sequence %d) without a redrive", ev.Type, ev.Sequence)
			}
			if closedAt < 0 {
				closedAt = i
			}
		}
		if ev.Type == "StepCompleted" && pe.completedNow > 1 {
			dup("step %s completed %d times", ev.StepPath, pe.completedNow)
		}
	}
	if counts["WorkflowStarted"] != 1 {
		dup("%d WorkflowStarted events", counts["WorkflowStarted"])
	}
	if n := counts["WorkflowRetried"]; n > 0 && p.redrive == nil || n > 1 {
		dup("%d WorkflowRetried events; the harness redrives %d time(s)", n, btoi(p.redrive != nil))
	}
	if len(late) > 0 {
		problem(r, "%d event(s) after the workflow closed that it may not record then: %s", len(late), strings.Join(late, ", "))
	}
	if p.parent != "" && len(hist) > 0 {
		data, _ := hist[0].Data.AsInterface().(map[string]any)
		parent, _ := data["parent"].(map[string]any)
		if id, _ := parent["workflow_id"].(string); id != p.parent {
			problem(r, "started with parent %v, want %s", data["parent"], p.parent)
		}
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
	isHTTP := map[string]bool{}
	for _, path := range p.httpPaths {
		isHTTP[path] = true
	}
	wfCompleted := r.final != nil && r.final.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED
	for _, path := range sortedKeys(paths) {
		pe := paths[path]
		if path == "" {
			continue
		}
		for gen, n := range pe.scheduled {
			if n > 1 {
				dup("step %s gen %d scheduled %d times", path, gen, n)
			}
		}
		// A redrive runs again the steps it releases, each resume the
		// suspended step.
		gens := 1 + btoi(p.mayRunAgain(path))
		if p.suspend != nil && path == p.suspend.step {
			gens += counts["WorkflowResumed"]
		}
		if n := len(pe.scheduled); n > gens {
			dup("step %s scheduled in %d generations; a redrive runs again only %v, a resume the suspended step", path, n, p.redrivePaths())
		}
		if n := pe.childStarted; n > 1 && !p.mayRunAgain(path) || n > 2 {
			dup("step %s started %d children", path, n)
		}
		for _, key := range pe.keys {
			if want := p.key(path); key != want {
				res.Mismatches++
				problem(r, "step %s scheduled with idempotency key %q, want %q", path, key, want)
			}
		}
		for att, n := range pe.attemptFailed {
			if n > 1 {
				dup("step %s attempt %d failure recorded %d times", path, att, n)
			}
		}
		if pe.taskFailed > 0 && isHTTP[path] && !p.failPaths[path] {
			problem(r, "step %s failed", path)
		}
		if wfCompleted && pe.completed == 0 && pe.skipped == 0 && !p.failPaths[path] && !p.openPaths[path] {
			problem(r, "step %s never completed in a completed workflow", path)
		}
	}
	if !asExpected && r.started {
		problem(r, "%s", diagnose(hist))
	}
	if p.suspend != nil && asExpected {
		for _, msg := range checkSuspended(p, hist, ledger) {
			problem(r, "%s", msg)
		}
	}
	if p.shape == shapeBeat && asExpected {
		for _, msg := range checkBeat(p, paths, ledger, res) {
			problem(r, "%s", msg)
		}
	}

	// The ledger must have seen every task that completed, and every
	// effect of a workflow that ended as expected, and at least the
	// attempts the history records.
	for _, path := range p.httpPaths {
		key := p.key(path)
		kc := ledger[key]
		pe := paths[path]
		if pe == nil {
			pe = &pathEvents{}
		}
		recorded := pe.failedAtts + pe.taskCompleted + pe.taskFailed + pe.suspended
		if pe.taskCompleted == 0 {
			if asExpected && slices.Contains(p.effects, path) {
				res.Mismatches++
				problem(r, "step %s: its effect was never recorded", path)
			} else if kc.Calls < recorded {
				res.Mismatches++
				problem(r, "step %s: history records %d failed attempts but the ledger saw %d calls", path, recorded, kc.Calls)
			}
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
		if kc.Calls < recorded {
			res.Mismatches++
			problem(r, "step %s: history records %d attempts (%d failed, %d completed, %d failed the step) but the ledger saw %d calls",
				path, recorded, pe.failedAtts, pe.taskCompleted, pe.taskFailed, kc.Calls)
			continue
		}
		if pe.unavailable > kc.Failed {
			res.Mismatches++
			problem(r, "step %s: history records %d 503 failures but the ledger answered %d", path, pe.unavailable, kc.Failed)
		}
		res.DuplicateEffects += kc.Calls - recorded
	}

	// Signals: each sent one received once, each taken by one wait, and
	// each wait completed with its payload.
	lost := false
	for seq, n := range consumed {
		if n > 1 {
			lost = true
			problem(r, "the signal at sequence %v satisfied %d waits", seq, n)
		}
	}
	if r.signalErr == nil {
		for _, s := range p.signals {
			want := normalize(s.payload)
			n := 0
			for _, got := range signals {
				if reflect.DeepEqual(got, want) {
					n++
				}
			}
			if n != 1 {
				lost = true
				problem(r, "%d SignalReceived events for the signal %s %v sent once", n, s.name, want)
			}
		}
	}
	for _, path := range sortedKeys(p.waits) {
		want := normalize(p.waits[path])
		pe := paths[path]
		if !wfCompleted && (pe == nil || pe.waitStartedNow == 0 && pe.completed == 0) {
			continue
		}
		if pe == nil || pe.completed != 1 || !reflect.DeepEqual(normalize(pe.output), want) {
			lost = true
			var out any
			if pe != nil {
				out = pe.output
			}
			problem(r, "wait %s did not complete with its signal's payload (output %v, want %v)", path, out, want)
		}
	}
	if lost {
		res.LostSignals++
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// diagnose describes where the history of a workflow that did not end as
// expected stands.
func diagnose(hist []*weftv1.HistoryEvent) string {
	if len(hist) == 0 {
		return "no history at all"
	}
	if len(hist) == 1 && hist[0].Type == "WorkflowStarted" {
		return fmt.Sprintf("history holds only WorkflowStarted (sequence %d): no decision was ever recorded", hist[0].Sequence)
	}
	taken := map[uint64]bool{}
	for _, ev := range hist {
		data, _ := ev.Data.AsInterface().(map[string]any)
		if seq, ok := data["signal_sequence"].(float64); ok && ev.Type == "StepCompleted" {
			taken[uint64(seq)] = true
		}
	}
	var untaken []string
	for _, ev := range hist {
		if ev.Type == "SignalReceived" && !taken[ev.Sequence] {
			data, _ := ev.Data.AsInterface().(map[string]any)
			untaken = append(untaken, fmt.Sprintf("%v at sequence %d", data["name"], ev.Sequence))
		}
	}
	last := hist[len(hist)-1]
	s := fmt.Sprintf("history ends with %s at sequence %d (path %q, %d events)", last.Type, last.Sequence, last.StepPath, len(hist))
	if len(untaken) > 0 {
		s += "; signals no wait took: " + strings.Join(untaken, ", ")
	}
	return s
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
	fmt.Fprintf(&b, "not_started=%d not_closed=%d wrong=%d start_retries=%d signal_retries=%d unexpected_exits=%d startup_exits=%d\n",
		res.NotStarted, res.NotClosed, res.Wrong, res.StartRetries, res.SignalRetries, res.UnexpectedExits, res.StartupExits)
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	return os.WriteFile(filepath.Join(h.dir, "report.txt"), []byte(b.String()), 0o644)
}
