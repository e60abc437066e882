package workflow_test

// The simulation: random definitions drawn from the whole language, run
// against random schedules of their inputs the way the orchestrator's
// shell runs the core (accept a result or timer, apply it, advance, append
// one record per step command), with orchestrator crashes between any two
// records, and invariants checked throughout. See docs/reliability.md,
// "The simulation".

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"pgregory.net/rapid"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// simProfile sizes one kind of simulated run.
type simProfile struct {
	steps   int // most steps in a definition (a few more to fill required lists)
	depth   int // deepest nesting of steps in steps
	actions int // most schedule actions before the run is drained
	crash   int // one processed input in crash crashes the orchestrator
	// kinds are the step kinds drawn from, leaves first, weighted by
	// repetition; leaves how many are leaves.
	kinds  []string
	leaves int
	// first is the kind of the definition's first step, when set.
	first string
}

var simProfiles = []struct {
	name string
	p    simProfile
}{
	{"small", simProfile{steps: 6, depth: 1, actions: 50, crash: 6, kinds: simKinds, leaves: simLeaves}},
	{"nested", simProfile{steps: 16, depth: 3, actions: 120, crash: 10, kinds: simKinds, leaves: simLeaves}},
	{"crashy", simProfile{steps: 10, depth: 2, actions: 120, crash: 3, kinds: simKinds, leaves: simLeaves}},
	// Loops and branches of tasks and waits: signals, redrives, fail-fast.
	{"loops", simProfile{steps: 10, depth: 2, actions: 120, crash: 8, leaves: 3,
		kinds: []string{"task", "wait", "sleep", "foreach", "foreach", "parallel", "parallel", "repeat"}}},
	// Child workflows beside steps that fail and set vars, under
	// crashes and redrives: a child step canceled by a failure, whose
	// cancel may not have gone out, that a redrive starts again, skips or
	// fails (its condition or input reads a var a step set since, or the
	// time).
	{"children", simProfile{steps: 10, depth: 2, actions: 120, crash: 4, leaves: 8, first: "parallel",
		kinds: []string{"workflow", "workflow", "workflow", "set", "set", "fail", "fail", "task", "parallel", "parallel", "foreach"}}},
}

// TestSimulation runs each profile for -rapid.checks cases (100 by
// default); a failure prints the seed (-rapid.seed) that reproduces it.
func TestSimulation(t *testing.T) {
	for _, pr := range simProfiles {
		t.Run(pr.name, func(t *testing.T) {
			hits, reached := map[string]int{}, map[string]int{}
			rapid.Check(t, func(rt *rapid.T) {
				bugs, r := runSim(rt, pr.p)
				for _, bug := range bugs {
					hits[bug]++
				}
				for _, what := range r {
					reached[what]++
				}
			})
			for _, bug := range slices.Sorted(maps.Keys(hits)) {
				t.Logf("known bug %q: ran into %d times", bug, hits[bug])
			}
			for _, what := range slices.Sorted(maps.Keys(reached)) {
				t.Logf("reached %q in %d cases", what, reached[what])
			}
		})
	}
}

var simT0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// simKnownBugs are bugs of the core the simulation found that are not
// fixed yet, by the name their check gives them. A case that runs into one
// is logged and goes on, unless WEFT_SIM_STRICT is set; remove an entry
// when its bug is fixed.
var simKnownBugs = map[string]string{}

// runSim runs one case and returns the known bugs it ran into, and the
// rare transitions its history reached (simReached).
func runSim(t *rapid.T, p simProfile) (known, reached []string) {
	g := &simGen{t: t, p: p}
	doc := g.definition()
	src, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	def, err := definition.Parse(src)
	if err != nil {
		t.Fatalf("generated definition rejected: %v\n%s", err, src)
	}
	s := &sim{t: t, p: p, def: def, src: string(src), clock: simT0, input: g.input()}
	s.start()
	n := rapid.IntRange(p.actions/4, p.actions).Draw(t, "actions")
	for range n {
		s.act()
	}
	s.drain()
	s.checkHistory()
	if s.expiredAs != "" {
		if st := s.fold(false); !st.Expired || st.Status != s.expiredAs {
			s.fail("a run whose deletion began (as %s) is %s, expired %v", s.expiredAs, st.Status, st.Expired)
		}
	}
	return s.known, simReached(s.evs)
}

// simGen draws a valid definition of the whole language as a YAML document.
type simGen struct {
	t *rapid.T
	p simProfile
	n int // steps drawn
	// readsX: an expression drawn reads vars.x; setsX: a set step drawn
	// sets it (a definition must, when one reads it).
	readsX, setsX bool
}

// simLoop says which loop variables the steps being drawn see.
type simLoop struct {
	item      string // the innermost foreach's item name, or ""
	iteration bool
}

func (g *simGen) intn(label string, n int) int { return rapid.IntRange(0, n-1).Draw(g.t, label) }

// chance draws whether a thing that happens 1 in n times does: cases
// shrink towards 0, the plain way.
func (g *simGen) chance(label string, n int) bool { return g.intn(label, n) == n-1 }

func (g *simGen) pick(label string, xs ...string) string { return xs[g.intn(label, len(xs))] }

func (g *simGen) input() map[string]any {
	items := []any{}
	for range g.intn("items", 5) {
		items = append(items, int64(g.intn("item", 3)))
	}
	return map[string]any{"n": int64(g.intn("n", 3)), "items": items}
}

func (g *simGen) definition() map[string]any {
	steps := g.list(simLoop{}, 0, 2, 6)
	if g.readsX && !g.setsX {
		g.n++
		steps = append(steps, map[string]any{"id": fmt.Sprintf("s%d", g.n), "set": map[string]any{"x": "1"}})
	}
	d := map[string]any{"name": "sim", "steps": steps}
	if g.chance("retry?", 6) {
		d["retry"] = map[string]any{"max_attempts": 1 + g.intn("attempts", 2)}
	}
	if g.chance("timeout?", 4) {
		d["timeout"] = fmt.Sprintf("%ds", rapid.IntRange(20, 200).Draw(g.t, "timeout"))
	}
	switch g.intn("concurrency?", 6) {
	case 1:
		d["concurrency"] = map[string]any{"limit": 1}
	case 2:
		d["concurrency"] = map[string]any{"key": "${ input.n }", "limit": 2}
	}
	switch g.intn("output", 20) {
	case 1, 2:
		d["output"] = "${ input.n }"
	case 3, 4:
		d["output"] = nil
	case 5, 6:
		d["output"] = map[string]any{"first": "${ steps.s1.output }"}
	case 7:
		d["output"] = "${ input.nope }" // fails when the steps are done
	}
	if g.chance("search?", 3) {
		d["search"] = g.search(simLoop{}, "")
	}
	return d
}

// search draws a search mapping of the definition (id "") or of step id,
// whose expressions see the loop variables of l. Names repeat across
// places, so later values replace earlier ones.
func (g *simGen) search(l simLoop, id string) map[string]any {
	vals := []string{"${ input.n }", "${ workflow.now }", "n${ input.n }", "${ input.n > 0 }", "${ double(input.n) / 2.0 }"}
	if id != "" && g.chance("search output?", 3) {
		vals = append(vals, "${ steps."+id+".output }") // not a scalar for containers: fails the run
	}
	if l.item != "" {
		vals = append(vals, "${ index }")
	}
	if l.iteration {
		vals = append(vals, "${ iteration }")
	}
	out := map[string]any{}
	for range 1 + g.intn("search attrs", 2) {
		v := g.pick("search value", vals...)
		if g.chance("bad search?", 20) {
			v = g.pick("bad search", "${ input.items }", "${ input.nope }") // a list; missing
		}
		out[g.pick("search name", "a", "b", "c")] = v
	}
	return out
}

func (g *simGen) list(l simLoop, depth, lo, hi int) []any {
	n := rapid.IntRange(lo, hi).Draw(g.t, "len")
	out := []any{}
	for i := range n {
		if i >= lo && g.n >= g.p.steps {
			break
		}
		out = append(out, g.step(l, depth))
	}
	return out
}

// simKinds lists step kinds, leaves first, weighted by repetition.
var simKinds = []string{"task", "task", "task", "task", "wait", "wait", "sleep", "set", "fail", "succeed", "workflow",
	"switch", "foreach", "foreach", "parallel", "parallel", "repeat", "repeat"}

const simLeaves = 11

// simErrorTypes are the error types failures in the simulation carry.
var simErrorTypes = []string{"oops", "fatal", "boom", "fail", "timeout", "expression", "max_iterations",
	"child_failed", "canceled", "attempts_exhausted", "invalid_output", "invalid_input", "limit"}

func (g *simGen) cond(l simLoop) any {
	if g.chance("bad if?", 30) {
		return "input.nope > 0" // fails when evaluated
	}
	// Conditions on a var a set step may change since: one a redrive
	// finds false, or failing, where the first run found it true.
	cs := []any{true, false, "input.n > 0", "input.n > 1", "vars.?x.orValue(0) < 1", "vars.?x.orValue(0) < 1 || input.nope > 0"}
	if l.item != "" {
		cs = append(cs, "index % 2 == 0")
	}
	if l.iteration {
		cs = append(cs, "iteration > 0")
	}
	c := cs[g.intn("cond", len(cs))]
	if c, ok := c.(string); ok && strings.Contains(c, "vars.") {
		g.readsX = true
	}
	return c
}

