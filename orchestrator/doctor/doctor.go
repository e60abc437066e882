// Package doctor checks a running Weft from outside, reading only. For
// every run the workflow index lists it folds the run's history and says
// whether something will move it on (a task command in flight, a timer
// scheduled, a child running, a wait for a signal) and whether the index
// agrees with history. It then checks that the world agrees with what
// history expects: the child exists, the timer is still scheduled, the
// task command still waits for an executor or its result waits to be
// recorded.
//
// A run nothing can move is stuck; an index entry that disagrees with
// history is drifted. Runs whose history changed within a grace period
// are taken as moving, so a check of a busy Weft does not report what is
// merely in progress.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Verdict says where a run stands.
type Verdict string

// Verdicts.
const (
	// Moving: something in flight will move it on.
	Moving Verdict = "moving"
	// Waiting: only a signal, a resume of its suspended steps, or a slot
	// of its definition's concurrency will move it on.
	Waiting Verdict = "waiting"
	// Stuck: nothing will move it on.
	Stuck Verdict = "stuck"
	// Closed: it completed, failed or was canceled.
	Closed Verdict = "closed"
	// Missing: the index lists it, but it has no history.
	Missing Verdict = "missing"
	// Unchecked: it could not be read or judged (NATS did not answer,
	// say), even when tried again.
	Unchecked Verdict = "unchecked"
	// Gone: it has no history (deleted), but something of it is left: a
	// concurrency slot of a task step that an attempt of it holds, or a
	// slot of its definition's concurrency.
	Gone Verdict = "gone"
)

// FindingKind is a kind of problem.
type FindingKind string

// Finding kinds.
const (
	// FindingStuck: nothing will move the run on.
	FindingStuck FindingKind = "stuck"
	// FindingDrifted: the index disagrees with history.
	FindingDrifted FindingKind = "drifted"
	// FindingUnchecked: the run could not be checked; the reason is the
	// last error.
	FindingUnchecked FindingKind = "unchecked"
)

// Finding is one problem with a run, and why.
type Finding struct {
	Kind   FindingKind `json:"kind"`
	Reason string      `json:"reason"`
}

// Run is what a check found about one run.
type Run struct {
	ID         string `json:"id"`
	Definition string `json:"definition,omitempty"`
	// IndexStatus is the status the index lists; empty when it does not
	// list the run (found through a parent or child).
	IndexStatus string `json:"index_status"`
	// Status is the status history says; empty when there is no history.
	Status  string           `json:"status"`
	Verdict Verdict          `json:"verdict"`
	Movers  []workflow.Mover `json:"movers,omitempty"`
	// Findings are its problems, if any.
	Findings []Finding `json:"findings,omitempty"`
	// LastChange is when its history last changed.
	LastChange time.Time `json:"last_change,omitzero"`
	// Paused: it is open (running or suspended) and its definition is
	// paused, so its task steps wait for the resume (weft def resume).
	Paused bool `json:"paused,omitempty"`
}

// Stuck reports whether nothing will move the run on.
func (r *Run) Stuck() bool { return r.has(FindingStuck) }

// Drifted reports whether the index disagrees with the run's history.
func (r *Run) Drifted() bool { return r.has(FindingDrifted) }

func (r *Run) has(k FindingKind) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Kind == k })
}

// Report is the outcome of a check.
type Report struct {
	// At is when the check began.
	At time.Time `json:"at"`
	// Entries counts the index entries checked.
	Entries int `json:"entries"`
	// Running counts the runs whose history says RUNNING; Moving, Waiting,
	// Stuck and those of Unchecked that were read divide them.
	Running int `json:"running"`
	Moving  int `json:"moving"`
	Waiting int `json:"waiting"`
	Stuck   int `json:"stuck"`
	// Queued and Suspended count the Waiting runs that wait for a slot of
	// their definition's concurrency and for a resume of their suspended
	// steps; the other Waiting runs wait for a signal.
	Queued    int `json:"queued"`
	Suspended int `json:"suspended"`
	// Drifted counts the runs the index disagrees about.
	Drifted int `json:"drifted"`
	// Paused counts the open runs whose definition is paused.
	Paused int `json:"paused"`
	// Unchecked counts the runs that could not be checked: a check with
	// any is not OK, since it cannot say that they are not stuck.
	Unchecked int `json:"unchecked"`
	// Problems are the runs stuck, drifted or unchecked, by id.
	Problems []Run `json:"problems"`
	// Runs are every run checked, by id (Options.All).
	Runs []Run `json:"runs,omitempty"`
}

// OK reports whether every run was checked and none is stuck or drifted.
func (r *Report) OK() bool { return r.Stuck == 0 && r.Drifted == 0 && r.Unchecked == 0 }

// Summary is the report in one line.
func (r *Report) Summary() string {
	s := fmt.Sprintf("%d running: %d moving, %d waiting for a signal", r.Running, r.Moving, r.Waiting-r.Queued-r.Suspended)
	if r.Queued > 0 {
		s += fmt.Sprintf(", %d queued for a slot", r.Queued)
	}
	if r.Suspended > 0 {
		s += fmt.Sprintf(", %d suspended until resumed", r.Suspended)
	}
	s += fmt.Sprintf(", %d stuck, %d drifted", r.Stuck, r.Drifted)
	switch {
	case r.Unchecked == 1:
		s += "; 1 run could not be checked"
	case r.Unchecked > 1:
		s += fmt.Sprintf("; %d runs could not be checked", r.Unchecked)
	}
	return s
}