func (g *simGen) step(l simLoop, depth int) map[string]any {
	g.n++
	s := map[string]any{"id": fmt.Sprintf("s%d", g.n)}
	kinds := g.p.kinds
	if depth >= g.p.depth || g.n >= g.p.steps {
		kinds = kinds[:g.p.leaves]
	}
	kind := kinds[g.intn("kind", len(kinds))]
	if g.n == 1 && g.p.first != "" {
		kind = g.p.first
	}
	switch kind {
	case "task":
		s["task"] = "t"
		switch g.intn("task input", 30) {
		case 1:
			s["input"] = "${ input.n }"
		case 2:
			if l.item != "" {
				s["input"] = "${ " + l.item + " }"
			}
		case 5:
			if l.item != "" {
				s["input"] = "${ index }"
			}
		case 3:
			if l.iteration {
				s["input"] = "${ iteration }"
			}
		case 4:
			s["input"] = "${ input.nope }" // fails when the step starts
		}
		if g.chance("retry?", 3) {
			s["retry"] = map[string]any{"max_attempts": 1 + g.intn("attempts", 3), "non_retryable": []any{"fatal"}}
			if g.chance("suspend?", 3) {
				s["retry"].(map[string]any)["exhausted"] = "suspend"
			}
		}
		switch g.intn("flow?", 8) {
		case 1:
			s["concurrency"] = map[string]any{"key": "${ input.n }", "limit": 2}
		case 2:
			s["rate_limit"] = map[string]any{"limit": 5, "per": "1s"}
		}
	case "wait":
		w := map[string]any{"signal": g.pick("signal", "a", "b")}
		switch g.intn("wait timeout", 3) {
		case 1:
			w["timeout"] = "0s"
		case 2:
			w["timeout"] = fmt.Sprintf("%ds", 5+g.intn("secs", 26))
			if g.chance("timeout_steps?", 2) {
				s["timeout_steps"] = g.list(l, depth+1, 1, 2)
			}
		}
		s["wait"] = w
	case "sleep":
		switch g.intn("sleep", 4) {
		case 0:
			s["sleep"] = map[string]any{"until": "workflow.now"}
		case 1:
			s["sleep"] = map[string]any{"until": "workflow.now + duration('7s')"}
		default:
			s["sleep"] = fmt.Sprintf("%ds", 1+g.intn("secs", 20))
		}
	case "set":
		if g.intn("set", 2) == 0 {
			s["set"] = map[string]any{"x": "vars.?x.orValue(0) + 1"}
			g.setsX = true
		} else {
			v := g.pick("var", "x", "y")
			s["set"] = map[string]any{v: g.pick("value", "'v'", "input.n")}
			g.setsX = g.setsX || v == "x"
		}
	case "fail":
		if g.intn("fail", 3) == 0 {
			s["fail"] = map[string]any{"message": "${ input.n }"}
		} else {
			s["fail"] = map[string]any{"message": "boom", "type": g.pick("fail type", "oops", "boom")}
		}
	case "succeed":
		if g.intn("succeed", 2) == 0 {
			s["succeed"] = map[string]any{}
		} else {
			s["succeed"] = map[string]any{"output": "${ input.n }"}
		}
	case "workflow":
		s["workflow"] = "child"
		switch g.intn("child input", 4) {
		case 1:
			s["input"] = "${ input.n }"
		case 2:
			// Fails once a set step counted x up: a redrive may fail a
			// child step whose first run started.
			s["input"] = "${ vars.?x.orValue(0) < 1 ? input.n : input.nope }"
			g.readsX = true
		}
		if g.chance("child if?", 3) {
			// False, or failing, once a set step counted x up or some
			// time passed: a redrive may skip or fail a child step whose
			// first run started.
			cond := g.pick("child if", "vars.?x.orValue(0) < 1", "workflow.now < timestamp('2025-01-01T00:00:10Z')")
			if g.chance("child if fails?", 3) {
				cond += " || input.nope > 0"
			}
			s["if"] = cond
			g.readsX = g.readsX || strings.Contains(cond, "vars.")
		}
	case "switch":
		var cases []any
		for range 1 + g.intn("cases", 2) {
			cases = append(cases, map[string]any{"if": g.cond(l), "then": g.list(l, depth+1, 0, 2)})
		}
		s["switch"] = cases
		if g.chance("default?", 2) {
			s["default"] = g.list(l, depth+1, 0, 2)
		}
	case "foreach":
		items := []string{"input.items", "input.items", "[1, 2, 3]", "lists.range(input.n)"}
		if g.chance("bad items?", 15) {
			items = []string{"input.n", "input.nope"} // not a list; missing
		}
		s["foreach"] = items[g.intn("items", len(items))]
		as := "item"
		if g.chance("as?", 3) {
			as = "it"
			s["as"] = as
		}
		if g.chance("concurrency?", 2) {
			s["concurrency"] = 1 + g.intn("concurrency", 3)
		}
		if g.chance("filter?", 3) {
			s["filter"] = g.pick("filter", "index % 2 == 0", as+" > 0")
		}
		if g.chance("on_error?", 2) {
			s["on_error"] = "continue"
		}
		s["do"] = g.list(simLoop{item: as, iteration: l.iteration}, depth+1, 1, 2)
	case "parallel":
		br := map[string]any{}
		for i := range 1 + g.intn("branches", 3) {
			br[fmt.Sprintf("b%d", i+1)] = g.list(l, depth+1, 1, 2)
		}
		s["parallel"] = map[string]any{"branches": br}
		if g.chance("on_error?", 2) {
			s["on_error"] = "continue"
		}
	case "repeat":
		s["repeat"] = map[string]any{
			"do":             g.list(simLoop{item: l.item, iteration: true}, depth+1, 1, 2),
			"until":          g.pick("until", "iteration >= 1", "iteration >= 2", "input.n > iteration", "iteration > 5"),
			"max_iterations": 1 + g.intn("max_iterations", 3),
		}
	}
	if _, ok := s["if"]; !ok && g.chance("if?", 6) {
		s["if"] = g.cond(l)
	}
	if kind != "fail" && kind != "succeed" && g.chance("search?", 4) {
		s["search"] = g.search(l, s["id"].(string))
	}
	if g.chance("catch?", 5) {
		var clauses []any
		n := 1 + g.intn("clauses", 2)
		for i := range n {
			c := map[string]any{"do": g.list(l, depth+1, 0, 2)}
			// Only the last clause may handle every type.
			if i < n-1 || g.chance("catch all?", 2) {
				c["errors"] = []any{simErrorTypes[g.intn("catch type", len(simErrorTypes))]}
			}
			clauses = append(clauses, c)
		}
		s["catch"] = clauses
	}
	return s
}

// Kinds of simulated deliveries to the orchestrator.
const (
	simResult   = iota // a task attempt's or a child's result
	simTimer           // a durable timer that came due
	simExternal        // a record appended from outside: start, signal, cancel, redrive
)

type simDelivery struct {
	kind   int
	result events.Result
	timer  events.TimerDue
	seq    int // an outside record's sequence
}

func (d simDelivery) String() string {
	switch d.kind {
	case simResult:
		r := d.result
		return fmt.Sprintf("result %s gen=%d attempt=%d outcome=%d", r.Path, r.Gen, r.Attempt, r.Outcome)
	case simTimer:
		return fmt.Sprintf("timer %s %q due=%s", d.timer.TimerID, d.timer.Path, d.timer.Due.Sub(simT0))
	}
	return fmt.Sprintf("outside record %d", d.seq)
}

// simTask is a step command as an executor sees it.
type simTask struct {
	cmd       events.StepScheduled
	seq       int // the command's record
	delivered int
	done      bool // acked for good
}

// simChild is a child workflow the parent started.
type simChild struct {
	id   string
	path string
	gen  int
	done bool
}

// sim is one workflow's world: its stored history, one orchestrator's
// cache, and the inputs in flight.
type sim struct {
	t     *rapid.T
	p     simProfile
	def   *definition.Definition
	src   string
	input map[string]any
	clock time.Time

	// The stored history, decoded: evs, with recEnd[i] the number of
	// events in records 1..i+1; a snapshot taken at snapSeq.
	evs     []events.Event
	recEnd  []int
	snap    []byte
	snapSeq uint64

	// The orchestrator's cached state; nil after a crash.
	cache *workflow.State

	queue    []simDelivery // inputs waiting for the orchestrator
	seen     []simDelivery // inputs processed, for redeliveries
	tasks    []*simTask
	children []*simChild
	timers   []events.TimerDue
	signals  int
	cancels  int
	retries  int
	resumes  int
	broken   int // broken-run failures appended (breakRun)
	// expiredAs is the status the run had when retention began deleting
	// it (WorkflowExpired), or "".
	expiredAs workflow.Status
	// requested counts the cancels, retries and resumes appended, by
	// kind: their request ids are kind1, kind2, ...
	requested map[string]int
	log       []string
	known     []string // known bugs run into
	draining  bool
	parents   map[string]simParent // by step id, made by live
}

func (s *sim) seq() uint64 { return uint64(len(s.recEnd)) }

func (s *sim) logf(format string, args ...any) {
	s.log = append(s.log, fmt.Sprintf("%6s ", s.clock.Sub(simT0))+fmt.Sprintf(format, args...))
}

// fail stops the case with what it takes to understand it.
func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, format, args...)
	fmt.Fprintf(&b, "\n--- definition (input %v):\n%s--- schedule:\n%s\n--- history:\n", s.input, s.src, strings.Join(s.log, "\n"))
	for i, e := range s.evs {
		fmt.Fprintf(&b, "%3d %s\n", i+1, simShow(e))
	}
	s.t.Fatal(b.String())
}

// failKnown fails like fail, or ends the case if bug is a known one.
func (s *sim) failKnown(bug, format string, args ...any) {
	s.t.Helper()
	if _, ok := simKnownBugs[bug]; ok && os.Getenv("WEFT_SIM_STRICT") == "" {
		s.known = append(s.known, bug)
		s.logf("known bug: %s", bug)
		return
	}
	if bug != "" {
		format = "[" + bug + "] " + format
	}
	s.fail(format, args...)
}

func simShow(e events.Event) string {
	return fmt.Sprintf("%6s %s %+v", e.Time.Sub(simT0), e.Type, e.Payload())
}

func (s *sim) draw(label string, n int) int { return rapid.IntRange(0, n-1).Draw(s.t, label) }

func (s *sim) pick(label string, xs ...string) string { return xs[s.draw(label, len(xs))] }

// chance draws whether a thing that happens 1 in n times does.
func (s *sim) chance(label string, n int) bool { return s.draw(label, n) == n-1 }

func (s *sim) start() {
	s.appendRec([]events.Event{{Type: events.TypeWorkflowStarted, Time: s.clock, WorkflowStarted: &events.WorkflowStarted{
		WorkflowID: "wf", Definition: "sim", Revision: 1, Input: s.input}}})
	s.queue = append(s.queue, simDelivery{kind: simExternal, seq: 1})
	s.logf("start")
}

// appendRec stores one record as the event store does (encoded, read back
// decoded), and hands its commands to executors and children.
func (s *sim) appendRec(rec []events.Event) {
	b, err := events.Encode(rec...)
	if err != nil {
		s.fail("encode record: %v", err)
	}
	r, err := events.Decode(b)
	if err != nil {
		s.fail("decode record: %v", err)
	}
	s.evs = append(s.evs, r.Events...)
	s.recEnd = append(s.recEnd, len(s.evs))
	for _, e := range r.Events {
		if ss := e.StepScheduled; ss != nil {
			s.tasks = append(s.tasks, &simTask{cmd: *ss, seq: len(s.recEnd)})
		}
		if cs := e.ChildStarted; cs != nil {
			s.children = append(s.children, &simChild{id: cs.WorkflowID, path: cs.Path, gen: cs.Gen})
		}
	}
}

// prepare schedules a record's timers, as the orchestrator does just
// before appending it; a timer replaces a pending one of the same id.
func (s *sim) prepare(rec []events.Event) {
	for _, e := range rec {
		var td events.TimerDue
		switch {
		case e.WaitStarted != nil && e.WaitStarted.TimerID != "":
			td = events.TimerDue{V: 1, WorkflowID: "wf", TimerID: e.WaitStarted.TimerID, Path: e.WaitStarted.Path, Due: e.WaitStarted.TimeoutAt}
		case e.TimerScheduled != nil:
			td = events.TimerDue{V: 1, WorkflowID: "wf", TimerID: e.TimerScheduled.TimerID, Path: e.TimerScheduled.Path, Due: e.TimerScheduled.Due}
		default:
			continue
		}
		s.timers = slices.DeleteFunc(s.timers, func(t events.TimerDue) bool { return t.TimerID == td.TimerID })
		s.timers = append(s.timers, td)
	}
}

// fold reads the stored history, from the snapshot when useSnap and there
// is one.
func (s *sim) fold(useSnap bool) *workflow.State {
	s.t.Helper()
	st := &workflow.State{}
	from := 0
	if useSnap && s.snap != nil {
		var err error
		if st, err = workflow.DecodeSnapshot(s.snap, s.snapSeq); err != nil {
			s.fail("DecodeSnapshot: %v", err)
		}
		from = int(s.snapSeq)
	}
	s.catchUpFrom(st, from)
	return st
}

// catchUpFrom folds the records after the from-th into st.
func (s *sim) catchUpFrom(st *workflow.State, from int) {
	s.t.Helper()
	for i := from; i < len(s.recEnd); i++ {
		lo := 0
		if i > 0 {
			lo = s.recEnd[i-1]
		}
		for _, e := range s.evs[lo:s.recEnd[i]] {
			if err := st.Apply(e); err != nil {
				s.fail("fold record %d: %v", i+1, err)
			}
		}
		st.LastSeq = uint64(i + 1)
	}
}

// accept turns delivery d into the event that records it, as the
// orchestrator does; due is false for a timer not due yet.
func (s *sim) accept(st *workflow.State, d simDelivery) (ev []events.Event, due bool) {
	switch d.kind {
	case simResult:
		if e, ok := workflow.AcceptResult(st, d.result); ok {
			if c := e.StepCompleted; c != nil && c.Output == simTooLarge {
				// An output too large to record fails its step, whatever
				// its retry policy (the shell's fitResult).
				e = events.Event{Type: events.TypeStepFailed, Time: e.Time, StepFailed: &events.StepFailed{Path: c.Path, Gen: c.Gen,
					Attempt: c.Attempt, Error: events.Error{Type: workflow.ErrTypeInvalidOutput, Message: "too large"}}}
			}
			return []events.Event{e}, true
		}
	case simTimer:
		e, ok, due := workflow.AcceptTimer(st, d.timer, s.clock)
		if ok {
			return []events.Event{e}, due
		}
		return nil, due
	}
	return nil, true
}

// process is the orchestrator's process: load, accept the input, advance,
// append one record per step command; with mayCrash it may crash after
// any number of those records.
func (s *sim) process(d simDelivery, mayCrash bool) {
	s.t.Helper()
	if mayCrash && s.broken < 2 && s.chance("broken?", 40) {
		s.breakRun()
	}
	st := s.cache
	if st != nil && st.LastSeq < s.seq() {
		// Behind outside appends: caught up, or dropped on the conflict.
		if s.chance("catch up?", 2) {
			s.catchUpFrom(st, int(st.LastSeq))
		} else {
			st = nil
		}
	}
	if st == nil {
		st = s.fold(true)
		s.cache = st
	}
	if d := simDiff(st, s.fold(false)); d != "" {
		s.fail("the cached state differs from a fold of the history: %s", d)
	}
	// Two more states, folded separately (one from the snapshot), must
	// take the input and decide exactly as the cached one.
	a, b := s.fold(false), s.fold(true)

	input, due := s.accept(st, d)
	if !due {
		s.logf("deliver %v: not due yet", d)
		s.rearm(st, d.timer)
		return
	}
	for _, e := range input {
		if err := st.Apply(e); err != nil {
			s.fail("apply %s: %v", simShow(e), err)
		}
	}
	s.checkTaken(st, d, input)
	var decided []events.Event
	if st.Status == workflow.StatusRunning {
		var err error
		if decided, err = workflow.Advance(st, s.def); err != nil {
			s.fail("Advance: %v", err)
		}
	}
	all := append(slices.Clone(input), decided...)
	s.crossCheck(a, b, d, input, decided)

	recs := simRecords(all)
	if mayCrash && s.chance("crash?", s.p.crash) {
		k := rapid.IntRange(0, len(recs)).Draw(s.t, "records kept")
		s.logf("deliver %v: crash after %d of %d records (%d events)", d, k, len(recs), len(all))
		for i := range min(k+1, len(recs)) {
			s.prepare(recs[i])
		}
		kept := 0
		for _, r := range recs[:k] {
			s.appendRec(r)
			kept += len(r)
		}
		s.cache = nil
		s.checkRecovery(d, input, all, k, kept, st)
		s.queue = append(s.queue, d) // not acked: delivered again
		return
	}
	s.logf("deliver %v: %d events", d, len(all))
	for _, r := range recs {
		s.prepare(r)
		s.appendRec(r)
	}
	st.LastSeq = s.seq()
	if mayCrash && s.chance("follow-up fails?", 2*s.p.crash) {
		// The decision is stored, but a follow-up (a child's cancel) fails:
		// the input is not acked and comes again, and nothing is canceled
		// until it does, so a redrive may come first.
		s.logf("  its follow-ups fail: delivered again")
		s.queue = append(s.queue, d)
	} else {
		s.closeOut(st)
	}
	if st.Status == workflow.StatusRunning && s.chance("snapshot?", 4) {
		b, err := workflow.EncodeSnapshot(st)
		if err != nil {
			s.fail("EncodeSnapshot: %v", err)
		}
		s.snap, s.snapSeq = b, st.LastSeq
	}
	if d.kind != simExternal {
		s.seen = append(s.seen, d)
	}
	s.checkStored()
	s.checkState(st)
	s.checkChildren(st, s.evs)
}

// checkTaken checks that a result is recorded with what it reports: a
// task's or child's output is the step's, unchanged (nil stays nil), in
// the event and in the state st that applied it.
func (s *sim) checkTaken(st *workflow.State, d simDelivery, input []events.Event) {
	s.t.Helper()
	if d.kind == simResult && d.result.Outcome == events.OutcomeFailed && len(input) == 1 {
		s.checkSuspension(st, d, input[0])
	}
	if d.kind != simResult || d.result.Outcome != events.OutcomeCompleted || d.result.Output == simTooLarge {
		return
	}
	stored := func(v any) any {
		return simStored([]events.Event{{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Output: v}}})[0].StepCompleted.Output
	}
	want := stored(d.result.Output)
	for _, e := range input {
		c := e.StepCompleted
		if c == nil {
			continue
		}
		if c.Path != d.result.Path || c.Gen != d.result.Gen || !reflect.DeepEqual(stored(c.Output), want) {
			s.fail("result %v recorded as %s, want output %v", d, simShow(e), d.result.Output)
		}
		if step := st.Steps[c.Path]; step == nil || !reflect.DeepEqual(stored(step.Output), want) {
			s.fail("result %v recorded, but the step holds %+v, want output %v", d, step, d.result.Output)
		}
	}
}

// checkSuspension checks how a step's last failure e (of result d) is
// recorded: a task whose policy says exhausted: suspend is suspended in
// a running workflow, unless a catch of the step handles the error or it
// is invalid_output (an output that cannot be recorded would be the same
// again); anything else fails (docs/language.md, "Suspend instead of
// fail").
func (s *sim) checkSuspension(st *workflow.State, d simDelivery, e events.Event) {
	s.t.Helper()
	typ := d.result.Error.Type
	step := s.def.Step(simID(d.result.Path))
	want := step.Kind == definition.KindTask && step.Retry.Suspend && st.Status == workflow.StatusRunning &&
		typ != workflow.ErrTypeInvalidOutput &&
		!slices.ContainsFunc(step.Catch, func(c *definition.Catch) bool { return len(c.Errors) == 0 || slices.Contains(c.Errors, typ) })
	if got := e.StepSuspended != nil; got != want || !got && e.StepFailed == nil {
		s.fail("result %v (error %s) recorded as %s, want suspended %v", d, typ, simShow(e), want)
	}
}

// simTooLarge is the output of a task attempt that cannot be recorded.
const simTooLarge = "(an output too large to record)"

// checkState checks what the state itself says: a foreach never has more
// iterations in flight than its concurrency, a repeat never goes past its
// iterations, a foreach's output has an entry per item and a parallel's
// one per branch, and a failed workflow names a failed step.
func (s *sim) checkState(st *workflow.State) {
	s.t.Helper()
	if st.Status == workflow.StatusFailed && st.ErrorPath != "" {
		if step := st.Steps[st.ErrorPath]; step == nil || step.Status != workflow.StepFailed {
			s.fail("the workflow failed at %s, which is %+v", st.ErrorPath, step)
		}
	}
	// A signal request counts once, however often it was sent
	// (docs/language.md, "wait"): the state holds one signal per request
	// id, at the event that first recorded it.
	var want []int
	ids := map[string]bool{}
	for i, e := range s.evs {
		if sr := e.SignalReceived; sr != nil && (sr.RequestID == "" || !ids[sr.RequestID]) {
			ids[sr.RequestID] = true
			want = append(want, i+1)
		}
	}
	var got []int
	for _, sig := range st.Signals {
		got = append(got, sig.Seq)
	}
	if !slices.Equal(got, want) {
		s.fail("signals recorded at events %v, want one per request at %v", got, want)
	}
	m := newSimModel(s.evs)
	for path, step := range st.Steps {
		_, id := simSplit(path)
		d := s.def.Step(id)
		switch {
		case d.Repeat != nil && step.Iteration-m.budget[path] >= d.Repeat.MaxIterations:
			// A redrive gives a repeat max_iterations more from where its
			// StepReopened says.
			s.fail("repeat %s at iteration %d of %d from %d", path, step.Iteration, d.Repeat.MaxIterations, m.budget[path])
		case d.Foreach != nil && step.Status == workflow.StepCompleted && step.LastError == nil:
			if out, ok := step.Output.([]any); !ok || len(out) != len(step.Items) {
				s.fail("foreach %s completed with %v for %d items", path, step.Output, len(step.Items))
			}
		case d.Parallel != nil && step.Status == workflow.StepCompleted && step.LastError == nil:
			if out, ok := step.Output.(map[string]any); !ok || len(out) != len(d.Parallel.Branches) {
				s.fail("parallel %s completed with %v for %d branches", path, step.Output, len(d.Parallel.Branches))
			}
		case d.Foreach != nil && step.Status == workflow.StepRunning && st.Status == workflow.StatusRunning && s.live(st, m, path):
			// An iteration is in flight while work of it is: a task, child,
			// wait or sleep open. (After a redrive, an iteration waiting for
			// room may show its containers running, with nothing in them.)
			busy := map[string]bool{}
			for p, in := range st.Steps {
				if (in.Status == workflow.StepRunning || in.Status == workflow.StepWaiting) && !simContainer(in.Kind) &&
					strings.HasPrefix(p, path+"[") && s.live(st, m, p) {
					busy[p[:len(path)+strings.IndexByte(p[len(path):], ']')]] = true
				}
			}
			if len(busy) > d.Foreach.Concurrency {
				s.fail("foreach %s has %d iterations in flight, concurrency %d: %v", path, len(busy), d.Foreach.Concurrency, slices.Sorted(maps.Keys(busy)))
			}
		}
	}
}