// Options tunes a check.
type Options struct {
	// Grace: a run whose history changed less than Grace ago is taken as
	// moving, and its index entry is not compared yet (the index follows
	// history with a delay). Default 10s.
	Grace time.Duration
	// TimerGrace is how long past its due time a timer may still not have
	// fired. Default 1m.
	TimerGrace time.Duration
	// ExecutorGrace is how long a task type's commands may wait with no
	// executor asking for them, holding one or handed one (executors
	// restarting, or scaled to none for a while). Default 1m.
	ExecutorGrace time.Duration
	// OrchestratorGrace is the same for the inputs that wait for an
	// orchestrator: a start, signal or cancel, a task's result, a fired
	// timer, a deletion due. Default 1m.
	OrchestratorGrace time.Duration
	// InputGrace is how long a start, signal or cancel handed to an
	// orchestrator may stay unsettled (failing, and handed out again)
	// before its run is judged as if no input waited. Default 5m.
	InputGrace time.Duration
	// All lists every run in Report.Runs, not only the problems.
	All bool
	// Concurrency bounds the histories read at once. Default 8.
	Concurrency int
	// Attempts is how many times a run whose read or judgement fails is
	// tried before it is reported unchecked. Default 3.
	Attempts int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Definitions is the cache of compiled definitions to use, a node's
	// say. Default: one of the check's own.
	Definitions *runs.Definitions
	// Retention is the servers' --retention: how long a closed run of a
	// revision without a retention of its own is kept. Zero: only the
	// runs of revisions with their own are checked for a deletion
	// scheduled.
	Retention time.Duration
}