// simSplit returns a path's prefix (ending in "." or empty) and step id.
func simSplit(path string) (prefix, id string) {
	i := strings.LastIndexByte(path, '.')
	return path[:i+1], path[i+1:]
}

// simParent is where a step sits in the definition: in the steps of
// another (its catch, or its body when loop), or at the top (id "").
type simParent struct {
	id          string
	loop, catch bool
}

// up returns the path of the step whose steps the step at path is among
// (its container, or the step whose catch it is in) and how; ok is false
// for a step at the top.
func (s *sim) up(path string) (up string, par simParent, ok bool) {
	if s.parents == nil {
		s.parents = map[string]simParent{}
		for d := range s.def.All() {
			for _, list := range d.Nested() {
				for _, c := range list {
					s.parents[c.ID] = simParent{id: d.ID}
				}
			}
			if d.Foreach != nil || d.Repeat != nil {
				for _, c := range d.Nested()[0] {
					s.parents[c.ID] = simParent{id: d.ID, loop: true}
				}
			}
			for _, c := range d.Catch {
				for _, cs := range c.Do {
					s.parents[cs.ID] = simParent{id: d.ID, catch: true}
				}
			}
		}
	}
	prefix, id := simSplit(path)
	if par, ok = s.parents[id]; !ok {
		return "", par, false
	}
	up = prefix + par.id
	if par.loop {
		up = prefix[:strings.LastIndexByte(prefix, '[')]
	}
	return up, par, true
}

// inside reports whether the step at path is nested, at any depth, in the
// step at outer (in its steps or its catch).
func (s *sim) inside(path, outer string) bool {
	for {
		up, _, ok := s.up(path)
		if !ok {
			return false
		}
		if up == outer {
			return true
		}
		path = up
	}
}

// followed reports whether the step at path is inside the step at outer
// and followed by decisions from there: the containers between are
// running (or canceled, by the decision at hand), and a catch's step
// failed (and no redrive runs it again first).
func (s *sim) followed(st *workflow.State, m *simModel, path, outer string) bool {
	for {
		up, par, ok := s.up(path)
		if !ok {
			return false
		}
		if up == outer {
			return true
		}
		ps := st.Steps[up]
		switch {
		case ps == nil:
			return false
		case par.catch && (ps.Status != workflow.StepFailed || s.rerun(st, m, ps)):
			return false
		case !par.catch && ps.Status != workflow.StepRunning && ps.Status != workflow.StepCanceled:
			return false
		}
		path = up
	}
}

// live reports whether the step at path is followed by decisions: the
// steps around it are running (a catch's steps: the step it catches
// failed, and no redrive runs it again first). A step left open by a
// workflow timeout in a catch whose step a redrive runs again is not.
func (s *sim) live(st *workflow.State, m *simModel, path string) bool {
	up, par, ok := s.up(path)
	if !ok {
		return true
	}
	ps := st.Steps[up]
	if ps == nil {
		return false
	}
	if par.catch {
		return ps.Status == workflow.StepFailed && !s.rerun(st, m, ps) && s.live(st, m, up)
	}
	return ps.Status == workflow.StepRunning && s.live(st, m, up)
}

// rearm puts back a timer delivered before the state's due time, unless
// one of its id is pending anyway.
func (s *sim) rearm(st *workflow.State, td events.TimerDue) {
	if slices.ContainsFunc(s.timers, func(t events.TimerDue) bool { return t.TimerID == td.TimerID }) {
		return
	}
	if td.Path == "" {
		td.Due = st.TimeoutAt
	} else if step := st.Steps[td.Path]; step != nil {
		td.Due = step.TimeoutAt
	}
	s.timers = append(s.timers, td)
}

// simRecords splits events into records as the orchestrator appends them:
// each ends at a step command, or at the end.
func simRecords(evs []events.Event) [][]events.Event {
	var out [][]events.Event
	start := 0
	for i, e := range evs {
		if e.Type != events.TypeStepScheduled && i != len(evs)-1 {
			continue
		}
		out = append(out, evs[start:i+1])
		start = i + 1
	}
	return out
}

// crossCheck decides on a and b, two separate folds of the history the
// cached state had: each takes the input as the cached state did, they
// decide the same events, every decision is one that may follow the state
// it is made on, and together they are what the cached state decided.
func (s *sim) crossCheck(a, b *workflow.State, d simDelivery, input, decided []events.Event) {
	s.t.Helper()
	for _, st := range []*workflow.State{a, b} {
		in, _ := s.accept(st, d)
		if !simSameEvents(in, input) {
			s.fail("input %v taken as %v on a fold, %v on the cache", d, in, input)
		}
		for _, e := range in {
			if err := st.Apply(e); err != nil {
				s.fail("apply %s: %v", simShow(e), err)
			}
		}
	}
	m := newSimModel(append(slices.Clone(s.evs), input...))
	var got []events.Event
	for round := 0; a.Status == workflow.StatusRunning; round++ {
		ea, eb := workflow.Decide(a, s.def), workflow.Decide(b, s.def)
		if !simSameEvents(ea, eb) {
			s.fail("two folds of one history decide differently:\n%s\nfrom the snapshot:\n%s", simShowAll(ea), simShowAll(eb))
		}
		if len(ea) == 0 {
			break
		}
		// A decision ends at its first step command (Decide).
		if i := slices.IndexFunc(ea, func(e events.Event) bool { return e.StepScheduled != nil }); i >= 0 && i < len(ea)-1 {
			s.fail("a decision goes on after its first step command:\n%s", simShowAll(ea))
		}
		if round > 1000 {
			s.fail("decisions do not settle")
		}
		for i, e := range ea {
			if msg, bug := s.illegal(a, e, m, ea[i+1:]); msg != "" {
				s.failKnown(bug, "decision %s: %s\n(decided with\n%s)", simShow(e), msg, simShowAll(ea[:i]))
			}
			if err := a.Apply(e); err != nil {
				s.fail("apply %s: %v", simShow(e), err)
			}
			m.add(e)
			if err := b.Apply(e); err != nil {
				s.fail("apply %s: %v", simShow(e), err)
			}
		}
		got = append(got, ea...)
	}
	// Once decisions settle, no wait they follow is left waiting while a
	// signal of its name is pending: each signal satisfies a wait
	// (docs/language.md, "wait"). A suspended workflow keeps its signals
	// for after the resume, and a queued one for after its admission.
	if a.Shown() == workflow.StatusRunning {
		for _, p := range a.Order {
			w := a.Steps[p]
			if w.Kind == "wait" && w.Status == workflow.StepWaiting && s.live(a, m, p) &&
				slices.ContainsFunc(a.Signals, func(sig *workflow.Signal) bool { return sig.Name == w.Signal && !sig.Consumed }) {
				s.fail("wait %s is left waiting with a %q signal pending", p, w.Signal)
			}
		}
	}
	if !simSameEvents(got, decided) {
		s.fail("the cached state decided differently from a fold of its history:\ncached:\n%s\nfold:\n%s", simShowAll(decided), simShowAll(got))
	}
}

// checkRecovery checks a crash that kept k records (kept events) of a
// decision: deciding again from the fold of what was stored does not take
// the input twice, and ends in the state final the whole decision made.
func (s *sim) checkRecovery(d simDelivery, input, all []events.Event, k, kept int, final *workflow.State) {
	s.t.Helper()
	st := s.fold(true)
	s.checkChildren(st, s.evs)
	again, _ := s.accept(st, d)
	switch {
	case k == 0 && !simSameEvents(again, input):
		s.fail("after a crash keeping no record, input %v is taken as\n%s\nwant\n%s", d, simShowAll(again), simShowAll(input))
	case k > 0 && len(input) > 0 && len(again) > 0:
		s.fail("after a crash keeping %d records, input %v is taken twice:\n%s", k, d, simShowAll(again))
	case k > 0 && len(again) > 0:
		// Not taken before, taken now: the decisions kept made it apply
		// (a timer scheduled again under its id).
		return
	}
	for _, e := range again {
		if err := st.Apply(e); err != nil {
			s.fail("apply %s: %v", simShow(e), err)
		}
	}
	var rest []events.Event
	if st.Status == workflow.StatusRunning {
		var err error
		if rest, err = workflow.Advance(st, s.def); err != nil {
			s.fail("Advance after a crash: %v", err)
		}
	}
	st.LastSeq = final.LastSeq
	if d := simDiff(st, final); d != "" {
		s.failKnown("crash changes the decision", "after a crash keeping %d records, deciding again ends elsewhere than the whole decision: %s\ndecided again:\n%s\nthe rest of the decision:\n%s",
			k, d, simShowAll(rest), simShowAll(all[max(kept, len(again)):]))
	}
}

// checkStored checks the stored history after a completed input: folded
// afresh it decides nothing more, and a snapshot of any prefix of it, plus
// the rest, folds to the same state.
func (s *sim) checkStored() {
	s.t.Helper()
	st := s.fold(false)
	if evs := workflow.Decide(st, s.def); len(evs) > 0 {
		s.fail("a decided history decides more when folded again:\n%s", simShowAll(evs))
	}
	whole, err := workflow.Fold(s.evs)
	if err != nil {
		s.fail("Fold: %v", err)
	}
	p := 1 + (len(s.seen)*7919)%len(s.evs)
	prefix, err := workflow.Fold(s.evs[:p])
	if err != nil {
		s.fail("Fold: %v", err)
	}
	b, err := workflow.EncodeSnapshot(prefix)
	if err != nil {
		s.fail("EncodeSnapshot: %v", err)
	}
	restored, err := workflow.DecodeSnapshot(b, 0)
	if err != nil {
		s.fail("DecodeSnapshot: %v", err)
	}
	for _, e := range s.evs[p:] {
		if err := restored.Apply(e); err != nil {
			s.fail("apply %s after a snapshot: %v", simShow(e), err)
		}
	}
	if d := simDiff(restored, whole); d != "" {
		s.fail("the snapshot of the first %d events plus the rest folds differently: %s", p, d)
	}
	s.checkChildren(prefix, s.evs[:p])
	s.checkChildren(restored, s.evs)
}