func (o *Options) defaults() {
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.TimerGrace <= 0 {
		o.TimerGrace = time.Minute
	}
	if o.ExecutorGrace <= 0 {
		o.ExecutorGrace = time.Minute
	}
	if o.OrchestratorGrace <= 0 {
		o.OrchestratorGrace = time.Minute
	}
	if o.InputGrace <= 0 {
		o.InputGrace = 5 * time.Minute
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Check checks every run the index lists, and the runs they name as
// parent or child that it does not list. It reads one history per run and
// writes nothing. A run that cannot be read or judged is tried again, then
// reported unchecked, and the check goes on; the error returned is a
// failure to read what every run's check needs (the index, the history
// stream's subjects, the pauses) or the context's end.
func Check(ctx context.Context, store *eventstore.Store, opts Options) (*Report, error) {
	opts.defaults()
	if opts.Definitions == nil {
		opts.Definitions = runs.NewDefinitions(store)
	}
	c := &checker{store: store, opts: opts, now: opts.Now(), defs: opts.Definitions,
		runs: map[string]*run{}, tasks: map[string]taskQueue{}, keys: map[string]keySlots{}, takers: map[eventstore.Source]takers{}}
	sums, err := store.Summaries(ctx)
	if err != nil {
		return nil, err
	}
	indexed := make([]*run, len(sums))
	for i, sum := range sums {
		r := &run{Run: Run{ID: sum.ID, Definition: sum.Definition, IndexStatus: sum.Status}, indexed: true, indexSearch: sum.Search}
		indexed[i] = r
		c.runs[sum.ID] = r
	}
	// So are the runs with a history the index does not list.
	ids, err := store.HistoryRuns(ctx)
	if err != nil {
		return nil, err
	}
	first := indexed
	for _, id := range ids {
		if c.runs[id] == nil {
			r := &run{Run: Run{ID: id}}
			c.runs[id] = r
			first = append(first, r)
		}
	}
	if err := c.each(ctx, first, c.load); err != nil {
		return nil, err
	}
	// The parents and children the index does not list are read too, once.
	all := first
	for round := first; len(round) > 0; {
		var found []*run
		for _, r := range round {
			for _, id := range r.related() {
				if c.runs[id] == nil {
					nr := &run{Run: Run{ID: id}}
					c.runs[id] = nr
					found = append(found, nr)
				}
			}
		}
		if err := c.each(ctx, found, c.load); err != nil {
			return nil, err
		}
		all, round = append(all, found...), found
	}
	// The runs that could not be read are known now, and stay so while
	// the runs are judged (a judge reads its children's).
	for _, r := range all {
		r.unread = r.unchecked != nil
	}
	if err := c.each(ctx, all, c.judge); err != nil {
		return nil, err
	}
	gone, err := c.stepSlots(ctx)
	if err != nil {
		return nil, err
	}
	all = append(all, gone...)
	if gone, err = c.runSlots(ctx); err != nil {
		return nil, err
	}
	all = append(all, gone...)
	pauses, err := store.DefinitionPauses(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{At: c.now, Entries: len(sums), Problems: []Run{}}
	slices.SortFunc(all, func(a, b *run) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range all {
		if r.unchecked != nil {
			r.Verdict = Unchecked
			r.Findings = []Finding{{Kind: FindingUnchecked, Reason: r.unchecked.Error()}}
			rep.Unchecked++
			if open(r.Status) {
				rep.Running++
			}
			rep.Problems = append(rep.Problems, r.Run)
			if opts.All {
				rep.Runs = append(rep.Runs, r.Run)
			}
			continue
		}
		if (!r.indexed && r.st == nil || r.deleting) && r.Verdict != Gone && len(r.Findings) == 0 {
			continue // a child that does not exist (its parent says so), or a run being deleted
		}
		if open(r.Status) {
			rep.Running++
			if _, r.Paused = pauses[r.st.Definition]; r.Paused {
				rep.Paused++
			}
			switch r.Verdict {
			case Moving:
				rep.Moving++
			case Waiting:
				rep.Waiting++
				switch r.Status {
				case string(workflow.StatusQueued):
					rep.Queued++
				case string(workflow.StatusSuspended):
					rep.Suspended++
				}
			}
		}
		if r.Stuck() {
			rep.Stuck++
		}
		if r.Drifted() {
			rep.Drifted++
		}
		if r.Stuck() || r.Drifted() {
			rep.Problems = append(rep.Problems, r.Run)
		}
		if opts.All {
			rep.Runs = append(rep.Runs, r.Run)
		}
	}
	return rep, nil
}

// run is one run under check.
type run struct {
	Run
	indexed bool
	// indexSearch is the search attributes its index entry holds.
	indexSearch map[string]any
	// st is the folded history; nil when there is none.
	st      *workflow.State
	lastSeq uint64
	// broken is why the history could not be folded to its end.
	broken error
	// partial: its history does not fold to its end, and an orchestrator
	// failed it (st is the fold as far as it goes, as the orchestrator's
	// follow-ups take it). Such a history takes no input: a child's
	// outcome reaches it and is never recorded.
	partial bool
	// deleting: it is not listed because its deletion is under way.
	deleting bool
	// unchecked is why it could not be read or judged, tried again.
	unchecked error
	// unread: it could not be read (set before any run is judged).
	unread bool
}

// related returns the ids of the run's running children, the children it
// no longer needs (to be canceled) and its parent.
func (r *run) related() []string {
	if r.st == nil {
		return nil
	}
	var ids []string
	for _, m := range workflow.Movers(r.st) {
		if m.Kind == workflow.MoverChild {
			ids = append(ids, m.ChildID)
		}
	}
	for _, s := range workflow.AbandonedSteps(r.st) {
		ids = append(ids, s.ChildID)
	}
	for _, m := range keptChildren(r.st) {
		ids = append(ids, m.ChildID)
	}
	if p := r.st.Parent; p != nil && r.st.Status.Terminal() {
		ids = append(ids, p.WorkflowID)
	}
	return ids
}

func (r *run) add(k FindingKind, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Kind: k, Reason: fmt.Sprintf(format, args...)})
}

// taskQueue is a look at a task type's consumer: one serves every run.
type taskQueue struct {
	q   eventstore.TaskQueue
	err error
}

type checker struct {
	store *eventstore.Store
	opts  Options
	now   time.Time
	defs  *runs.Definitions
	// runs holds every run read, by id; it is only added to before the
	// runs are judged.
	runs map[string]*run

	mu    sync.Mutex
	tasks map[string]taskQueue
	ext   *eventstore.ExternalInputs
	// keys are the concurrency keys whose slots were looked at, by
	// definition and key: one look serves every run queued on the key.
	keys map[string]keySlots
	// takers are the orchestrators' consumers looked at, by source.
	takers map[eventstore.Source]takers
}

// lookAgain are the pauses before the looks again at an orchestrators'
// consumer that none asks for inputs (takersOf).
var lookAgain = []time.Duration{500 * time.Millisecond, 1500 * time.Millisecond, 5 * time.Second}

// takers is a look at one of the orchestrators' consumers: err is
// ErrNotFound when there is none.
type takers struct {
	t   eventstore.Takers
	err error
}

// keySlots is what a look at a concurrency key's slots found: who holds
// them, and whether every slot is held by a run that closed or is gone.
type keySlots struct {
	holders []string
	blocked bool
}

// each calls fn for every run not yet found unchecked,
// Options.Concurrency at a time. A run whose fn fails is tried again, up
// to Options.Attempts in all with a short pause between, and then marked
// unchecked with the last error: one run NATS does not answer for ends
// no check. When maxUncheckedInARow runs in a row end unchecked, NATS is
// taken as not answering at all and the check ends with the last error,
// rather than grind through every run. It returns that, or the
// context's error if it ended.
func (c *checker) each(ctx context.Context, runs []*run, fn func(context.Context, *run) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var streak atomic.Int64
	sem := make(chan struct{}, c.opts.Concurrency)
	for _, r := range runs {
		if r.unchecked != nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			pause := 100 * time.Millisecond
			for attempt := 1; ; attempt++ {
				err := c.try(ctx, r, fn)
				if err == nil {
					streak.Store(0)
					return
				}
				if ctx.Err() != nil {
					return
				}
				if attempt >= c.opts.Attempts {
					r.unchecked = err
					if streak.Add(1) >= maxUncheckedInARow {
						cancel(fmt.Errorf("%d runs in a row could not be checked, the last %s: %w", maxUncheckedInARow, r.ID, err))
					}
					return
				}
				select {
				case <-time.After(pause):
				case <-ctx.Done():
					return
				}
				pause *= 4
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// maxUncheckedInARow is how many runs in a row may end unchecked before a
// check gives up.
const maxUncheckedInARow = 32

// try calls fn for r once, from what r was before any attempt: the
// findings, verdict and movers an attempt that failed half way made go.
func (c *checker) try(ctx context.Context, r *run, fn func(context.Context, *run) error) error {
	if hook := testHookTry; hook != nil {
		if err := hook(r.ID); err != nil {
			return err
		}
	}
	r.Findings, r.Verdict, r.Movers, r.deleting = nil, "", nil, false
	return fn(ctx, r)
}

// testHookTry, when set by a test, is called before each attempt at a
// run, and an error it returns is the attempt's.
var testHookTry func(id string) error

// load reads and folds r's history.
func (c *checker) load(ctx context.Context, r *run) error {
	l, err := runs.ReadFromSnapshot(ctx, c.store, r.ID)
	if err != nil {
		return err
	}
	st := l.State
	r.partial = false
	if st.Events == 0 && len(l.Msgs) == 0 {
		return nil
	}
	r.lastSeq, r.LastChange = l.SnapshotSeq, st.Now
	for _, m := range l.Msgs {
		r.lastSeq = m.Seq
		if m.Time.After(r.LastChange) {
			r.LastChange = m.Time
		}
	}
	if m, err := runs.Fold(st, l.Msgs, nil); m != nil {
		r.broken = err
		if m.Err == nil {
			r.broken = fmt.Errorf("history record at seq %d: %w", m.Seq, err)
		}
		if errors.Is(err, events.ErrNewer) {
			// A rolling upgrade under way: not this version's to judge.
			r.unchecked = fmt.Errorf("its history holds a record of a newer version of Weft (check it with that version's weft doctor): %w", r.broken)
		}
	}
	if st.Events == 0 {
		// Not even its start could be read.
		st.Status = workflow.StatusRunning
	}
	if r.broken != nil && len(l.Msgs) > 0 {
		// An orchestrator fails a workflow whose history it cannot read by
		// appending WorkflowFailed: then it is closed, as the API shows it.
		if last := l.Msgs[len(l.Msgs)-1]; last.Err == nil {
			if evs := last.Record.Events; evs[len(evs)-1].Terminal() {
				st.Status, r.broken, r.partial = workflow.StatusFailed, nil, true
				if st.Closed.IsZero() {
					// Closed where the fold stopped, as the orchestrator
					// takes it (runs.FoldMessages) for its follow-ups: the
					// deletion is scheduled from it.
					st.Closed = st.Now
				}
			}
		}
	}
	r.st, r.Status = st, string(st.Shown())
	if r.Definition == "" {
		r.Definition = st.Definition
	}
	return nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// deleted reports whether run wf, listed but without history, was deleted
// since the index was read (its entry is gone too), or whether it is
// being deleted (its deletion came due and was not settled).
func (c *checker) deleted(ctx context.Context, wf string) (gone, underWay bool, err error) {
	if _, err := c.store.GetSummary(ctx, wf); errors.Is(err, eventstore.ErrNotFound) {
		return true, false, nil
	} else if err != nil {
		return false, false, err
	}
	underWay, err = c.store.DeletionUnderWay(ctx, wf)
	return false, underWay, err
}

// deletionUntaken returns why r's deletion, which came due, moves
// nothing on: no orchestrator takes deletions (untaken); "" when one does.
// Until one does, the run is kept, or stays half deleted.
func (c *checker) deletionUntaken(ctx context.Context, r *run) (string, error) {
	return c.untaken(ctx, r, eventstore.SourceRetention, "its deletion came due, and")
}

// sameSearch reports whether the search attributes a and b are the same,
// compared as the index stores them.
func sameSearch(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = maps.Clone(a), maps.Clone(b)
	if events.NormalizeSearch(a) != nil || events.NormalizeSearch(b) != nil {
		return true // not this check's to judge
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		if t, isTime := v.(time.Time); isTime {
			if u, ok := w.(time.Time); !ok || !t.Equal(u) {
				return false
			}
			continue
		}
		if v != w {
			return false
		}
	}
	return true
}

// recent reports whether r's history changed within the grace period.
func (c *checker) recent(r *run) bool { return c.now.Sub(r.LastChange) < c.opts.Grace }

// open reports whether a run of status (as shown) has not closed.
func open(status string) bool {
	return status == string(workflow.StatusRunning) || status == string(workflow.StatusSuspended) || status == string(workflow.StatusQueued)
}

// judge decides r's verdict and findings.
func (c *checker) judge(ctx context.Context, r *run) error {
	switch {
	case r.st == nil && r.indexed:
		// Deleted (retention) since the index was read, or being deleted:
		// nothing to report, while an orchestrator takes the deletion (its
		// history purged, the entry goes next).
		gone, underWay, err := c.deleted(ctx, r.ID)
		if err != nil {
			return err
		}
		why := ""
		if underWay {
			if why, err = c.deletionUntaken(ctx, r); err != nil {
				return err
			}
		}
		if gone || underWay && why == "" {
			r.indexed = false
			return nil
		}
		r.Verdict = Missing
		if why != "" {
			r.add(FindingDrifted, "index says %s, but there is no history: %s", r.IndexStatus, why)
			return nil
		}
		r.add(FindingDrifted, "index says %s, but there is no history", r.IndexStatus)
		return nil
	case r.st == nil:
		return nil
	case c.recent(r):
		r.Movers = workflow.Movers(r.st)
		r.Verdict = Moving
		if !open(r.Status) {
			r.Verdict = Closed
		}
		return nil
	case !r.indexed:
		// Unlisted: being deleted (its entry goes before its history), or
		// its start waits for an orchestrator, which lists it.
		deleting, err := c.store.DeletionUnderWay(ctx, r.ID)
		if err != nil || deleting {
			r.deleting = deleting
			if err != nil {
				return err
			}
			why, err := c.deletionUntaken(ctx, r)
			if err != nil || why == "" {
				return err
			}
			r.Verdict = Closed
			if open(r.Status) {
				r.Verdict = Stuck
			}
			r.add(FindingStuck, "it is not listed, as a run being deleted: %s", why)
			return nil
		}
		waiting, err := c.inputWaiting(ctx, r)
		if err != nil {
			return err
		}
		if !waiting {
			r.add(FindingDrifted, "history says %s, but the index does not list it", r.Status)
		}
	case r.IndexStatus != r.Status && !(open(r.IndexStatus) && open(r.Status) && workflow.InFlight(r.st)):
		// (An open run's entry may lag while a task or child is in
		// flight: its result comes to an orchestrator that writes it.)
		r.add(FindingDrifted, "index says %s, history says %s", r.IndexStatus, r.Status)
	case !(open(r.Status) && workflow.InFlight(r.st)) && !sameSearch(r.indexSearch, r.st.Search):
		// The entry holds the search attributes too (a run found by them
		// is listed by them); it may lag only as its status may.
		r.add(FindingDrifted, "index holds search attributes %v, history says %v", r.indexSearch, r.st.Search)
	}
	// The follow-ups of any run, closed or not.
	missed := c.abandoned(r)
	if r.broken == nil {
		// A failed run keeps its running children (a redrive takes their
		// results): each is started, and tells it when it closes.
		for _, m := range keptChildren(r.st) {
			if kid := c.runs[m.ChildID]; r.partial && kid != nil && kid.st != nil && kid.st.Status.Terminal() {
				// Told or not, a history that does not fold cannot record
				// its outcome: the step stays RUNNING in the fold for good.
				continue
			}
			why, err := c.child(ctx, r, m)
			if err != nil {
				return err
			}
			if why != "" {
				missed = append(missed, why)
			}
		}
	}
	if !open(r.Status) && r.broken == nil {
		why, err := c.deletion(ctx, r)
		if err != nil {
			return err
		}
		if why != "" {
			missed = append(missed, why)
		}
	}
	if len(missed) > 0 {
		// Its history gone or moved since it was read (deleted, say), or
		// an input on its way that will make them: not missed.
		moved, err := c.moved(ctx, r)
		if err != nil {
			return err
		}
		waiting := false
		if !moved {
			if waiting, err = c.inputWaiting(ctx, r); err != nil {
				return err
			}
		}
		if moved || waiting {
			missed = nil
		}
	}
	for _, why := range missed {
		r.add(FindingStuck, "%s", why)
	}
	if !open(r.Status) {
		r.Verdict = Closed
		return nil
	}
	r.Movers = workflow.Movers(r.st)
	var stuck []string
	if r.broken != nil {
		stuck = append(stuck, fmt.Sprintf("its history cannot be read: %v", r.broken))
	} else {
		why, err := c.world(ctx, r)
		if err != nil {
			return err
		}
		stuck = why
		if why, err = c.inputsUntaken(ctx, r); err != nil {
			return err
		}
		stuck = append(stuck, why...)
	}
	if len(stuck) > 0 {
		// Whatever moved since the history was read moved it.
		moved, err := c.moved(ctx, r)
		if err != nil {
			return err
		}
		if moved {
			stuck = nil
		}
	}
	for _, why := range stuck {
		r.add(FindingStuck, "%s", why)
	}
	switch {
	case len(stuck) > 0:
		r.Verdict = Stuck
	case r.Status == string(workflow.StatusSuspended) && !slices.ContainsFunc(r.Movers, func(m workflow.Mover) bool {
		return m.Kind == workflow.MoverTask || m.Kind == workflow.MoverChild || m.Kind == workflow.MoverTimer && m.Path != ""
	}):
		// Only a resume moves it (its workflow timeout aside).
		r.Verdict = Waiting
	case r.Status == string(workflow.StatusQueued):
		// It waits for a slot, which another run frees (its timer that
		// looks again is checked like any timer above).
		r.Verdict = Waiting
	case len(r.Movers) > 0 && !slices.ContainsFunc(r.Movers, func(m workflow.Mover) bool {
		return m.Kind != workflow.MoverSignal && m.Kind != workflow.MoverResume
	}):
		r.Verdict = Waiting
	default:
		r.Verdict = Moving
	}
	return nil
}

// world checks that what r's history waits for is there, and returns why
// it is stuck if it is not.
func (c *checker) world(ctx context.Context, r *run) ([]string, error) {
	var stuck []string
	st := r.st
	// Decisions an orchestrator should have made.
	def, rec, err := c.defs.Load(ctx, st.Definition, st.Revision)
	switch {
	case err != nil && (errors.Is(err, eventstore.ErrNotFound) || rec.Revision > 0):
		// Missing, or no longer compiles: no orchestrator can decide for it.
		stuck = append(stuck, fmt.Sprintf("its definition %s revision %d cannot be loaded: %v", st.Definition, st.Revision, err))
	case err != nil:
		return nil, err
	default:
		why, err := c.decided(ctx, r, def)
		if err != nil {
			return nil, err
		}
		stuck = append(stuck, why...)
		if r.Status == string(workflow.StatusQueued) && def.Concurrency != nil {
			why, err := c.slot(ctx, r, def.Concurrency.Limit)
			if err != nil {
				return nil, err
			}
			if why != "" {
				stuck = append(stuck, why)
			}
		}
	}
	for _, m := range r.Movers {
		var why string
		var err error
		switch m.Kind {
		case workflow.MoverTask:
			why, err = c.task(ctx, r, m)
		case workflow.MoverChild:
			why, err = c.child(ctx, r, m)
		case workflow.MoverTimer:
			why, err = c.timer(ctx, r, m)
		}
		if err != nil {
			return nil, err
		}
		if why != "" {
			stuck = append(stuck, why)
		}
	}
	return stuck, nil
}

// moved reports whether r's history changed, or went, since it was read.
func (c *checker) moved(ctx context.Context, r *run) (bool, error) {
	last, err := c.store.LastSeq(ctx, r.ID)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		return false, err
	}
	return last != r.lastSeq, nil
}

// abandoned checks the children r no longer needs (a step canceled, or r
// completed or canceled while the step ran, or a redrive started the step
// again under a new id): each was asked to cancel, or has closed.
func (c *checker) abandoned(r *run) []string {
	var stuck []string
	for _, s := range workflow.AbandonedSteps(r.st) {
		kid := c.runs[s.ChildID]
		if kid == nil || kid.st == nil || kid.st.Status.Terminal() || kid.st.CancelRequested || c.recent(kid) {
			continue
		}
		if !stepsChild(kid, r, s.Path, s.Gen) {
			continue // another run's (an earlier run of r's id, say): its own check says what it is
		}
		stuck = append(stuck, fmt.Sprintf("step %s no longer needs child workflow %s (the step is %s, the workflow %s), which is %s and was never asked to cancel",
			s.Path, s.ChildID, s.Status, r.Status, kid.Status))
	}
	return stuck
}

// keptChildren returns the child steps a failed st still runs: their
// children are started and tell st when they close, as a running run's.
func keptChildren(st *workflow.State) []workflow.Mover {
	if st.Status != workflow.StatusFailed {
		return nil
	}
	var out []workflow.Mover
	for _, path := range st.Order {
		if s := st.Steps[path]; s.Kind == "workflow" && s.Status == workflow.StepRunning && s.ChildID != "" {
			out = append(out, workflow.Mover{Kind: workflow.MoverChild, Path: path, Task: s.Task, Gen: s.Gen, ChildID: s.ChildID})
		}
	}
	return out
}

// stepsChild reports whether kid is the child of r's step at path, gen:
// of this run of r's id, not of an earlier one deleted since.
func stepsChild(kid, r *run, path string, gen int) bool {
	p := kid.st.Parent
	return p != nil && p.Same(events.ParentRef{WorkflowID: r.ID, Path: path, Gen: gen, Created: r.st.Created})
}

// deletion checks that a closed run with a retention has its deletion
// scheduled, or due and waiting for an orchestrator.
func (c *checker) deletion(ctx context.Context, r *run) (string, error) {
	st := r.st
	if st.Closed.IsZero() {
		return "", nil
	}
	keep := c.opts.Retention
	def, rec, err := c.defs.Load(ctx, st.Definition, st.Revision)
	switch {
	case err == nil && def.Retention > 0:
		keep = def.Retention
	case err != nil && !errors.Is(err, eventstore.ErrNotFound) && rec.Revision == 0:
		return "", err // (one missing or that no longer compiles keeps the servers')
	}
	if keep <= 0 {
		return "", nil
	}
	switch state, err := c.store.Deletion(ctx, r.ID); {
	case err != nil:
		return "", err
	case state == eventstore.TimerFired:
		return c.deletionUntaken(ctx, r)
	case state == eventstore.TimerScheduled:
		return "", nil
	}
	return fmt.Sprintf("closed at %s with a retention of %s, but its deletion is not scheduled: it is kept for good",
		st.Closed.UTC().Format(time.RFC3339), keep), nil
}

// decided checks that an orchestrator made the decisions r's history
// calls for, or that an input waits that will make it decide.
func (c *checker) decided(ctx context.Context, r *run, def *definition.Definition) ([]string, error) {
	evs := workflow.Decide(r.st, def)
	if len(evs) == 0 {
		if len(r.Movers) == 0 {
			return []string{"nothing will move it: no task in flight, child running, timer or wait"}, nil
		}
		return nil, nil
	}
	waiting, err := c.inputWaiting(ctx, r)
	if err != nil || waiting {
		return nil, err
	}
	return []string{fmt.Sprintf("undecided: its history calls for %s, but no orchestrator recorded it and no input waits", typesOf(evs))}, nil
}

func typesOf(evs []events.Event) string {
	var ts []string
	for _, e := range evs {
		if t := string(e.Type); !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	return strings.Join(ts, ", ")
}

// inputWaiting reports whether an input for r waits for an orchestrator:
// a start, signal or cancel not yet taken, or a result not yet recorded.
// An input handed to an orchestrator and not settled (the consumer's ack
// floor is below it) waits only within InputGrace of r's last change:
// beyond that it is failing again and again, or was settled and decided
// nothing (the ack floor is every run's: one input failing for good holds
// it down for all).
func (c *checker) inputWaiting(ctx context.Context, r *run) (bool, error) {
	in, err := c.externalInputs(ctx)
	if err != nil {
		return false, err
	}
	last, err := c.store.LastExternal(ctx, r.ID)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		return false, err
	}
	if last > in.AckFloor && (last > in.Delivered || c.now.Sub(r.LastChange) < c.opts.InputGrace) {
		return true, nil
	}
	return c.store.ResultWaiting(ctx, r.ID)
}

// task checks a task step in flight: its command waits for an executor
// that asks for commands, or its result waits to be recorded.
func (c *checker) task(ctx context.Context, r *run, m workflow.Mover) (string, error) {
	tq, err := c.taskQueue(ctx, m.Task)
	if err != nil {
		return "", err
	}
	if tq.err != nil {
		return fmt.Sprintf("step %s: task type %s has no consumer (%s): its command reaches no executor",
			m.Path, m.Task, eventstore.TaskConsumer(m.Task)), nil
	}
	q := tq.q
	last, err := c.store.LastTaskCommand(ctx, r.ID, m.Task)
	if errors.Is(err, eventstore.ErrNotFound) {
		return fmt.Sprintf("step %s: its task command is not in the history stream", m.Path), nil
	}
	if err != nil {
		return "", err
	}
	if last > q.AckFloor {
		// Unsettled: it moves while an executor of the type asks for
		// commands, holds some, or was handed one within ExecutorGrace
		// (of the run's last change, at the latest its command's).
		if last > q.Delivered && q.Pulls == 0 && q.InFlight == 0 && c.now.Sub(later(q.LastDelivery, r.LastChange)) >= c.opts.ExecutorGrace {
			since := "ever"
			if !q.LastDelivery.IsZero() {
				since = "since " + q.LastDelivery.UTC().Format(time.RFC3339)
			}
			return fmt.Sprintf("step %s: no executor serves task type %s (none asks for commands or holds one, and none was handed one %s): its command waits for one",
				m.Path, m.Task, since), nil
		}
		return "", nil
	}
	waiting, err := c.store.ResultWaiting(ctx, r.ID)
	if err != nil || waiting {
		return "", err
	}
	return fmt.Sprintf("step %s: an executor settled its task command (%s), but no result was recorded", m.Path, m.Task), nil
}

// taskQueue looks at task type typ's consumer, once a check: tq.err is
// ErrNotFound when it has none.
func (c *checker) taskQueue(ctx context.Context, typ string) (taskQueue, error) {
	c.mu.Lock()
	tq, ok := c.tasks[typ]
	c.mu.Unlock()
	if ok {
		return tq, nil
	}
	tq.q, tq.err = c.store.TaskQueueOf(ctx, typ)
	if tq.err != nil && !errors.Is(tq.err, eventstore.ErrNotFound) {
		return taskQueue{}, tq.err
	}
	c.mu.Lock()
	c.tasks[typ] = tq
	c.mu.Unlock()
	return tq, nil
}

// child checks a child step: the child exists, is the step's, and, if it
// closed, its parent was told.
func (c *checker) child(ctx context.Context, r *run, m workflow.Mover) (string, error) {
	kid := c.runs[m.ChildID]
	if kid != nil && kid.unread {
		// It could not be read: the report names it unchecked, and
		// whether it exists is not known here.
		return "", nil
	}
	if kid == nil || kid.st == nil {
		return fmt.Sprintf("step %s: child workflow %s does not exist", m.Path, m.ChildID), nil
	}
	if !stepsChild(kid, r, m.Path, m.Gen) {
		return fmt.Sprintf("step %s: workflow %s is not this step's child", m.Path, m.ChildID), nil
	}
	if !kid.st.Status.Terminal() || c.recent(kid) {
		return "", nil
	}
	waiting, err := c.store.ResultWaiting(ctx, r.ID)
	if err != nil || waiting {
		return "", err
	}
	return fmt.Sprintf("step %s: child workflow %s is %s since %s, but the parent was not told",
		m.Path, m.ChildID, kid.Status, kid.LastChange.UTC().Format(time.RFC3339)), nil
}

// slot checks a queued run's key, of limit slots: one is free, or a run
// that will give one back holds it. (A run not in its key's queue is put
// there by its timer, checked like any timer.)
func (c *checker) slot(ctx context.Context, r *run, limit int) (string, error) {
	st := r.st
	k, err := c.keySlots(ctx, st.Definition, st.QueueKey, limit)
	if err != nil || !k.blocked || slices.Contains(k.holders, r.ID) {
		return "", err // a free slot or its own: its timer takes it, or admits it
	}
	return fmt.Sprintf("the slots of key %q are held by runs that closed or are gone (%s): none is given back until an orchestrator frees them (it looks at a queued run's timer, at most every 30 s)",
		st.QueueKey, strings.Join(k.holders, ", ")), nil
}

// keySlots looks at the slots of def's key (limit of them), once a check.
func (c *checker) keySlots(ctx context.Context, def, key string, limit int) (keySlots, error) {
	id := def + "\x00" + key
	c.mu.Lock()
	k, ok := c.keys[id]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	s, err := c.store.ReadSlots(ctx, def, key)
	if err != nil {
		return keySlots{}, err
	}
	k = keySlots{holders: s.Holders, blocked: len(s.Holders) >= limit}
	for _, h := range s.Holders {
		if !k.blocked {
			break
		}
		if kid := c.runs[h]; kid != nil && kid.st != nil {
			k.blocked = kid.st.Status.Terminal() && !c.recent(kid)
			continue
		}
		if _, err := c.store.LastSeq(ctx, h); !errors.Is(err, eventstore.ErrNotFound) {
			if err != nil {
				return keySlots{}, err
			}
			k.blocked = false // a run not listed here: it may give its slot back
		}
	}
	c.mu.Lock()
	c.keys[id] = k
	c.mu.Unlock()
	return k, nil
}

// timer checks a timer: it is scheduled, for its due time and not long
// overdue, or it fired and waits for an orchestrator.
func (c *checker) timer(ctx context.Context, r *run, m workflow.Mover) (string, error) {
	state, at, err := c.store.Timer(ctx, r.ID, m.TimerID)
	if err != nil {
		return "", err
	}
	switch {
	case state == eventstore.TimerFired:
		return c.untaken(ctx, r, eventstore.SourceTimers, fmt.Sprintf("%s: its timer %s fired, and", m, m.TimerID))
	case state == eventstore.TimerMissing:
		return fmt.Sprintf("%s: its timer %s is neither scheduled nor fired", m, m.TimerID), nil
	case state == eventstore.TimerScheduled && c.now.Sub(m.Due) > c.opts.TimerGrace:
		return fmt.Sprintf("%s: its timer %s is overdue by %s and has not fired",
			m, m.TimerID, c.now.Sub(m.Due).Round(time.Second)), nil
	case state == eventstore.TimerScheduled && at.Sub(m.Due) > c.opts.TimerGrace:
		// A schedule for later than the history says (a decision that
		// lost its append set it) would make the run late by as much.
		return fmt.Sprintf("%s: its timer %s is scheduled to fire at %s, %s after its due time",
			m, m.TimerID, at.UTC().Format(time.RFC3339), at.Sub(m.Due).Round(time.Second)), nil
	}
	return "", nil
}

// externalInputs looks at the orchestrators' consumer of starts, signals
// and cancels, once a check.
func (c *checker) externalInputs(ctx context.Context) (*eventstore.ExternalInputs, error) {
	c.mu.Lock()
	in := c.ext
	c.mu.Unlock()
	if in != nil {
		return in, nil
	}
	q, err := c.store.ExternalInputsOf(ctx)
	if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
		return nil, err
	}
	c.mu.Lock()
	c.ext = &q
	c.mu.Unlock()
	return &q, nil
}

// inputsUntaken returns why an input waiting for r in the orchestrators'
// consumers moves nothing: a start, signal or cancel not yet settled, or a
// result not yet recorded, where no orchestrator takes them (untaken). A
// fired timer is checked with its timer.
func (c *checker) inputsUntaken(ctx context.Context, r *run) ([]string, error) {
	var why []string
	if t, err := c.takersOf(ctx, eventstore.SourceExternal); err != nil {
		return nil, err
	} else if !c.taken(t, r) {
		in, err := c.externalInputs(ctx)
		if err != nil {
			return nil, err
		}
		last, err := c.store.LastExternal(ctx, r.ID)
		if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			return nil, err
		}
		if err == nil && last > in.AckFloor {
			w, err := c.untaken(ctx, r, eventstore.SourceExternal, "a start, signal or cancel of it waits, and")
			if err != nil {
				return nil, err
			}
			why = append(why, w)
		}
	}
	if t, err := c.takersOf(ctx, eventstore.SourceResults); err != nil {
		return nil, err
	} else if !c.taken(t, r) {
		waiting, err := c.store.ResultWaiting(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		if waiting {
			w, err := c.untaken(ctx, r, eventstore.SourceResults, "a task's result waits to be recorded, and")
			if err != nil {
				return nil, err
			}
			why = append(why, w)
		}
	}
	return why, nil
}

// untaken says, after what (which waits for an orchestrator), why nothing
// moves r on when no orchestrator takes src's inputs: none asks for one or
// holds one, and none was handed one within OrchestratorGrace (of r's last
// change, at the latest). It returns "" when one takes them.
func (c *checker) untaken(ctx context.Context, r *run, src eventstore.Source, what string) (string, error) {
	t, err := c.takersOf(ctx, src)
	if err != nil || c.taken(t, r) {
		return "", err
	}
	name := map[eventstore.Source]string{eventstore.SourceExternal: eventstore.ExternalConsumer,
		eventstore.SourceResults: eventstore.ResultsConsumer, eventstore.SourceTimers: eventstore.TimersConsumer,
		eventstore.SourceRetention: eventstore.RetentionConsumer}[src]
	if t.err != nil {
		return fmt.Sprintf("%s no orchestrator takes it: the orchestrators' consumer %s does not exist", what, name), nil
	}
	since := "ever"
	if last := later(t.t.LastDelivery, t.t.LastAck); !last.IsZero() {
		since = "since " + last.UTC().Format(time.RFC3339)
	}
	held := ""
	if t.t.InFlight > 0 {
		held = fmt.Sprintf("; %d handed out unsettled wait for one", t.t.InFlight)
	}
	return fmt.Sprintf("%s no orchestrator takes it (none asks the consumer %s for inputs, and none was handed or settled one %s%s)", what, name, since, held), nil
}

// taken reports whether an orchestrator takes the inputs of the consumer
// looked at in t, as far as r is concerned: one asks for inputs, or one
// was handed or settled one within OrchestratorGrace (of r's last change,
// at the latest). Messages in flight alone say nothing: one an
// orchestrator died holding stays in flight for good once none asks.
func (c *checker) taken(t takers, r *run) bool {
	active := later(later(t.t.LastDelivery, t.t.LastAck), r.LastChange)
	return t.err == nil && (t.t.Pulls > 0 || c.now.Sub(active) < c.opts.OrchestratorGrace)
}

// takersOf looks at the orchestrators' consumer of src, once a check. One
// that no orchestrator asks for inputs while some wait is looked at again
// for lookAgain: an orchestrator that runs keeps a request for inputs
// open, but renews it, and takes about 5 s to find a consumer's new leader
// (the NATS node that led it stopped), which knows of no request until it
// does.
func (c *checker) takersOf(ctx context.Context, src eventstore.Source) (takers, error) {
	c.mu.Lock()
	t, ok := c.takers[src]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	for i := 0; ; i++ {
		t.t, t.err = c.store.OrchestratorTakers(ctx, src)
		if t.err != nil && !errors.Is(t.err, eventstore.ErrNotFound) {
			return takers{}, t.err
		}
		if t.err != nil || t.t.Pulls > 0 || t.t.Waiting == 0 || i == len(lookAgain) {
			break
		}
		select {
		case <-time.After(lookAgain[i]):
		case <-ctx.Done():
			return takers{}, ctx.Err()
		}
	}
	c.mu.Lock()
	c.takers[src] = t
	c.mu.Unlock()
	return t, nil
}