// closeOut cancels the children the state no longer needs, as the
// orchestrator does after every fold (workflow.AbandonedSteps): those of
// a workflow that completed or was canceled, of steps a failing parallel
// or foreach canceled, and of steps a redrive superseded. Each reports
// back canceled (which the parent ignores). After a crash none is
// canceled until an input is processed again: by then a redrive may have
// started the step again.
//
// Then every child still running is one st needs: its step's current
// child, running in a run that runs or failed (a redrive may take its
// result). Any other would run on with no one to take its outcome.
func (s *sim) closeOut(st *workflow.State) {
	s.t.Helper()
	for _, step := range workflow.AbandonedSteps(st) {
		for _, c := range s.children {
			if !c.done && c.id == step.ChildID {
				c.done = true
				s.queue = append(s.queue, simDelivery{kind: simResult, result: events.Result{V: 1, WorkflowID: "wf", Path: c.path,
					Gen: c.gen, Attempt: 1, Outcome: events.OutcomeFailed, Time: s.clock,
					Error: &events.Error{Type: workflow.ErrTypeCanceled, Message: "child canceled"}}})
			}
		}
	}
	for _, c := range s.children {
		step := st.Steps[c.path]
		if !c.done && (step == nil || step.ChildID != c.id || step.Status != workflow.StepRunning ||
			st.Status != workflow.StatusRunning && st.Status != workflow.StatusFailed) {
			now := "missing"
			if step != nil {
				now = fmt.Sprintf("%s gen %d naming %s", step.Status, step.Gen, step.ChildID)
			}
			s.fail("child %s (step %s gen %d) is left running, not canceled, though the run (%s) no longer needs it: its step is %s, superseded %v",
				c.id, c.path, c.gen, st.Status, now, simChildIDs(st.Superseded))
		}
	}
}

// checkChildren checks that state st of history hist forgets no child it
// started: every child whose result st has not taken is named by a step
// still running or canceled (a canceled step's child is to be canceled),
// or kept in Superseded (a redrive started its canceled step again,
// skipped or failed it); and that no child is to be canceled twice.
func (s *sim) checkChildren(st *workflow.State, hist []events.Event) {
	s.t.Helper()
	tracked := map[string]bool{}
	for _, step := range st.Steps {
		if step.ChildID != "" && (step.Status == workflow.StepRunning || step.Status == workflow.StepCanceled) {
			tracked[step.ChildID] = true
		}
	}
	for _, step := range st.Superseded {
		tracked[step.ChildID] = true
	}
	open := simOpenChildren(hist)
	for _, id := range slices.Sorted(maps.Keys(open)) {
		if !tracked[id] {
			now := "missing"
			if step := st.Steps[open[id].Path]; step != nil {
				now = fmt.Sprintf("%s gen %d naming %s", step.Status, step.Gen, step.ChildID)
			}
			s.fail("child %s (step %s gen %d) was started and its result not taken, but the state forgets it: the step is %s, superseded %v",
				id, open[id].Path, open[id].Gen, now, simChildIDs(st.Superseded))
		}
	}
	seen := map[string]bool{}
	for _, step := range workflow.AbandonedSteps(st) {
		if seen[step.ChildID] {
			s.fail("child %s (step %s) is to be canceled twice: superseded %v", step.ChildID, step.Path, simChildIDs(st.Superseded))
		}
		seen[step.ChildID] = true
	}
}

// simOpenChildren returns the children started in hist whose result is
// not recorded (a child's result is recorded with its gen; a failure the
// core decides has none), by id.
func simOpenChildren(hist []events.Event) map[string]*events.ChildStarted {
	type key struct {
		path string
		gen  int
	}
	open := map[key]*events.ChildStarted{}
	for _, e := range hist {
		switch {
		case e.ChildStarted != nil:
			open[key{e.ChildStarted.Path, e.ChildStarted.Gen}] = e.ChildStarted
		case e.StepCompleted != nil && e.StepCompleted.Gen > 0:
			delete(open, key{e.StepCompleted.Path, e.StepCompleted.Gen})
		case e.StepFailed != nil && e.StepFailed.Gen > 0:
			delete(open, key{e.StepFailed.Path, e.StepFailed.Gen})
		case e.StepSuspended != nil && e.StepSuspended.Gen > 0:
			delete(open, key{e.StepSuspended.Path, e.StepSuspended.Gen})
		}
	}
	out := make(map[string]*events.ChildStarted, len(open))
	for _, c := range open {
		out[c.WorkflowID] = c
	}
	return out
}

// simChildIDs returns the child ids of steps.
func simChildIDs(steps []*workflow.Step) []string {
	var ids []string
	for _, s := range steps {
		ids = append(ids, s.ChildID)
	}
	return ids
}

// simReached names the rare transitions hist goes through, for the
// simulation to report how often its cases reach them: a child step a
// redrive superseded, by the event that did.
func simReached(hist []events.Event) []string {
	var out []string
	st := &workflow.State{}
	for _, e := range hist {
		n := len(st.Superseded)
		if err := st.Apply(e); err != nil {
			return out
		}
		if len(st.Superseded) > n {
			out = append(out, "child superseded by "+string(e.Type))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// act performs one drawn action of the schedule.
func (s *sim) act() {
	type action struct {
		weight int
		do     func()
	}
	var open []*simTask
	for _, t := range s.tasks {
		if !t.done {
			open = append(open, t)
		}
	}
	var running []*simChild
	for _, c := range s.children {
		if !c.done {
			running = append(running, c)
		}
	}
	var acts []action
	if len(s.queue) > 0 {
		acts = append(acts, action{8, func() {
			i := s.draw("delivery", len(s.queue))
			d := s.queue[i]
			s.queue = slices.Delete(s.queue, i, i+1)
			s.process(d, true)
		}})
	}
	if len(open) > 0 {
		acts = append(acts, action{4, func() { s.execute(open[s.draw("task", len(open))], false) }})
		acts = append(acts, action{1, func() { s.hold(open[s.draw("held task", len(open))]) }})
	}
	if len(running) > 0 {
		acts = append(acts, action{1, func() { s.finishChild(running[s.draw("child", len(running))], false) }})
	}
	if len(s.timers) > 0 {
		// Timers fire in the order they are due, now and then later.
		acts = append(acts, action{2, func() {
			if s.chance("late timer?", 4) {
				s.fire(s.draw("timer", len(s.timers)))
			} else {
				s.fire(s.firstTimer())
			}
		}})
	}
	if len(s.seen) > 0 {
		acts = append(acts, action{1, func() {
			d := s.seen[s.draw("redeliver", len(s.seen))]
			s.logf("redeliver %v", d)
			s.queue = append(s.queue, d)
		}})
	}
	acts = append(acts,
		action{1, func() { s.signal(s.draw("signal", 3)) }},
		action{1, s.cancel},
		action{1, s.redrive},
		action{1, s.resume},
		action{1, s.expire},
		action{2, s.admit},
		action{1, func() { s.clock = s.clock.Add(time.Duration(1+s.draw("tick", 20)) * time.Second) }},
	)
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	n := s.draw("action", total)
	for _, a := range acts {
		if n < a.weight {
			a.do()
			return
		}
		n -= a.weight
	}
}

// status is the workflow's status as the API reads it from the history.
func (s *sim) status() workflow.Status { return s.fold(false).Status }

// external appends an outside record after the history's end.
func (s *sim) external(e events.Event) {
	e.Time = s.clock
	s.appendRec([]events.Event{e})
	s.queue = append(s.queue, simDelivery{kind: simExternal, seq: len(s.recEnd)})
}

// signal sends signal a, b or c (no wait takes c); the API refuses a
// workflow that does not run (its append is conditional on the history it
// read to check that, so no signal follows a close).
func (s *sim) signal(which int) {
	if s.status() != workflow.StatusRunning {
		return
	}
	name := []string{"a", "b", "c"}[which]
	s.signals++
	id := fmt.Sprintf("r%d", s.signals)
	if s.signals > 1 && !s.draining && s.chance("repeat request id?", 8) {
		id = fmt.Sprintf("r%d", 1+s.draw("request id", s.signals-1))
	}
	s.logf("signal %s %s", name, id)
	s.external(events.Event{Type: events.TypeSignalReceived, SignalReceived: &events.SignalReceived{
		Name: name, Payload: int64(s.signals), RequestID: id}})
}

func (s *sim) cancel() {
	if s.cancels >= 2 || !s.chance("cancel?", 12) {
		return
	}
	id := s.requestID("cancel")
	if s.fold(true).RequestSeen("cancel", id) {
		s.logf("cancel %s again: answered as done", id)
		return
	}
	if s.status() != workflow.StatusRunning {
		return
	}
	s.cancels++
	s.made("cancel")
	s.logf("cancel %s", id)
	s.external(events.Event{Type: events.TypeCancelRequested, CancelRequested: &events.CancelRequested{Reason: "sim", RequestID: id}})
}

// requestID is the request id of a client's next request of kind: now
// and then that of an earlier one, as a client that lost its answer asks
// again. A new one is counted once it is appended (made).
func (s *sim) requestID(kind string) string {
	made := s.requested[kind]
	if made > 0 && !s.draining && s.chance("repeat "+kind+" request id?", 4) {
		return fmt.Sprintf("%s%d", kind, 1+s.draw(kind+" request id", made))
	}
	return fmt.Sprintf("%s%d", kind, made+1)
}

// made counts a request of kind as appended.
func (s *sim) made(kind string) {
	if s.requested == nil {
		s.requested = map[string]int{}
	}
	s.requested[kind]++
}

// redrive retries a failed workflow, as the API does: a request whose id
// the history records is answered as done, whatever the run did since;
// the append is conditional on the failure it read.
func (s *sim) redrive() {
	if s.retries >= 3 {
		return
	}
	id := s.requestID("retry")
	if s.fold(true).RequestSeen("retry", id) {
		s.logf("redrive %s again: answered as done", id)
		return
	}
	if s.status() != workflow.StatusFailed || s.fold(true).Expired {
		return
	}
	s.retries++
	s.made("retry")
	s.logf("redrive %s", id)
	s.external(events.Event{Type: events.TypeWorkflowRetried, WorkflowRetried: &events.WorkflowRetried{RequestID: id}})
}

// expire begins the deletion of a closed run, as retention does: its
// WorkflowExpired record, after which the run takes no redrive and, what
// ever is delivered late, stays as it closed.
func (s *sim) expire() {
	st := s.fold(true)
	if s.expiredAs != "" || !st.Status.Terminal() {
		return
	}
	s.expiredAs = st.Status
	s.logf("expire (%s)", st.Status)
	s.appendRec([]events.Event{{Type: events.TypeWorkflowExpired, Time: s.clock,
		WorkflowExpired: &events.WorkflowExpired{Retention: time.Hour}}})
}

// resume resumes a suspended workflow, as the API does (see redrive).
func (s *sim) resume() {
	if s.resumes >= 6 {
		return
	}
	id := s.requestID("resume")
	if s.fold(true).RequestSeen("resume", id) {
		s.logf("resume %s again: answered as done", id)
		return
	}
	if s.fold(false).Shown() != workflow.StatusSuspended {
		return
	}
	s.resumes++
	s.made("resume")
	s.logf("resume %s", id)
	s.external(events.Event{Type: events.TypeWorkflowResumed, WorkflowResumed: &events.WorkflowResumed{RequestID: id}})
}

// breakRun fails a running workflow that cannot go on, as the shell does
// (failBroken) when a decision would pass MaxHistoryEvents or is too large
// to store, or the history does not fold: a WorkflowFailed appended after
// the stored history, not decided by the core, whatever is open (tasks,
// children, timers, waits, suspended steps, a queued run). The input at
// hand is then processed on the failed run. (A cancel requested or a
// timeout that fired decides a close of its own, which passes no limit.)
func (s *sim) breakRun() {
	st := s.fold(false)
	if st.Status != workflow.StatusRunning || st.CancelRequested || st.TimedOut {
		return
	}
	s.broken++
	s.logf("broken: the run cannot go on (limit)")
	s.appendRec([]events.Event{{Type: events.TypeWorkflowFailed, Time: s.clock,
		WorkflowFailed: &events.WorkflowFailed{Error: events.Error{Type: workflow.ErrTypeLimit, Message: "history would grow past its limit"}}}})
	s.cache = nil
}

// admit records that a queued run took a slot, as the shell does once it
// holds one (more than once too: an admission is recorded again when a
// crash cut the first short of the shell's memory).
func (s *sim) admit() {
	st := s.fold(false)
	if st.Shown() != workflow.StatusQueued {
		return
	}
	s.logf("admit")
	s.external(events.Event{Type: events.TypeWorkflowAdmitted, WorkflowAdmitted: &events.WorkflowAdmitted{}})
}

// firstTimer returns the index of the pending timer due first.
func (s *sim) firstTimer() int {
	first := 0
	for i, t := range s.timers {
		if t.Due.Before(s.timers[first].Due) {
			first = i
		}
	}
	return first
}

// fire delivers the i-th pending timer once it is due.
func (s *sim) fire(i int) {
	td := s.timers[i]
	s.timers = slices.Delete(s.timers, i, i+1)
	if s.clock.Before(td.Due) {
		s.clock = td.Due
	}
	if !s.draining && s.chance("skewed clock?", 8) {
		// The timer service's clock is ahead of the orchestrator's.
		s.clock = td.Due.Add(-time.Second)
	}
	s.logf("timer %s fires", td.TimerID)
	s.queue = append(s.queue, simDelivery{kind: simTimer, timer: td})
}

// settled reports whether the history after a command's record holds its
// step's outcome or cancellation (the executor's check before running a
// redelivery, eventstore's StepProgressAfter).
func (s *sim) settled(t *simTask) bool {
	for _, e := range s.evs[s.recEnd[t.seq-1]:] {
		switch {
		case e.Type == events.TypeWorkflowCompleted || e.Type == events.TypeWorkflowCanceled:
			return true
		case e.StepCanceled != nil && e.StepCanceled.Path == t.cmd.Path:
			return true
		case e.StepCompleted != nil && e.StepCompleted.Path == t.cmd.Path && e.StepCompleted.Gen == t.cmd.Gen:
			return true
		case e.StepFailed != nil && e.StepFailed.Path == t.cmd.Path && e.StepFailed.Gen == t.cmd.Gen:
			return true
		case e.StepSuspended != nil && e.StepSuspended.Path == t.cmd.Path && e.StepSuspended.Gen == t.cmd.Gen:
			return true
		}
	}
	return false
}

// hold reports that a task's next attempt waits for its flow control, or
// has started after waiting, as an executor does for a step with a
// concurrency or rate limit: shown, never an attempt.
func (s *sim) hold(t *simTask) {
	if t.cmd.Flow == nil {
		return
	}
	r := events.Result{V: 1, WorkflowID: "wf", Path: t.cmd.Path, Gen: t.cmd.Gen, Attempt: max(t.cmd.FirstAttempt, 1) + t.delivered,
		Time: s.clock, Outcome: events.OutcomeStarted}
	if s.chance("held?", 2) {
		r.Outcome, r.Error = events.OutcomeHeld, &events.Error{Type: "rate_limit", Message: "used up"}
	}
	s.logf("executor: %s gen=%d attempt %d shown %d", t.cmd.Path, t.cmd.Gen, r.Attempt, r.Outcome)
	s.queue = append(s.queue, simDelivery{kind: simResult, result: r})
}

// execute delivers a step command to an executor, which runs one attempt
// and reports it as the worker does; succeed forces a success.
func (s *sim) execute(t *simTask, succeed bool) {
	t.delivered++
	attempt := max(t.cmd.FirstAttempt, 1) - 1 + t.delivered
	maxAttempts := max(t.cmd.Retry.MaxAttempts, 1)
	r := events.Result{V: 1, WorkflowID: "wf", Path: t.cmd.Path, Gen: t.cmd.Gen, Attempt: attempt, Time: s.clock}
	outcome := 0
	if !succeed {
		outcome = s.draw("outcome", 8)
	}
	switch {
	case t.delivered > 1 && s.settled(t):
		r.Outcome = events.OutcomeCompleted
		t.done = true
	case t.delivered > maxAttempts:
		r.Outcome = events.OutcomeFailed
		r.Error = &events.Error{Type: "attempts_exhausted", Message: "lost"}
		t.done = true
	case outcome <= 4:
		r.Outcome, r.Output = events.OutcomeCompleted, int64(attempt)
		if !succeed && s.chance("too large?", 10) {
			r.Output = simTooLarge
		}
		t.done = true
	case outcome <= 6 && t.delivered < maxAttempts:
		r.Outcome, r.RetryDelay = events.OutcomeAttemptFailed, time.Second
		r.Error = &events.Error{Type: "oops", Message: "try again"}
	default:
		r.Outcome = events.OutcomeFailed
		r.Error = &events.Error{Type: []string{"oops", "fatal"}[outcome%2], Message: "no"}
		if s.chance("invalid output?", 5) {
			// A handler's output with no JSON form: not retried.
			r.Error.Type = workflow.ErrTypeInvalidOutput
		}
		t.done = true
	}
	if t.done && !succeed && s.chance("ack lost?", 8) {
		t.done = false // the command comes back: the worker died before its ack
	}
	s.logf("executor: %s gen=%d attempt %d outcome %d", t.cmd.Path, t.cmd.Gen, attempt, r.Outcome)
	s.queue = append(s.queue, simDelivery{kind: simResult, result: r})
}

// finishChild ends a child workflow: completed, failed or canceled.
func (s *sim) finishChild(c *simChild, succeed bool) {
	c.done = true
	r := events.Result{V: 1, WorkflowID: "wf", Path: c.path, Gen: c.gen, Attempt: 1, Time: s.clock}
	how := 0
	if !succeed {
		how = s.draw("child outcome", 4)
	}
	switch how {
	case 0:
		r.Outcome, r.Output = events.OutcomeCompleted, "child output"
	case 1:
		r.Outcome, r.Error = events.OutcomeFailed, &events.Error{Type: workflow.ErrTypeChild, Message: "child failed"}
	case 3:
		// Not started (its input against its definition's input_schema,
		// its first record too large), or an output too large to hand on.
		typ := s.pick("child error", workflow.ErrTypeInvalidInput, workflow.ErrTypeLimit, workflow.ErrTypeInvalidOutput)
		r.Outcome, r.Error = events.OutcomeFailed, &events.Error{Type: typ, Message: "child " + typ}
	default:
		r.Outcome, r.Error = events.OutcomeFailed, &events.Error{Type: workflow.ErrTypeCanceled, Message: "child canceled"}
	}
	s.logf("child %s gen=%d ends: outcome %d", c.path, c.gen, r.Outcome)
	s.queue = append(s.queue, simDelivery{kind: simResult, result: r})
}

// drain delivers everything outstanding, in order and without crashes:
// results (tasks succeed), children, timers, and a signal for every open
// wait. Then the workflow must be closed: nothing may be left waiting on
// an input that cannot come.
func (s *sim) drain() {
	s.logf("drain")
	s.draining = true
	for n := 0; ; n++ {
		if n > 5000 {
			s.fail("the run does not settle")
		}
		if len(s.queue) > 0 {
			d := s.queue[0]
			s.queue = s.queue[1:]
			s.process(d, false)
			continue
		}
		if s.fold(false).Shown() == workflow.StatusQueued {
			s.admit()
			continue
		}
		if i := slices.IndexFunc(s.tasks, func(t *simTask) bool { return !t.done }); i >= 0 {
			s.execute(s.tasks[i], true)
			continue
		}
		if i := slices.IndexFunc(s.children, func(c *simChild) bool { return !c.done }); i >= 0 {
			s.finishChild(s.children[i], true)
			continue
		}
		if len(s.timers) > 0 {
			s.fire(s.firstTimer())
			continue
		}
		st := s.fold(false)
		if st.Status != workflow.StatusRunning {
			return
		}
		if st.Suspended > 0 {
			s.resumes = 0 // a drain resumes as often as it takes
			s.resume()
			continue
		}
		// Signal a wait that has no signal pending. (A wait whose signal
		// is pending is not followed: left open by a workflow timeout in a
		// catch whose step a redrive ran again.)
		send := ""
		for _, path := range st.Order {
			step := st.Steps[path]
			if step.Status != workflow.StepWaiting || step.Kind != "wait" {
				continue
			}
			if !slices.ContainsFunc(st.Signals, func(sig *workflow.Signal) bool { return sig.Name == step.Signal && !sig.Consumed }) {
				send = step.Signal
				break
			}
		}
		if send == "" {
			s.fail("stuck: the workflow runs with nothing in flight and no wait to signal\n%s", simSteps(st))
		}
		s.signal(slices.Index([]string{"a", "b"}, send))
	}
}

// checkHistory checks the whole stored history: no step command or child
// twice, and no second close without a redrive in between.
func (s *sim) checkHistory() {
	type key struct {
		path string
		gen  int
	}
	scheduled, children, requests := map[key]bool{}, map[string]bool{}, map[string]bool{}
	closed := false
	for i, e := range s.evs {
		var req string
		switch {
		case e.WorkflowRetried != nil:
			req = "retry/" + e.WorkflowRetried.RequestID
		case e.WorkflowResumed != nil:
			req = "resume/" + e.WorkflowResumed.RequestID
		case e.CancelRequested != nil:
			req = "cancel/" + e.CancelRequested.RequestID
		}
		if req != "" && requests[req] {
			s.fail("event %d: request %s applied twice", i+1, req)
		}
		requests[req] = true
		switch {
		case e.StepScheduled != nil:
			k := key{e.StepScheduled.Path, e.StepScheduled.Gen}
			if scheduled[k] {
				s.fail("event %d: %v scheduled twice", i+1, k)
			}
			scheduled[k] = true
		case e.ChildStarted != nil:
			if children[e.ChildStarted.WorkflowID] {
				s.fail("event %d: child %s started twice", i+1, e.ChildStarted.WorkflowID)
			}
			children[e.ChildStarted.WorkflowID] = true
		case e.Terminal():
			if closed {
				s.fail("event %d: a second close", i+1)
			}
			closed = true
		case e.Type == events.TypeWorkflowRetried:
			closed = false
		}
	}
}

// illegal says why decision e may not follow state st, whose history m
// holds, or "", and which known bug that is, if any; rest is what the same
// Decide call decided after e.
func (s *sim) illegal(st *workflow.State, e events.Event, m *simModel, rest []events.Event) (msg, bug string) {
	if st.Status != workflow.StatusRunning {
		return "decided on a workflow that is " + string(st.Status), ""
	}
	// A cancel request or the workflow's timeout closes it at once.
	if (st.CancelRequested || st.TimedOut) && !(st.CancelRequested && e.Type == events.TypeWorkflowCanceled) &&
		!(st.TimedOut && e.Type == events.TypeWorkflowFailed) {
		return fmt.Sprintf("decided on instead of closing (cancel requested %v, timed out %v)", st.CancelRequested, st.TimedOut), ""
	}
	// A run of a definition with concurrency decides nothing but its queue
	// (its key, then a look at its slot) until it is admitted.
	if s.def.Concurrency != nil && !st.Admitted && e.Type != events.TypeWorkflowQueued &&
		!(e.TimerScheduled != nil && workflow.IsAdmissionTimer(e.TimerScheduled.TimerID)) &&
		e.Type != events.TypeWorkflowCanceled && !(st.TimedOut && e.Type == events.TypeWorkflowFailed) {
		return fmt.Sprintf("decided %s before the run was admitted", e.Type), ""
	}
	// A suspended workflow decides nothing else until it is resumed.
	if st.Suspended > 0 && !st.CancelRequested && !st.TimedOut {
		return fmt.Sprintf("decided on while %d steps are suspended", st.Suspended), ""
	}
	var path string
	switch p := e.Payload().(type) {
	case *events.StepScheduled:
		path = p.Path
	case *events.ChildStarted:
		path = p.Path
	case *events.WaitStarted:
		path = p.Path
	case *events.TimerScheduled:
		path = p.Path
	case *events.StepStarted:
		path = p.Path
	case *events.StepSkipped:
		path = p.Path
	case *events.StepCompleted:
		path = p.Path
	case *events.StepFailed:
		path = p.Path
	case *events.StepIterated:
		path = p.Path
	case *events.StepCanceled:
		path = p.Path
	case *events.StepReopened:
		path = p.Path
	case *events.SearchAttributesSet:
		path = p.Path
	}
	step := st.Steps[path]
	// A step starts when it has not, or when the last redrive runs it
	// again: a failed or canceled task, wait, sleep, set, fail or workflow
	// step runs again from its start, a container is reopened instead
	// (docs/language.md, "Versions and redrive").
	rerun := s.rerun(st, m, step)
	reopen := rerun && simContainer(step.Kind)
	fresh := step == nil || step.Status == workflow.StepPending || rerun && !reopen
	status := func() string {
		if reopen {
			return string(step.Status) + ", to be reopened"
		}
		return string(step.Status)
	}
	gen := 1
	if step != nil {
		gen = step.Gen + 1
	}
	switch e.Type {
	case events.TypeStepScheduled, events.TypeChildStarted:
		if !fresh {
			return fmt.Sprintf("step %s started again while %s", path, status()), ""
		}
		if g := e.StepScheduled; g != nil && g.Gen != gen {
			return fmt.Sprintf("gen %d, want %d", g.Gen, gen), ""
		}
		if g := e.StepScheduled; g != nil && step != nil && g.FirstAttempt != step.Attempts+1 {
			return fmt.Sprintf("first attempt %d after attempt %d", g.FirstAttempt, step.Attempts), ""
		}
		if g := e.ChildStarted; g != nil && g.Gen != gen {
			return fmt.Sprintf("gen %d, want %d", g.Gen, gen), ""
		}
	case events.TypeWaitStarted, events.TypeStepSkipped:
		if !fresh {
			return fmt.Sprintf("step %s started again while %s", path, status()), ""
		}
	case events.TypeTimerScheduled:
		if path == "" && workflow.IsAdmissionTimer(e.TimerScheduled.TimerID) {
			if !st.Queued || st.Admitted || st.AdmitTimerID != "" {
				return "a look at the slot scheduled while not waiting for one, or twice", ""
			}
		} else if path == "" {
			if st.TimeoutTimerID != "" {
				return "the workflow timeout scheduled again", ""
			}
		} else if !fresh {
			return fmt.Sprintf("step %s started again while %s", path, status()), ""
		}
	case events.TypeStepStarted:
		if e.StepStarted.Kind == "timeout_steps" {
			if step == nil || step.Status != workflow.StepWaiting || !step.TimedOut {
				return fmt.Sprintf("timeout steps of %s, which has not timed out", path), ""
			}
		} else if !fresh {
			return fmt.Sprintf("step %s started again while %s", path, status()), ""
		}
	case events.TypeStepReopened:
		if !reopen {
			return fmt.Sprintf("step %s reopened while %s (kind %q), not redriven", path, step.Status, step.Kind), ""
		}
		// A repeat's max_iterations counts again from the iteration it
		// stopped in when a step inside failed, from the next one when
		// it failed after an iteration.
		want := 0
		if step.Kind == string(definition.KindRepeat) {
			want = step.Iteration
			if s.iterationDone(st, path, step.Iteration) {
				want++
			}
		}
		if e.StepReopened.BudgetFrom != want {
			return fmt.Sprintf("%s %s reopened with its budget from iteration %d, want %d", step.Kind, path, e.StepReopened.BudgetFrom, want), ""
		}
	case events.TypeStepCanceled:
		return s.illegalCancel(st, e.StepCanceled, rest), ""
	case events.TypeStepCompleted:
		if step != nil && (step.Done() || step.Status == workflow.StepCanceled || reopen) && !fresh {
			return fmt.Sprintf("step %s completed again (it is %s)", path, status()), ""
		}
		if msg := simOutsideOutcome(step); msg != "" {
			return msg, ""
		}
		if step != nil && step.Status == workflow.StepWaiting && step.Kind == "sleep" && !step.TimedOut {
			return fmt.Sprintf("sleep %s completed before its timer", path), ""
		}
		if step != nil && step.Status == workflow.StepWaiting && step.Kind == "wait" && e.StepCompleted.SignalSeq == 0 {
			return fmt.Sprintf("wait %s completed without a signal", path), ""
		}
		if seq := e.StepCompleted.SignalSeq; seq > 0 {
			return s.illegalTake(st, step, seq, m)
		}
	case events.TypeStepFailed:
		if step != nil && (step.Done() || step.Status == workflow.StepFailed || step.Status == workflow.StepCanceled) && !fresh {
			return fmt.Sprintf("step %s failed again (it is %s)", path, status()), ""
		}
		if msg := simOutsideOutcome(step); msg != "" {
			return msg, ""
		}
		// A failing parallel or foreach cancels what is still open under
		// it (docs/language.md, "foreach" and "parallel").
		if d := s.def.Step(simID(path)); d != nil && (d.Parallel != nil || d.Foreach != nil) {
			for _, p := range st.Order {
				if in := st.Steps[p]; simOpen(in) && s.followed(st, m, p, path) {
					return fmt.Sprintf("%s fails with %s still %s under it", path, p, in.Status), ""
				}
			}
		}
	case events.TypeStepIterated:
		if step == nil || step.Status != workflow.StepRunning || e.StepIterated.Iteration != step.Iteration+1 {
			return fmt.Sprintf("repeat %s iterated to %d from %+v", path, e.StepIterated.Iteration, step), ""
		}
	case events.TypeSearchAttributesSet:
		return s.illegalSearch(st, step, e.SearchAttributesSet), ""
	case events.TypeWorkflowQueued:
		if s.def.Concurrency == nil || st.Queued {
			return "queued without concurrency, or again", ""
		}
	case events.TypeWorkflowCompleted, events.TypeWorkflowFailed, events.TypeWorkflowCanceled:
	default:
		return "not a decision", ""
	}
	return "", ""
}

// illegalSearch says why recording search attributes as sa does may not
// follow st: the definition's are recorded once, first; a step's once
// each time it completes; both with the names the definition gives them.
func (s *sim) illegalSearch(st *workflow.State, step *workflow.Step, sa *events.SearchAttributesSet) string {
	attrs := s.def.Search
	if sa.Path == "" {
		if st.StartSearched || len(st.Steps) > 0 {
			return fmt.Sprintf("the definition's search recorded with %d steps started (recorded before: %v)", len(st.Steps), st.StartSearched)
		}
	} else {
		if step == nil || step.Status != workflow.StepCompleted || step.Searched {
			return fmt.Sprintf("search of %s recorded while it is %+v", sa.Path, step)
		}
		attrs = s.def.Step(simID(sa.Path)).Search
	}
	var want []string
	for _, a := range attrs {
		want = append(want, a.Name)
	}
	if got := slices.Sorted(maps.Keys(sa.Attributes)); !slices.Equal(got, want) {
		return fmt.Sprintf("search of %q records %v, the definition names %v", sa.Path, got, want)
	}
	return ""
}

// illegalCancel says why canceling a step as sc does may not follow st:
// only a parallel or foreach (without on_error: continue) that fails in
// the same decision cancels, and only the steps open under it.
func (s *sim) illegalCancel(st *workflow.State, sc *events.StepCanceled, rest []events.Event) string {
	step := st.Steps[sc.Path]
	if !simOpen(step) {
		return fmt.Sprintf("canceled %s, which is not open (%+v)", sc.Path, step)
	}
	d := s.def.Step(simID(sc.Cause))
	switch {
	case d == nil || d.Parallel == nil && d.Foreach == nil:
		return fmt.Sprintf("canceled %s for %q, no parallel or foreach", sc.Path, sc.Cause)
	case d.Parallel != nil && d.Parallel.ContinueOnError || d.Foreach != nil && d.Foreach.ContinueOnError:
		return fmt.Sprintf("canceled %s for %s, which goes on on error", sc.Path, sc.Cause)
	case st.Steps[sc.Cause] == nil || st.Steps[sc.Cause].Status != workflow.StepRunning:
		return fmt.Sprintf("canceled %s for %s, which is %+v", sc.Path, sc.Cause, st.Steps[sc.Cause])
	case !s.inside(sc.Path, sc.Cause):
		return fmt.Sprintf("canceled %s for %s, which it is not inside", sc.Path, sc.Cause)
	case !slices.ContainsFunc(rest, func(e events.Event) bool { return e.StepFailed != nil && e.StepFailed.Path == sc.Cause }):
		return fmt.Sprintf("canceled %s for %s, which does not fail in the same decision", sc.Path, sc.Cause)
	}
	return ""
}

// illegalTake says why wait step taking signal seq may not follow st: each
// signal satisfies one wait, a wait takes the first pending signal of its
// name, waits take them in the order they started, and a wait takes none
// after its timeout (docs/language.md, "wait").
func (s *sim) illegalTake(st *workflow.State, step *workflow.Step, seq int, m *simModel) (msg, bug string) {
	if step == nil || step.Status != workflow.StepWaiting || step.Kind != "wait" {
		return fmt.Sprintf("a signal taken by %+v, which is not waiting", step), ""
	}
	path := step.Path
	i := slices.IndexFunc(st.Signals, func(sig *workflow.Signal) bool { return sig.Seq == seq })
	switch {
	case i < 0 || st.Signals[i].Name != step.Signal:
		return fmt.Sprintf("wait %s took event %d, which is no %q signal", path, seq, step.Signal), ""
	case st.Signals[i].Consumed:
		return fmt.Sprintf("wait %s took signal %d, which another wait took", path, seq), ""
	}
	for _, sig := range st.Signals[:i] {
		if sig.Name == step.Signal && !sig.Consumed {
			return fmt.Sprintf("wait %s took signal %d, not the first pending %q (%d)", path, seq, step.Signal, sig.Seq), ""
		}
	}
	for _, p := range st.Order {
		if p == path {
			break
		}
		if w := st.Steps[p]; w.Kind == "wait" && w.Status == workflow.StepWaiting && w.Signal == step.Signal && s.live(st, m, p) {
			bug := ""
			if w.Gen > 1 {
				bug = "a wait started again by a redrive is passed over for a signal"
			}
			return fmt.Sprintf("wait %s took signal %d before wait %s, which started first", path, seq, p), bug
		}
	}
	if step.TimedOut {
		fired := slices.IndexFunc(m.hist, func(h events.Event) bool {
			return h.TimerFired != nil && h.TimerFired.Path == path && h.TimerFired.TimerID == step.TimerID
		}) + 1
		if seq > fired {
			return fmt.Sprintf("wait %s took signal %d, which came after its timeout (event %d)", path, seq, fired),
				"wait takes a signal after its timeout"
		}
	}
	return "", ""
}

// iterationDone reports whether every body step of the repeat at path
// finished in iteration k.
func (s *sim) iterationDone(st *workflow.State, path string, k int) bool {
	for _, b := range s.def.Step(simID(path)).Repeat.Do {
		if bs := st.Steps[fmt.Sprintf("%s[%d].%s", path, k, b.ID)]; bs == nil || !bs.Done() {
			return false
		}
	}
	return true
}

// simOpen reports whether a step is open: running or waiting.
func simOpen(s *workflow.Step) bool {
	return s != nil && (s.Status == workflow.StepRunning || s.Status == workflow.StepWaiting)
}

// simID returns the step id a path ends in.
func simID(path string) string {
	_, id := simSplit(path)
	return id
}

// simModel is what the model keeps of a history as it grows: which failed
// or canceled steps the last redrive is to run again, where each repeat's
// budget of iterations starts, and the history itself.
type simModel struct {
	hist      []events.Event
	failed    bool            // the workflow's last close was a failure
	lastRetry int             // the last redrive's event (1-based), or 0
	closedAt  map[string]int  // the event that last failed, canceled or suspended each step
	late      map[string]bool // a step's last failure came after the workflow failed
	suspended []string        // the steps suspended since the last resume
	resumedAt map[string]int  // the resume that last ran each suspended step again
	budget    map[string]int  // a repeat's first iteration that counts against max_iterations
}

func newSimModel(hist []events.Event) *simModel {
	m := &simModel{closedAt: map[string]int{}, late: map[string]bool{}, budget: map[string]int{}, resumedAt: map[string]int{}}
	for _, e := range hist {
		m.add(e)
	}
	return m
}

func (m *simModel) add(e events.Event) {
	m.hist = append(m.hist, e)
	n := len(m.hist)
	switch {
	case e.StepFailed != nil:
		m.closedAt[e.StepFailed.Path] = n
		m.late[e.StepFailed.Path] = m.failed
	case e.StepCanceled != nil:
		m.closedAt[e.StepCanceled.Path] = n
	case e.StepSuspended != nil:
		m.closedAt[e.StepSuspended.Path] = n
		m.suspended = append(m.suspended, e.StepSuspended.Path)
	case e.Type == events.TypeWorkflowResumed:
		for _, p := range m.suspended {
			m.resumedAt[p] = n
		}
		m.suspended = nil
	case e.StepStarted != nil && e.StepStarted.Kind == string(definition.KindRepeat):
		m.budget[e.StepStarted.Path] = 0
	case e.StepReopened != nil:
		m.budget[e.StepReopened.Path] = e.StepReopened.BudgetFrom
	case e.Type == events.TypeWorkflowFailed:
		m.failed = true
	case e.Type == events.TypeWorkflowRetried:
		// Only a failed workflow is redriven (the core ignores any other).
		if m.failed {
			m.lastRetry, m.failed, m.suspended = n, false, nil
		}
	}
}

// rerun reports whether step s is one a resume runs again (it was
// suspended, and has not moved since), or one the last redrive runs again: it was
// failed or canceled when the redrive came, and has not moved since, and
// no catch was handling its failure (docs/language.md, "Versions and
// redrive": a catch that had begun goes on, and a failure that came after
// the workflow failed goes to its catch).
func (s *sim) rerun(st *workflow.State, m *simModel, step *workflow.Step) bool {
	if step != nil && step.Status == workflow.StepFailed && m.resumedAt[step.Path] > m.closedAt[step.Path] {
		return true // suspended, then resumed
	}
	if step == nil || step.Status != workflow.StepFailed && step.Status != workflow.StepCanceled || m.lastRetry <= m.closedAt[step.Path] {
		return false
	}
	return step.Status != workflow.StepFailed || !s.catchTakes(st, step, m.late[step.Path])
}

// catchTakes reports whether the catch clause that handles failed step
// takes it on a redrive: it has begun (its first step is in the state), or
// the failure came late, after the workflow failed.
func (s *sim) catchTakes(st *workflow.State, step *workflow.Step, late bool) bool {
	prefix, id := step.Path[:strings.LastIndexByte(step.Path, '.')+1], step.Path[strings.LastIndexByte(step.Path, '.')+1:]
	d := s.def.Step(id)
	if d == nil {
		return false
	}
	typ := ""
	if step.LastError != nil {
		typ = step.LastError.Type
	}
	for _, c := range d.Catch {
		if len(c.Errors) == 0 || slices.Contains(c.Errors, typ) {
			return len(c.Do) > 0 && (late || st.Steps[prefix+c.Do[0].ID] != nil)
		}
	}
	return false
}

// simContainer reports whether a step of kind (as its state records it)
// holds steps that a redrive reopens, rather than running it again.
func simContainer(kind string) bool {
	switch kind {
	case "switch", "foreach", "parallel", "repeat", "timeout_steps":
		return true
	}
	return false
}

// simOutsideOutcome says why step s may not be closed by a decision: a
// running task or child ends with its result, which is an input.
func simOutsideOutcome(s *workflow.Step) string {
	if s != nil && s.Status == workflow.StepRunning && (s.Kind == "task" || s.Kind == "workflow") {
		return fmt.Sprintf("decided the outcome of %s %s, which runs outside", s.Kind, s.Path)
	}
	return ""
}

// simSameEvents compares events in their stored form.
func simSameEvents(a, b []events.Event) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	return reflect.DeepEqual(simStored(a), simStored(b))
}

func simStored(evs []events.Event) []events.Event {
	b, err := events.Encode(evs...)
	if err != nil {
		panic(err)
	}
	r, err := events.Decode(b)
	if err != nil {
		panic(err)
	}
	return r.Events
}

func simShowAll(evs []events.Event) string {
	var lines []string
	for _, e := range evs {
		lines = append(lines, "  "+simShow(e))
	}
	if lines == nil {
		return "  (none)"
	}
	return strings.Join(lines, "\n")
}

func simSteps(st *workflow.State) string {
	var lines []string
	for _, p := range st.Order {
		s := st.Steps[p]
		lines = append(lines, fmt.Sprintf("  %s %s %s gen=%d timedout=%v", p, s.Kind, s.Status, s.Gen, s.TimedOut))
	}
	return strings.Join(lines, "\n")
}

// simDiff names what differs between two states (what decisions learned
// about loops aside), or returns "".
func simDiff(a, b *workflow.State) string {
	ca, cb := simCanonical(a), simCanonical(b)
	if reflect.DeepEqual(ca, cb) {
		return ""
	}
	var d []string
	va, vb := reflect.ValueOf(ca).Elem(), reflect.ValueOf(cb).Elem()
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if f.Name == "Steps" || !f.IsExported() {
			continue
		}
		if fa, fb := va.Field(i).Interface(), vb.Field(i).Interface(); !reflect.DeepEqual(fa, fb) {
			if sa, ok := fa.([]*workflow.Step); ok { // Superseded: show the steps, not their addresses
				fa, fb = simDeref(sa), simDeref(fb.([]*workflow.Step))
			}
			d = append(d, fmt.Sprintf("%s: %+v != %+v", f.Name, fa, fb))
		}
	}
	paths := slices.Sorted(func(yield func(string) bool) {
		for p := range ca.Steps {
			yield(p)
		}
		for p := range cb.Steps {
			if ca.Steps[p] == nil {
				yield(p)
			}
		}
	})
	for _, p := range paths {
		if sa, sb := ca.Steps[p], cb.Steps[p]; !reflect.DeepEqual(sa, sb) {
			d = append(d, fmt.Sprintf("step %s: %+v != %+v", p, sa, sb))
		}
	}
	if d == nil {
		d = append(d, "unexported fields (step outputs or signal ids)")
	}
	return strings.Join(d, "; ")
}

// simDeref returns the steps ss points to.
func simDeref(ss []*workflow.Step) []workflow.Step {
	out := make([]workflow.Step, 0, len(ss))
	for _, s := range ss {
		out = append(out, *s)
	}
	return out
}

// simCanonical copies st without loop progress, with an empty list of
// items as none (as it reads back from storage).
func simCanonical(st *workflow.State) *workflow.State {
	c := workflow.WithoutLoopProgress(st)
	c.Steps = make(map[string]*workflow.Step, len(st.Steps))
	for p, s := range st.Steps {
		cp := *s
		if len(cp.Items) == 0 {
			cp.Items = nil
		}
		c.Steps[p] = &cp
	}
	return c
}
