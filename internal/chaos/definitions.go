package chaos

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weftworks/weft/orchestrator/workflow"
)

// retryPolicy is generous enough that injected 503s and attempts lost to
// killed executors never exhaust a step.
const retryPolicy = `{ max_attempts: 20, initial_interval: 200ms, backoff_coefficient: 2, max_interval: 2s }`

// call is the input of an http task that calls the ledger with body.
func call(body string) string {
	return `{ method: POST, url: "${ input.url }", body: ` + body + ` }`
}

// httpStep is a top-level step id of a task that calls the ledger with
// body.
func httpStep(id, body string) string {
	return `
  - id: ` + id + `
    task: http
    timeout: 30s
    input: ` + call(body)
}

// staticDefinitions are the workflow shapes whose text does not depend on
// the run. Every task calls the ledger, whose answers carry the call's
// idempotency key, so the outcome of each workflow is known from its input.
var staticDefinitions = []string{`
name: chaos-seq
retry: ` + retryPolicy + `
steps:
  - id: one
    task: http
    timeout: 30s
    input: { method: POST, url: "${ input.url }", body: { who: "${ input.who }" } }
  - id: both
    parallel:
      branches:
        left:
          - id: left_call
            task: http
            timeout: 30s
            input: { method: POST, url: "${ input.url }", body: { side: left } }
        right:
          - id: right_call
            task: http
            timeout: 30s
            input: { method: POST, url: "${ input.url }", body: { side: right } }
  - id: two
    task: http
    timeout: 30s
    retry: ` + retryPolicy + `
    input: { method: POST, url: "${ input.url }", body: { prev: "${ steps.one.output.body.key }" } }
output:
  one: "${ steps.one.output.body.key }"
  two: "${ steps.two.output.body.key }"
  prev: "${ steps.two.output.body.echo.prev }"
  who: "${ steps.one.output.body.echo.who }"
  sides: "${ [steps.both.output.left.body.echo.side, steps.both.output.right.body.echo.side] }"
`, `
name: chaos-fanout
steps:
  - id: fan
    foreach: input.items
    concurrency: 5
    do:
      - id: call
        task: http
        timeout: 30s
        retry: ` + retryPolicy + `
        input: { method: POST, url: "${ input.url }", body: { item: "${ item }", index: "${ index }" } }
  - id: collect
    task: echo
    retry: ` + retryPolicy + `
    input: "${ steps.fan.output.map(r, r.body.key) }"
output:
  keys: "${ steps.collect.output }"
  items: "${ steps.fan.output.map(r, r.body.echo.item) }"
`, `
name: chaos-wait
retry: ` + retryPolicy + `
steps:
  - id: before
    task: http
    timeout: 30s
    input: { method: POST, url: "${ input.url }", body: { phase: before } }
  - id: nap
    sleep: 2s
  - id: approval
    wait: { signal: go, timeout: 1h }
  - id: after
    task: http
    timeout: 30s
    input: { method: POST, url: "${ input.url }", body: { by: "${ steps.approval.output.by }", n: "${ steps.approval.output.n }" } }
output:
  before: "${ steps.before.output.body.key }"
  signal: "${ steps.approval.output }"
  after: "${ steps.after.output.body.echo }"
`, `
name: chaos-child
retry: ` + retryPolicy + `
steps:
  - id: call
    task: http
    timeout: 30s
    input: ` + call(`{ n: "${ input.n }" }`) + `
  - id: hold
    if: "input.hold"
    wait: { signal: release }
  - id: boom
    if: "input.fail"
    fail: { message: "child ${ input.n } refuses", type: chaos_refused }
  - id: spin
    if: "has(input.spin) && input.spin"
    repeat:
      do: [ { id: tick, task: echo, input: "${ iteration }" } ]
      until: "${ false }"
      max_iterations: 100000
output: { key: "${ steps.call.output.body.key }", n: "${ steps.call.output.body.echo.n }" }
`, `
name: chaos-chain
retry: ` + retryPolicy + `
steps:
  - id: call
    task: http
    timeout: 30s
    input: ` + call(`{ n: "${ input.n }" }`) + `
  - id: deeper
    workflow: chaos-chain
    input: { url: "${ input.url }", n: "${ input.n }" }
output: { key: "${ steps.call.output.body.key }" }
`, `
name: chaos-parent
retry: ` + retryPolicy + `
steps:
  - id: pick
    switch:
      - if: "input.catch"
        then:
          - id: kid
            workflow: chaos-child
            input: { url: "${ input.url }", n: "${ input.n }", hold: "${ input.hold }", fail: "${ input.fail }", spin: "${ input.spin }" }
            catch:
              - do:
                  - id: caught
                    task: echo
                    input: { caught: "${ error.type }" }
    default:
      - id: bare_kid
        workflow: chaos-child
        input: { url: "${ input.url }", n: "${ input.n }", hold: "${ input.hold }", fail: "${ input.fail }" }
  - id: after
    task: http
    timeout: 30s
    input: ` + call(`{ kid: "${ steps.pick.output }" }`) + `
output:
  kid: "${ steps.pick.output }"
  after: "${ steps.after.output.body.key }"
`, `
name: chaos-branches
retry: ` + retryPolicy + `
steps:
  - id: soft
    if: "!input.strict"
    parallel:
      branches:
        ok:
          - id: soft_ok
            task: http
            timeout: 30s
            input: ` + call(`{ branch: ok }`) + `
        bad:
          - id: soft_bad
            task: http
            timeout: 30s
            input: ` + call(`{ branch: bad }`) + `
    on_error: continue
  - id: hard
    if: "input.strict"
    parallel:
      branches:
        ok:
          - id: hard_ok
            task: http
            timeout: 30s
            input: ` + call(`{ branch: ok }`) + `
        bad:
          - id: hard_bad
            task: http
            timeout: 30s
            input: ` + call(`{ branch: bad }`) + `
output:
  ok: "${ steps.soft.output.ok.body.key }"
  bad: "${ has(steps.soft.output.bad.error) ? dyn({'type': steps.soft.output.bad.error.type, 'step': steps.soft.output.bad.error.step}) : dyn({'key': steps.soft.output.bad.body.key}) }"
`, `
name: chaos-each
retry: ` + retryPolicy + `
steps:
  - id: soft
    if: "!input.strict"
    foreach: input.items
    concurrency: 3
    on_error: continue
    do:
      - id: soft_call
        task: http
        timeout: 30s
        input: ` + call(`{ item: "${ item }" }`) + `
  - id: hard
    if: "input.strict"
    foreach: input.items
    concurrency: 3
    do:
      - id: hard_call
        task: http
        timeout: 30s
        input: ` + call(`{ item: "${ item }" }`) + `
output:
  results: "${ steps.soft.output.map(r, has(r.error) ? dyn({'type': r.error.type, 'step': r.error.step}) : dyn({'key': r.body.key, 'item': r.body.echo.item})) }"
`, `
name: chaos-control
retry: ` + retryPolicy + `
steps:
  - id: init
    set: { count: "0", label: "'run-' + string(input.n)" }
  - id: loop
    repeat:
      do:
        - id: bump
          set: { count: "vars.count + 1" }
        - id: tick
          task: http
          timeout: 30s
          input: ` + call(`{ round: "${ iteration }" }`) + `
      until: "iteration + 1 >= input.rounds"
      max_iterations: 3
    catch:
      - errors: [max_iterations]
        do:
          - id: capped
            task: echo
            input: { capped: true }
  - id: route
    switch:
      - if: "vars.count >= 3"
        then:
          - { id: big, task: echo, input: big }
      - if: "vars.count == 2"
        then:
          - { id: pair, task: echo, input: pair }
    default:
      - { id: single, task: echo, input: single }
  - id: nap
    sleep: 1s
  - id: early
    if: "input.early"
    succeed:
      output: { early: true, label: "${ vars.label }", count: "${ vars.count }" }
  - id: guard
    fail: { message: "refused ${ vars.label }", type: chaos_guard }
    catch:
      - errors: [chaos_guard]
        do:
          - id: guarded
            task: echo
            input: "${ error.type }"
output:
  label: "${ vars.label }"
  count: "${ vars.count }"
  route: "${ steps.route.output }"
  loop: "${ has(steps.loop.output.capped) ? 'capped' : steps.loop.output.body.key }"
  guard: "${ steps.guard.output }"
`, `
name: chaos-waits
retry: ` + retryPolicy + `
steps:
  - id: gate
    wait: { signal: gate }
  - id: first
    wait: { signal: go }
  - id: second
    wait: { signal: go, timeout: 3s }
    timeout_steps:
      - id: second_late
        task: echo
        input: { timed_out: true }
  - id: pair
    if: "input.pair"
    parallel:
      branches:
        a:
          - id: pair_a
            wait: { signal: duo, timeout: 3s }
            timeout_steps:
              - { id: pair_a_late, task: echo, input: { timed_out: true } }
        b:
          - id: pair_b
            wait: { signal: duo, timeout: 3s }
            timeout_steps:
              - { id: pair_b_late, task: echo, input: { timed_out: true } }
  - id: strict
    if: "input.strict"
    wait: { signal: never, timeout: 1s }
  - id: done
    task: http
    timeout: 30s
    input: ` + call(`{ first: "${ steps.first.output }", second: "${ steps.second.output }" }`) + `
output:
  first: "${ steps.first.output }"
  second: "${ steps.second.output }"
  pair: "${ input.pair ? [steps.pair.output.a, steps.pair.output.b].filter(x, !has(x.timed_out)) : [] }"
  pair_timeouts: "${ input.pair ? [steps.pair.output.a, steps.pair.output.b].filter(x, has(x.timed_out)).size() : 0 }"
  key: "${ steps.done.output.body.key }"
`, `
name: chaos-cancel
retry: ` + retryPolicy + `
steps:
  - id: before
    task: http
    timeout: 30s
    input: ` + call(`{ phase: before }`) + `
  - id: hold
    parallel:
      branches:
        waiting:
          - id: hold_wait
            wait: { signal: never }
        working:
          - id: hold_call
            task: http
            timeout: 30s
            input: ` + call(`{ phase: hold }`) + `
          - id: hold_nap
            sleep: 1h
  - id: after
    task: http
    timeout: 30s
    input: ` + call(`{ phase: after }`) + `
`, `
name: chaos-redrive
retry: ` + retryPolicy + `
steps:
  - id: handled
    task: http
    timeout: 30s
    input: ` + call(`{ phase: handled }`) + `
    catch:
      - errors: [unprocessable]
        do:
          - id: fallback
            task: echo
            input: { fallback: "${ error.type }" }
  - id: guarded
    if: "input.guard"
    foreach: input.items
    do:
      - id: guarded_call
        task: http
        timeout: 30s
        input: ` + call(`{ item: "${ item }" }`) + `
    catch:
      - errors: [unprocessable]
        do:
          - id: guarded_fallback
            task: echo
            input: { caught: "${ error.type }" }
  - id: items
    foreach: input.items
    on_error: continue
    do:
      - id: item_call
        task: http
        timeout: 30s
        input: ` + call(`{ item: "${ item }" }`) + `
  - id: flaky
    task: http
    timeout: 30s
    input: ` + call(`{ phase: flaky }`) + `
output:
  handled: "${ steps.handled.output }"
  guarded: "${ steps.guarded.output }"
  items: "${ steps.items.output.map(r, has(r.error) ? dyn(r.error.type) : dyn(r.body.key)) }"
  flaky: "${ steps.flaky.output.body.key }"
`, `
name: chaos-retention
retention: ` + retentionDelay + `
retry: ` + retryPolicy + `
steps:` + httpStep("first", `{ n: "${ input.n }" }`) + `
  - id: kid
    if: "input.child"
    workflow: chaos-child
    input: { url: "${ input.url }", n: "${ input.n }", hold: false, fail: false }` +
	httpStep("last", `{ prev: "${ steps.first.output.body.key }" }`) + `
output:
  first: "${ steps.first.output.body.key }"
  last: "${ steps.last.output.body.key }"
  kid: "${ input.child ? steps.kid.output : null }"
`, `
name: chaos-searched
retry: ` + retryPolicy + `
search:
  chaos_shape: searched
  parity: "${ input.parity }"
  stage: started
  n: "${ input.n }"
steps:
  - id: call
    task: http
    timeout: 30s
    input: ` + call(`{ n: "${ input.n }" }`) + `
    search: { key: "${ steps.call.output.body.key }" }
  - id: mark
    if: "input.parity == 'even'"
    task: echo
    input: marked
    search: { stage: "${ steps.mark.output }" }
output: { key: "${ steps.call.output.body.key }" }
`, `
name: chaos-suspended
retry: ` + retryPolicy + `
steps:
  - id: charge
    task: http
    timeout: 30s
    retry: { max_attempts: 2, initial_interval: 200ms, exhausted: suspend }
    input: ` + call(`{ n: "${ input.n }" }`) + `
  - id: receipt
    if: "input.signal"
    wait: { signal: receipt }
  - id: after
    task: http
    timeout: 30s
    input: ` + call(`{ charged: "${ steps.charge.output.body.key }" }`) + `
output:
  charged: "${ steps.charge.output.body.key }"
  receipt: "${ input.signal ? steps.receipt.output : null }"
  after: "${ steps.after.output.body.echo.charged }"
`, keyedDefinition("queued", slotLimit, false), keyedDefinition("limited", limitedLimit, true)}

// ratelimitedDefinition is the ratelimited shape's definition whose step
// takes rateLimit tokens a period of length per, each call telling the
// ledger it is of rate "ratelimited" (per 1s) or "ratelimited<per>-" and
// its key. The harness puts the one of perSlow first and the one of
// ratePer over it: both revisions are then started on the same keys.
func ratelimitedDefinition(per time.Duration) string {
	return `
name: chaos-ratelimited
retry: ` + retryPolicy + `
steps:
  - id: call
    task: http
    timeout: 30s
    rate_limit: { key: "${ input.k }", limit: ` + strconv.Itoa(rateLimit) + `, per: ` + per.String() + ` }
    input: { method: POST, url: "${ input.url + '?rate=` + rateName(per) + `' + input.k }", body: { n: "${ input.n }" } }
output: { key: "${ steps.call.output.body.key }", n: "${ steps.call.output.body.echo.n }" }
`
}

// rateName is the ledger's name for the calls of the ratelimited
// definition with period per, before their key.
func rateName(per time.Duration) string {
	if per == ratePer {
		return "ratelimited-"
	}
	return "ratelimited" + per.String() + "-"
}

// deadlineShort and deadlineLong are the workflow timeouts of the
// deadline shape's two revisions: the latest one's, short, which fires in
// the runs that must time out; and the earlier one's, which no run lasts,
// named by the runs that must finish in time. The harness puts the long
// one first. A redriven run is given a fresh deadlineShort.
const (
	deadlineShort = "5s"
	deadlineLong  = "1h"
)

// deadlineDefinition is the deadline shape's definition with the workflow
// timeout timeout: a parallel step whose one branch calls the ledger (the
// step the harness may have it hold) and whose other waits, when
// input.gate, for a signal.
func deadlineDefinition(timeout string) string {
	return `
name: chaos-deadline
timeout: ` + timeout + `
retry: ` + retryPolicy + `
steps:
  - id: work
    parallel:
      branches:
        call:
          - id: ` + deadlineStep + `
            task: http
            timeout: 30s
            input: ` + call(`{ n: "${ input.n }" }`) + `
        gate:
          - id: gate
            if: "input.gate"
            wait: { signal: gate }
output:
  held: "${ steps.work.output.call.body.key }"
  gate: "${ input.gate ? steps.work.output.gate : null }"
`
}

// deadlineStep is the deadline shape's http step.
const deadlineStep = "held"

// taskTimeout is the attempt timeout of the tasktimeout shape's steps:
// calls the ledger holds (see Ledger.Hold) outlast it, the others do not
// come near it.
const taskTimeout = "2s"

// taskTimeoutDefinition is the tasktimeout shape's definition: one of
// three http steps, by input.variant, each with the attempt timeout
// taskTimeout: recover with the workflow's retry policy, exhaust with two
// attempts, fatal with timeout not retryable.
var taskTimeoutDefinition = `
name: chaos-tasktimeout
retry: ` + retryPolicy + `
steps:
  - id: recover
    if: "input.variant == 'recover'"
    task: http
    timeout: ` + taskTimeout + `
    input: ` + call(`{ n: "${ input.n }" }`) + `
  - id: exhaust
    if: "input.variant == 'exhaust'"
    task: http
    timeout: ` + taskTimeout + `
    retry: { max_attempts: 2, initial_interval: 200ms }
    input: ` + call(`{ n: "${ input.n }" }`) + `
  - id: fatal
    if: "input.variant == 'fatal'"
    task: http
    timeout: ` + taskTimeout + `
    retry: { max_attempts: 20, initial_interval: 200ms, non_retryable: [timeout] }
    input: ` + call(`{ n: "${ input.n }" }`) + `
output: { key: "${ steps.recover.output.body.key }", n: "${ steps.recover.output.body.echo.n }" }
`

// pausedDefinitions is how many copies of the paused shape's definition
// there are (chaos-paused-0, -1, ...): each is held paused by one driver
// at a time, so that many drivers can hold one each side by side.
const pausedDefinitions = 4

// pausedDefinition is the paused shape's definition number i.
func pausedDefinition(i int) string {
	return `name: chaos-paused-` + strconv.Itoa(i) + `
retry: ` + retryPolicy + `
steps:` + httpStep("first", `{ n: "${ input.n }" }`) + httpStep("second", `{ prev: "${ steps.first.output.body.key }" }`) + `
output:
  first: "${ steps.first.output.body.key }"
  second: "${ steps.second.output.body.key }"
  prev: "${ steps.second.output.body.echo.prev }"
`
}

// keyedDefinition is the definition of the queued (step false) or limited
// shape: concurrency { key: input.k, limit } on the definition or on its
// one http step, which calls the ledger with the shape's name and the key
// as its slot, and the limit.
func keyedDefinition(shape string, limit int, step bool) string {
	flow := `concurrency: { key: "${ input.k }", limit: ` + strconv.Itoa(limit) + ` }`
	top, inStep := "\n"+flow, ""
	if step {
		top, inStep = "", "\n    "+flow
	}
	return `
name: chaos-` + shape + top + `
retry: ` + retryPolicy + `
steps:
  - id: call
    task: http
    timeout: 30s` + inStep + `
    input: { method: POST, url: "${ input.url + '?slot=` + shape + `-' + input.k + '&limit=` + strconv.Itoa(limit) + `' }", body: { n: "${ input.n }", k: "${ input.k }" } }
output: { key: "${ steps.call.output.body.key }", k: "${ steps.call.output.body.echo.k }" }
`
}

// suspendStep is the step of the chaos-suspended definition that is
// suspended when its suspendAttempts attempts fail (its max_attempts).
const (
	suspendStep     = "charge"
	suspendAttempts = 2
)

// retentionDelay is the retention of the chaos-retention definition: its
// runs are deleted that long after they close.
const retentionDelay = "3s"

// triggerDefinition starts a workflow for each message on triggerSubject.
var triggerDefinition = `
name: chaos-trigger
retry: ` + retryPolicy + `
triggers:
  - subject: ` + triggerSubject + `
steps:
  - id: call
    task: http
    timeout: 30s
    input: ` + call(`{ n: "${ input.n }" }`) + `
output: { n: "${ input.n }", key: "${ steps.call.output.body.key }" }
`

// triggerSubject is the subject the chaos-trigger definition starts
// workflows from.
const triggerSubject = "chaos.events"

// cronEvery is the period of the chaos-cron schedule.
const cronEvery = 4

// cronDefinition is the chaos-cron definition: a 6-field schedule firing
// every cronEvery seconds, each run calling the ledger at ledgerURL. Without
// the schedule it is the revision that stops the runs.
func cronDefinition(ledgerURL string, schedule bool) string {
	var triggers string
	if schedule {
		triggers = fmt.Sprintf(`
triggers:
  - cron: "*/%d * * * * *"
    input: { tick: "${ tick }", url: %q }`, cronEvery, ledgerURL)
	}
	return `
name: chaos-cron
retry: ` + retryPolicy + triggers + `
steps:
  - id: call
    task: http
    timeout: 30s
    input: ` + call(`{ tick: "${ input.tick }" }`) + `
output: { tick: "${ input.tick }", key: "${ steps.call.output.body.key }" }
`
}

// Workflow shapes. The first ones are started by the harness, one each
// slot of shapeCycle; trigger and cron workflows are started by Weft's
// triggers.
const (
	shapeSeq = iota
	shapeFanout
	shapeWait
	shapeChild
	shapeBranches
	shapeEach
	shapeControl
	shapeWaits
	shapeCancel
	shapeRedrive
	shapeSharedSignal
	shapeRedriveCaught
	shapeRetention
	shapeSearched
	shapeSuspended
	shapeQueued
	shapePaused
	shapeLimited
	shapeRatelimited
	shapeDeadline
	shapeTaskTimeout
	shapeBeat
	shapeChain
	shapeTrigger
	shapeCron
	numShapes
)

var shapeNames = [numShapes]string{"seq", "fanout", "wait", "child", "branches", "each", "control", "waits",
	"cancel", "redrive", "sharedsignal", "redrivecaught", "retention", "searched", "suspended", "queued", "paused",
	"limited", "ratelimited", "deadline", "tasktimeout", "beat", "chain", "trigger", "cron"}

// shapeCycle is the order in which the harness starts its shapes: the
// first three, the original workload, keep about half of the workflows.
var shapeCycle = []int{shapeSeq, shapeFanout, shapeWait, shapeChild, shapeBranches, shapeEach,
	shapeSeq, shapeFanout, shapeWait, shapeControl, shapeWaits, shapeCancel, shapeRedrive, shapeSharedSignal,
	shapeRedriveCaught, shapeRetention, shapeSearched, shapeSuspended, shapeQueued, shapePaused,
	shapeLimited, shapeRatelimited, shapeDeadline, shapeTaskTimeout, shapeBeat, shapeChain}

// ParseShapes returns the shapes named in a comma-separated list; "" and
// "all" name every shape.
func ParseShapes(list string) ([]string, error) {
	if list == "" || list == "all" {
		return shapeNames[:], nil
	}
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if shapeIndex(s) < 0 {
			return nil, fmt.Errorf("unknown shape %q (shapes: %s)", s, strings.Join(shapeNames[:], ","))
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no shape in %q", list)
	}
	return out, nil
}

func shapeIndex(name string) int {
	for i, n := range shapeNames {
		if n == name {
			return i
		}
	}
	return -1
}

// fanoutItems is the number of items of a fan-out workflow.
const fanoutItems = 5

// waitStep is the path of the wait step of the wait shape.
const waitStep = "approval"

// outcome is how a workflow must end.
type outcome struct {
	status string // COMPLETED, FAILED or CANCELED
	// output is a COMPLETED workflow's output, in the form JSON decoding gives.
	output any
	// errType and errStep are a FAILED workflow's error type and the step
	// it failed at ("" for the step: not checked).
	errType, errStep string
	// search, when set, are a COMPLETED workflow's search attributes, in
	// the form JSON decoding gives.
	search any
	// or, when set, is the other outcome a kill may bring about (its
	// plan says how): the run ended as expected with either; the checks
	// count the runs that ended with this one.
	or *outcome
}

// signalSpec is a signal the harness sends.
type signalSpec struct {
	name      string
	payload   map[string]any
	requestID string
	// afterWaiting, when set, is the step that must be WAITING before the
	// signal is sent; otherwise it is sent right after the start.
	afterWaiting string
}

// cancelSpec is a cancel the harness requests.
type cancelSpec struct {
	// afterWaiting, when set, is the step that must be WAITING before the
	// cancel is sent; otherwise it is sent at once.
	afterWaiting string
	// inChild, when set, is the path of the workflow step whose child holds
	// afterWaiting.
	inChild string
	// child cancels that child instead of the workflow itself.
	child bool
}

// redriveSpec is the redrive of a workflow that fails on purpose: once it
// has failed with errType at errStep, the ledger releases the refused
// paths and the harness calls RetryWorkflow.
type redriveSpec struct {
	errType, errStep string
	release          []string
	// settle are paths still running in the failed run (a workflow
	// timeout leaves them so) whose held calls the ledger answers once
	// the run has failed; the harness redrives it once each has completed
	// in the failed run. The redrive does not run them again.
	settle []string
}

// suspendSpec is the suspension of a workflow whose step runs out of
// attempts on purpose: once the step and its run are SUSPENDED, the
// harness sends the plan's signals, the ledger stops refusing the step's
// calls and the harness calls ResumeWorkflow.
type suspendSpec struct {
	step string
	// attempts are the attempts the step has when it is first suspended.
	attempts int
}

// plan is one workflow of a run: what it is started with, what the
// harness does to it, and how it must end.
type plan struct {
	index      int
	id         string
	shape      int
	variant    string
	definition string
	input      map[string]any
	// signals are sent in order; cancel and redrive are done after them
	// (with suspend, they are sent while the run is suspended).
	signals []signalSpec
	cancel  *cancelSpec
	redrive *redriveSpec
	suspend *suspendSpec
	// siblings are runs of the same definition its driver starts with it;
	// with paused, it starts them all while the definition is paused.
	siblings []*plan
	paused   bool
	// pauseCopy is the copy of the paused shape's definition the plan
	// runs on (chaos-paused-<pauseCopy>), held paused by one driver at a
	// time: the shape's plans take the copies in turn.
	pauseCopy int
	// children are the workflows its workflow steps start, by step path;
	// parent is the id of a child's parent.
	children map[string]*plan
	parent   string
	// triggered workflows are started by a trigger, not by the harness.
	triggered bool
	// slowRate runs of the ratelimited shape are started on the earlier
	// revision of its definition, whose period is perSlow.
	slowRate bool
	// longDeadline runs of the deadline shape are started on the earlier
	// revision of its definition, whose timeout is deadlineLong.
	longDeadline bool
	// retained workflows are deleted by their definition's retention once
	// closed: their history cannot be checked, only their outcome (when
	// read before the deletion), their effects and that they are gone.
	retained bool

	want outcome
	// httpPaths are the paths of every step that may call the ledger.
	httpPaths []string
	// effects are the paths that must have succeeded at the ledger.
	effects []string
	// refuse maps paths to the status the ledger refuses them with.
	refuse map[string]int
	// hold maps paths to the number of their calls the ledger holds
	// unanswered (every one when negative; see Ledger.Hold).
	hold map[string]int
	// failPaths are the steps that fail on purpose; openPaths those that
	// may stay open in a completed workflow (a succeed step).
	failPaths, openPaths map[string]bool
	// waits maps wait steps to the signal payload they must complete with.
	waits map[string]any
}

func (p *plan) key(path string) string { return p.id + "/" + path }

// unsucceeded returns the paths of p's effects that never succeeded at
// the ledger whose counts are given.
func (p *plan) unsucceeded(ledger map[string]KeyCount) []string {
	var out []string
	for _, path := range p.effects {
		if ledger[p.key(path)].OK == 0 {
			out = append(out, path)
		}
	}
	return out
}

// mayRunAgain reports whether a redrive may schedule path again.
func (p *plan) mayRunAgain(path string) bool {
	if p.redrive == nil {
		return false
	}
	for _, r := range p.redrive.release {
		if r == path {
			return true
		}
	}
	return false
}

// redrivePaths are the paths a redrive runs again.
func (p *plan) redrivePaths() []string {
	if p.redrive == nil {
		return nil
	}
	return p.redrive.release
}

func completed(output any) outcome { return outcome{status: "COMPLETED", output: normalize(output)} }

// newPlan returns the i-th workflow of a run, the k-th of its shape.
func newPlan(i, k, shape int, ledgerURL string) *plan {
	name := shapeNames[shape]
	p := &plan{index: i, shape: shape, definition: "chaos-" + name, id: fmt.Sprintf("chaos-%s-%05d", name, i),
		input: map[string]any{"url": ledgerURL}, refuse: map[string]int{}, failPaths: map[string]bool{}}
	key := p.key
	switch shape {
	case shapeSeq:
		who := fmt.Sprintf("who-%d", i)
		p.input["who"] = who
		p.httpPaths = []string{"one", "left_call", "right_call", "two"}
		p.want = completed(map[string]any{"one": key("one"), "two": key("two"), "prev": key("one"), "who": who,
			"sides": []any{"left", "right"}})
	case shapeFanout:
		items := make([]any, fanoutItems)
		keys := make([]any, fanoutItems)
		for j := range items {
			items[j] = fmt.Sprintf("item-%d-%d", i, j)
			path := fmt.Sprintf("fan[%d].call", j)
			keys[j] = key(path)
			p.httpPaths = append(p.httpPaths, path)
		}
		p.input["items"] = items
		p.want = completed(map[string]any{"keys": keys, "items": items})
	case shapeWait:
		sig := map[string]any{"by": "chaos", "n": i}
		s := signalSpec{name: "go", payload: sig, requestID: "signal-" + p.id}
		p.variant = "signal-early"
		if k%2 == 1 {
			s.afterWaiting, p.variant = waitStep, "signal-when-waiting"
		}
		p.signals = []signalSpec{s}
		p.waits = map[string]any{waitStep: sig}
		p.httpPaths = []string{"before", "after"}
		p.want = completed(map[string]any{"before": key("before"), "signal": sig, "after": sig})
	case shapeChild:
		planChild(p, k)
	case shapeBranches:
		planBranches(p, k)
	case shapeEach:
		planEach(p, k)
	case shapeControl:
		planControl(p, k)
	case shapeWaits, shapeSharedSignal:
		p.definition = "chaos-waits"
		planWaits(p, k, shape == shapeSharedSignal)
	case shapeCancel:
		planCancel(p, k)
	case shapeRedrive, shapeRedriveCaught:
		p.definition = "chaos-redrive"
		planRedrive(p, k, shape == shapeRedriveCaught)
	case shapeRetention:
		planRetention(p, k)
	case shapeSearched:
		planSearched(p, k)
	case shapeSuspended:
		planSuspended(p, k)
	case shapeQueued:
		planQueued(p, k)
	case shapePaused:
		planPaused(p, k)
	case shapeLimited:
		planLimited(p, k)
	case shapeRatelimited:
		planRatelimited(p, k)
	case shapeDeadline:
		planDeadline(p, k)
	case shapeTaskTimeout:
		planTaskTimeout(p, k)
	case shapeBeat:
		planBeat(p, k)
	case shapeChain:
		planChain(p)
	}
	if p.effects == nil && p.want.status == "COMPLETED" {
		p.effects = p.httpPaths
	}
	return p
}

// planChild: a parent whose child completes, fails (caught or not), is
// canceled by the harness (caught), is canceled with its parent, or grows
// its history past the orchestrators' limit (caught).
func planChild(p *plan, k int) {
	p.definition = "chaos-parent"
	// (The limit comes second and the parent's cancel third, so short
	// runs, with three children, see them.)
	v := [...]int{0, 5, 4, 1, 2, 3}[k%6]
	catch := v <= 2 || v == 5
	p.input["n"], p.input["catch"], p.input["spin"] = p.index, catch, v == 5
	p.input["fail"], p.input["hold"] = v == 1 || v == 3, v == 2 || v == 4
	step := "kid"
	if !catch {
		step = "bare_kid"
	}
	// The child's id is known once its parent has started it.
	child := p.childPlan(p.id + "-" + step + "-(not started)")
	p.children = map[string]*plan{step: child}
	p.httpPaths = []string{"after"}
	after := func(kid any) {
		p.effects = []string{"after"}
		p.want = completed(map[string]any{"kid": kid, "after": p.key("after")})
	}
	switch v {
	case 0:
		p.variant = "child-completes"
		child.want = outcome{status: "COMPLETED"} // output set once the id is known
		after(nil)
	case 1:
		p.variant = "child-fails-caught"
		p.failPaths[step] = true
		child.want = outcome{status: "FAILED", errType: "chaos_refused", errStep: "boom"}
		after(map[string]any{"caught": "child_failed"})
	case 2:
		p.variant = "child-canceled-caught"
		p.failPaths[step] = true
		child.want = outcome{status: "CANCELED"}
		p.cancel = &cancelSpec{afterWaiting: "hold", inChild: step, child: true}
		after(map[string]any{"caught": "canceled"})
	case 3:
		p.variant = "child-fails-uncaught"
		child.want = outcome{status: "FAILED", errType: "chaos_refused", errStep: "boom"}
		p.want = outcome{status: "FAILED", errType: "child_failed"}
	case 5:
		p.variant = "child-hits-limit-caught"
		p.failPaths[step] = true
		child.want = outcome{status: "FAILED", errType: "limit"}
		after(map[string]any{"caught": "child_failed"})
	case 4:
		p.variant = "parent-canceled"
		child.want = outcome{status: "CANCELED"}
		p.cancel = &cancelSpec{afterWaiting: "hold", inChild: step}
		p.want = outcome{status: "CANCELED"}
	}
}

// childPlan is the plan of a child of p, a run of chaos-child that calls
// the ledger once.
func (p *plan) childPlan(id string) *plan {
	return &plan{index: p.index, shape: p.shape, definition: "chaos-child", id: id, parent: p.id, refuse: map[string]int{},
		failPaths: map[string]bool{}, httpPaths: []string{"call"}, effects: []string{"call"}}
}

// planChain: a definition that starts itself as a child, with no case
// that stops it: the orchestrators' MaxChildDepth (maxChildDepth) does.
// The run's child and grandchild start; the grandchild's own child would
// be one too deep, so its step fails with error type limit, and each run
// above fails on its failed child.
func planChain(p *plan) {
	p.input["n"] = p.index
	link := func(l *plan, want outcome) {
		l.definition, l.httpPaths, l.effects = "chaos-chain", []string{"call"}, []string{"call"}
		l.failPaths["deeper"] = true
		l.want = want
	}
	childFailed := outcome{status: "FAILED", errType: "child_failed", errStep: "deeper"}
	link(p, childFailed)
	p.variant = fmt.Sprintf("depth-%d", maxChildDepth)
	parent := p
	for depth := 1; depth <= maxChildDepth; depth++ {
		c := parent.childPlan(parent.id + "-deeper-(not started)")
		want := childFailed
		if depth == maxChildDepth {
			want = outcome{status: "FAILED", errType: "limit", errStep: "deeper"}
		}
		link(c, want)
		parent.children = map[string]*plan{"deeper": c}
		parent = c
	}
}

// childStarted fills in a child's plan once its id is known; a child
// planned with its id is left as it is.
func (p *plan) childStarted(path, id string) {
	c := p.children[path]
	if c.id == id {
		return
	}
	c.id, c.parent = id, p.id
	if c.want.status == "COMPLETED" {
		c.want.output = normalize(map[string]any{"key": c.key("call"), "n": p.index})
		if p.want.status == "COMPLETED" {
			p.want.output = normalize(map[string]any{"kid": c.want.output, "after": p.key("after")})
		}
	}
}

// planBranches: a parallel step whose bad branch is refused, with
// on_error: continue or without it, or that succeeds.
func planBranches(p *plan, k int) {
	v := k % 3
	strict := v == 2
	p.input["strict"] = strict
	if !strict {
		p.httpPaths = []string{"soft_ok", "soft_bad"}
		p.effects = []string{"soft_ok"}
		bad := map[string]any{"key": p.key("soft_bad")}
		p.variant = "continue-ok"
		if v == 0 {
			p.variant = "continue-one-fails"
			p.refuse["soft_bad"], p.failPaths["soft_bad"] = 422, true
			bad = map[string]any{"type": "unprocessable", "step": "soft_bad"}
		} else {
			p.effects = append(p.effects, "soft_bad")
		}
		p.want = completed(map[string]any{"ok": p.key("soft_ok"), "bad": bad})
		return
	}
	p.variant = "fail-one-fails"
	p.httpPaths = []string{"hard_ok", "hard_bad"}
	p.refuse["hard_bad"], p.failPaths["hard_bad"] = 422, true
	p.effects = []string{}
	p.want = outcome{status: "FAILED", errType: "unprocessable"}
}

// eachItems is the number of items of an each-shape workflow.
const eachItems = 4

// planEach: a foreach with refused items, with on_error: continue or
// without it.
func planEach(p *plan, k int) {
	v := k % 3
	strict := v == 2
	p.input["strict"] = strict
	items := make([]any, eachItems)
	for j := range items {
		items[j] = fmt.Sprintf("item-%d-%d", p.index, j)
	}
	p.input["items"] = items
	prefix, step := "soft", "soft_call"
	if strict {
		prefix, step = "hard", "hard_call"
	}
	refused := map[int]bool{}
	switch v {
	case 0:
		p.variant, refused[1], refused[3] = "continue-two-fail", true, true
	case 1:
		p.variant = "continue-ok"
	case 2:
		p.variant, refused[2] = "fail-one-fails", true
	}
	p.effects = []string{}
	var results []any
	for j := range items {
		path := fmt.Sprintf("%s[%d].%s", prefix, j, step)
		p.httpPaths = append(p.httpPaths, path)
		if refused[j] {
			p.refuse[path], p.failPaths[path] = 422, true
			results = append(results, map[string]any{"type": "unprocessable", "step": path})
			continue
		}
		if !strict {
			p.effects = append(p.effects, path)
		}
		results = append(results, map[string]any{"key": p.key(path), "item": items[j]})
	}
	if strict {
		p.want = outcome{status: "FAILED", errType: "unprocessable"}
		return
	}
	p.want = completed(map[string]any{"results": results})
}

// planControl: set, repeat (until or capped by max_iterations and caught),
// switch, sleep, succeed and a caught fail step.
func planControl(p *plan, k int) {
	rounds, early := []int{1, 2, 4, 2}[k%4], k%4 == 3
	p.input["n"], p.input["rounds"], p.input["early"] = p.index, rounds, early
	p.variant = fmt.Sprintf("rounds-%d", rounds)
	count := min(rounds, 3)
	for j := range count {
		p.httpPaths = append(p.httpPaths, fmt.Sprintf("loop[%d].tick", j))
	}
	label := fmt.Sprintf("run-%d", p.index)
	if rounds > 3 {
		p.failPaths["loop"] = true
	}
	p.failPaths["guard"] = true
	if early {
		p.openPaths = map[string]bool{"early": true}
		p.variant += "-succeed"
		p.want = completed(map[string]any{"early": true, "label": label, "count": count})
		return
	}
	loop := any("capped")
	if rounds <= 3 {
		loop = p.key(fmt.Sprintf("loop[%d].tick", rounds-1))
	}
	route := map[int]string{1: "single", 2: "pair", 3: "big"}[count]
	p.want = completed(map[string]any{"label": label, "count": count, "route": route, "loop": loop, "guard": "chaos_guard"})
}

// planWaits: a wait without timeout, a wait of the same signal with a
// timeout and timeout_steps, with pair two waits of one signal in parallel
// branches (one signal sent: one takes it, the other times out), and
// optionally a wait that times out without timeout_steps. A gate wait
// holds the workflow until the signals meant to arrive early are in, so
// that a late API cannot make a wait time out.
func planWaits(p *plan, k int, pair bool) {
	v := k % 4
	p.input["strict"], p.input["pair"] = v == 3, pair
	p1 := map[string]any{"n": p.index, "which": 1}
	p2 := map[string]any{"n": p.index, "which": 2}
	duo := map[string]any{"n": p.index, "which": "duo"}
	s1 := signalSpec{name: "go", payload: p1, requestID: "signal-1-" + p.id}
	s2 := signalSpec{name: "go", payload: p2, requestID: "signal-2-" + p.id}
	sd := signalSpec{name: "duo", payload: duo, requestID: "signal-duo-" + p.id}
	gate := signalSpec{name: "gate", payload: map[string]any{"gate": p.index}, requestID: "gate-" + p.id}
	duos, pairOut, pairTimeouts := []any{duo}, []any{duo}, 1
	if !pair {
		duos, pairOut, pairTimeouts = nil, []any{}, 0
	}
	with := func(ss ...signalSpec) []signalSpec {
		// The duo signal, when sent, goes before the gate.
		var out []signalSpec
		for _, s := range ss {
			if s.name == "gate" && len(duos) > 0 {
				out = append(out, sd)
			}
			out = append(out, s)
		}
		return out
	}
	p.httpPaths = []string{"done"}
	p.waits = map[string]any{"gate": gate.payload, "first": p1}
	second := any(map[string]any{"timed_out": true})
	switch v {
	case 0:
		p.variant, p.signals = "one-signal-early", with(s1, gate)
	case 1:
		s1.afterWaiting = "first"
		p.variant, p.signals = "one-signal-when-waiting", with(gate, s1)
	case 2:
		p.variant, p.signals, second = "two-signals", with(s1, s2, gate), p2
		p.waits["second"] = p2
	case 3:
		p.variant, p.signals = "wait-times-out", with(s1, gate)
		p.want = outcome{status: "FAILED", errType: "timeout", errStep: "strict"}
		p.effects = []string{}
		return
	}
	p.want = completed(map[string]any{"first": p1, "second": second, "pair": pairOut, "pair_timeouts": pairTimeouts,
		"key": p.key("done")})
}

// planCancel: a workflow canceled at once, while it waits, or while it
// sleeps.
func planCancel(p *plan, k int) {
	p.httpPaths = []string{"before", "hold_call"}
	p.want = outcome{status: "CANCELED"}
	switch k % 3 {
	case 0:
		p.variant, p.cancel, p.effects = "at-once", &cancelSpec{}, []string{}
	case 1:
		p.variant, p.cancel, p.effects = "while-waiting", &cancelSpec{afterWaiting: "hold_wait"}, []string{"before"}
	case 2:
		p.variant, p.cancel, p.effects = "while-sleeping", &cancelSpec{afterWaiting: "hold_nap"}, []string{"before", "hold_call"}
	}
}

// planRetention: a run deleted once closed for retentionDelay, every
// other one with a child (of a definition without retention) that must
// outlive it. The child's id is known from the start, as its parent's
// history may be gone before the harness reads it.
func planRetention(p *plan, k int) {
	child := k%2 == 0
	p.input["n"], p.input["child"], p.retained = p.index, child, true
	p.httpPaths = []string{"first", "last"}
	p.variant = "deleted-after-" + retentionDelay
	var kid any
	if child {
		p.variant += "-child-kept"
		c := p.childPlan(workflow.ChildID(p.id, "kid", 1))
		c.want = completed(map[string]any{"key": c.key("call"), "n": p.index})
		p.children = map[string]*plan{"kid": c}
		kid = c.want.output
	}
	p.want = completed(map[string]any{"first": p.key("first"), "last": p.key("last"), "kid": kid})
}

// planSearched: search attributes set at the start and by two steps, one
// of which, skipped in odd runs, replaces the stage set at the start.
func planSearched(p *plan, k int) {
	parity, stage := "even", "marked"
	if k%2 == 1 {
		parity, stage = "odd", "started"
	}
	p.variant = parity
	p.input["n"], p.input["parity"] = p.index, parity
	p.httpPaths = []string{"call"}
	p.want = completed(map[string]any{"key": p.key("call")})
	p.want.search = normalize(map[string]any{"chaos_shape": "searched", "parity": parity, "stage": stage, "n": p.index,
		"key": p.key("call")})
}

// planSuspended: a step whose calls the ledger refuses until it is
// suspended, and which completes once the run is resumed: refused with a
// 500, retried until its attempts run out, with a signal sent while the
// run is suspended for the wait after the step; or refused with a 422,
// which is not retried, suspending it after its first attempt.
func planSuspended(p *plan, k int) {
	signal := k%2 == 0
	p.input["n"], p.input["signal"] = p.index, signal
	p.httpPaths = []string{suspendStep, "after"}
	var receipt any
	if signal {
		p.variant = "exhausted-signal-while-suspended"
		p.refuse[suspendStep] = 500
		p.suspend = &suspendSpec{step: suspendStep, attempts: suspendAttempts}
		payload := map[string]any{"receipt": p.index}
		p.signals = []signalSpec{{name: "receipt", payload: payload, requestID: "receipt-" + p.id}}
		p.waits, receipt = map[string]any{"receipt": payload}, payload
	} else {
		p.variant = "not-retryable"
		p.refuse[suspendStep] = 422
		p.suspend = &suspendSpec{step: suspendStep, attempts: 1}
	}
	p.want = completed(map[string]any{"charged": p.key(suspendStep), "receipt": receipt, "after": p.key(suspendStep)})
}

// queuedKeys are the concurrency keys of the queued shape, and
// queuedRuns the runs its driver starts at once, alternating the keys.
var queuedKeys = [...]string{"a", "b"}

const queuedRuns = 4

// planQueued: runs of a definition with concurrency { key, limit:
// slotLimit }, started at once over two keys, each calling the ledger
// with its key, which the ledger holds a while: beyond the limit they
// queue, and every one completes.
func planQueued(p *plan, k int) {
	p.runs(queuedRuns, func(q *plan, j int) { planKeyed(q, planKey(k, j)) })
}

// planKey is the concurrency key of the j-th run of the k-th plan of a
// keyed shape: the plan's own keys, alternating queuedKeys, so that a
// long run's plans do not all wait for the same few slots. The second is
// longer than a KV key names as it is (named by its hash).
func planKey(k, j int) string {
	key := queuedKeys[(k+j)%len(queuedKeys)] + strconv.Itoa(k)
	if (k+j)%len(queuedKeys) == 1 {
		key += strings.Repeat(".", longKey)
	}
	return key
}

// longKey is the length of the long keys' padding.
const longKey = 3000

// planKeyed plans a run of the queued or limited definition with key: its
// one call, answered with its key and echoing it.
func planKeyed(q *plan, key string) {
	q.variant, q.input["n"], q.input["k"] = "key-"+strings.TrimRight(key, "."), q.index, key
	q.httpPaths, q.effects = []string{"call"}, []string{"call"}
	q.want = completed(map[string]any{"key": q.key("call"), "k": key})
}

// limitedLimit is the concurrency limit of the limited definition's step,
// and limitedRuns the runs its driver starts at once, alternating
// queuedKeys: more of a key than the limit.
const (
	limitedLimit = 2
	limitedRuns  = 6
)

// planLimited: runs of a definition whose http step has concurrency {
// key, limit: limitedLimit }, started at once over two keys, each calling
// the ledger with its key, which the ledger holds a while: beyond the
// limit the attempts wait for a slot, and every run completes.
func planLimited(p *plan, k int) {
	p.runs(limitedRuns, func(q *plan, j int) { planKeyed(q, planKey(k, j)) })
}

// rateLimit and ratePer are the rate limit of the ratelimited
// definition's step; perSlow is the period of its earlier revision.
// ratedRuns is the runs its driver starts at once: attempts for three
// periods and more.
const (
	rateLimit = 5
	ratePer   = time.Second
	perSlow   = 2 * time.Second
	ratedRuns = 15
)

// planRatelimited: runs of a definition whose http step has rate_limit {
// limit: rateLimit, per: ratePer } (one key), started at once; every
// other one is of the earlier revision, whose period is perSlow, so that
// runs of two periods take tokens of one key side by side (a revision
// that changes per while runs of the one before are in flight). The
// ledger records the time of their calls.
func planRatelimited(p *plan, k int) {
	p.runs(ratedRuns, func(q *plan, j int) {
		q.slowRate = j%2 == 1
		q.input["n"], q.input["k"] = q.index, strconv.Itoa(k)
		q.httpPaths, q.effects = []string{"call"}, []string{"call"}
		q.want = completed(map[string]any{"key": q.key("call"), "n": q.index})
	})
}

// planDeadline: a run of the definition whose workflow timeout is
// deadlineShort, which fires while the ledger holds the run's one call:
// the harness lets the ledger answer it once the run has failed, waits for
// the step, still running in the failed run, to complete there, and
// redrives the run, which then has nothing left but to complete; one whose
// timeout fires while a wait waits for a signal that never comes, and
// which, redriven, fails again on the fresh timeout the redrive gives it,
// or is not redriven; and a run of the revision whose timeout is
// deadlineLong, its signal sent at once, which completes in time.
//
// The timeouts that fire do so whatever the kills do: the run cannot
// close otherwise (its call is held, or its wait never signaled), and a
// durable timer fires late at worst. One outcome can change: the redriven
// run of the first variant closes in two decisions, the fresh timer's
// and then its close, recorded back to back; were the orchestrators kept
// from making the second for deadlineShort (a kill between them and a
// slow takeover), the fresh timeout would fire first, and the run fail
// again with type timeout. That documented outcome is accepted too.
func planDeadline(p *plan, k int) {
	p.input["n"] = p.index
	p.httpPaths, p.effects = []string{deadlineStep}, []string{}
	timedOut := outcome{status: "FAILED", errType: "timeout"}
	switch k % 4 {
	case 0:
		p.variant, p.input["gate"] = "times-out-in-flight-redriven-completes", false
		p.hold = map[string]int{deadlineStep: -1}
		p.redrive = &redriveSpec{errType: "timeout", settle: []string{deadlineStep}}
		p.effects = []string{deadlineStep}
		p.want = completed(map[string]any{"held": p.key(deadlineStep), "gate": nil})
		p.want.or = &timedOut
	case 1:
		p.variant, p.input["gate"] = "times-out-waiting-redriven-times-out", true
		p.redrive = &redriveSpec{errType: "timeout"}
		p.want = timedOut
	case 2:
		p.variant, p.input["gate"], p.longDeadline = "in-time", true, true
		payload := map[string]any{"gate": p.index}
		p.signals = []signalSpec{{name: "gate", payload: payload, requestID: "gate-" + p.id}}
		p.waits = map[string]any{"gate": payload}
		p.effects = []string{deadlineStep}
		p.want = completed(map[string]any{"held": p.key(deadlineStep), "gate": payload})
	case 3:
		p.variant, p.input["gate"] = "times-out-waiting", true
		p.want = timedOut
	}
}

// planTaskTimeout: a task step whose attempts time out after taskTimeout
// because the ledger holds their calls: the first one or two, the
// attempts after them completing the run; or every one, the step failing
// with type timeout when its two attempts are used up, or at its first
// when timeout is not retryable. A killed executor's attempt is run again
// with the same number, and its call, abandoned, may use up a hold
// instead of a timeout: the outcomes are the same.
func planTaskTimeout(p *plan, k int) {
	p.input["n"] = p.index
	switch k % 4 {
	case 0, 2:
		held := 1 + k%4/2
		p.variant, p.input["variant"] = fmt.Sprintf("completes-after-%d-held", held), "recover"
		p.httpPaths, p.hold = []string{"recover"}, map[string]int{"recover": held}
		p.want = completed(map[string]any{"key": p.key("recover"), "n": p.index})
	case 1:
		p.variant, p.input["variant"] = "attempts-exhausted", "exhaust"
		p.httpPaths, p.hold, p.effects = []string{"exhaust"}, map[string]int{"exhaust": -1}, []string{}
		p.failPaths["exhaust"] = true
		p.want = outcome{status: "FAILED", errType: "timeout", errStep: "exhaust"}
	case 3:
		p.variant, p.input["variant"] = "timeout-not-retryable", "fatal"
		p.httpPaths, p.hold, p.effects = []string{"fatal"}, map[string]int{"fatal": -1}, []string{}
		p.failPaths["fatal"] = true
		p.want = outcome{status: "FAILED", errType: "timeout", errStep: "fatal"}
	}
}

// pausedRuns is the number of runs the paused shape's driver starts while
// their definition is paused.
const pausedRuns = 3

// planPaused: runs started while their definition is paused, which must
// call nothing until the harness resumes it, and then complete.
func planPaused(p *plan, k int) {
	p.paused, p.pauseCopy = true, k%pausedDefinitions
	p.definition = "chaos-paused-" + strconv.Itoa(p.pauseCopy)
	p.runs(pausedRuns, func(q *plan, _ int) {
		q.input["n"] = q.index
		q.httpPaths, q.effects = []string{"first", "second"}, []string{"first", "second"}
		q.want = completed(map[string]any{"first": q.key("first"), "second": q.key("second"), "prev": q.key("first")})
	})
}

// runs plans p and n-1 siblings of it with each (given each's index, 0
// for p).
func (p *plan) runs(n int, each func(q *plan, j int)) {
	each(p, 0)
	for j := 1; j < n; j++ {
		each(p.sibling(j), j)
	}
}

// sibling adds to p's siblings the j-th, a run of p's definition with the
// ledger's URL as its input, and returns it.
func (p *plan) sibling(j int) *plan {
	s := &plan{index: p.index, shape: p.shape, definition: p.definition, id: fmt.Sprintf("%s-%d", p.id, j),
		input: map[string]any{"url": p.input["url"]}, refuse: map[string]int{}, failPaths: map[string]bool{}}
	p.siblings = append(p.siblings, s)
	return s
}

// searchQueries are the ListWorkflows queries checked once every workflow
// closed, each with the variant of the searched shape whose runs, and no
// others, it must list.
var searchQueries = []struct{ query, variant string }{
	{`search.chaos_shape == "searched" && search.parity == "even" && search.stage == "marked"`, "even"},
	{`definition == "chaos-searched" && search.stage == "started"`, "odd"},
}

// redriveItems is the number of items of a redrive-shape workflow.
const redriveItems = 3

// planRedrive: a caught failure of a task, with guard a caught failure
// inside a foreach, a refused foreach item under on_error: continue and a
// refused step fail the workflow; the harness releases the refusal of the
// last and redrives it, and it must complete without running the caught
// steps, or the item its completed loop absorbed, again.
func planRedrive(p *plan, k int, guard bool) {
	items := make([]any, redriveItems)
	keys := make([]any, redriveItems)
	p.httpPaths = []string{"handled"}
	p.refuse["handled"], p.failPaths["handled"] = 422, true
	p.redrive = &redriveSpec{errType: "conflict", errStep: "flaky", release: []string{"flaky"}}
	p.variant = "flaky-step"
	p.openPaths = map[string]bool{}
	p.input["guard"] = guard
	for j := range items {
		items[j] = fmt.Sprintf("item-%d-%d", p.index, j)
		// The caught loop fails at its first item; the others may finish
		// after the workflow closed, unrecorded.
		if guard {
			guarded := fmt.Sprintf("guarded[%d].guarded_call", j)
			p.httpPaths = append(p.httpPaths, guarded)
			if j == 0 {
				p.refuse[guarded], p.failPaths[guarded], p.failPaths["guarded"] = 422, true, true
			} else {
				p.openPaths[guarded] = true
			}
		}
		path := fmt.Sprintf("items[%d].item_call", j)
		p.httpPaths = append(p.httpPaths, path)
		if j == 1 && k%2 == 0 {
			// The loop completed with the item's failure as its value,
			// which the redrive keeps (docs/language.md, "Redrive").
			p.variant = "flaky-step-and-item"
			p.refuse[path], p.failPaths[path] = 409, true
			keys[j] = "conflict"
			continue
		}
		keys[j] = p.key(path)
		p.effects = append(p.effects, path)
	}
	p.input["items"] = items
	p.httpPaths = append(p.httpPaths, "flaky")
	p.effects = append(p.effects, "flaky")
	p.refuse["flaky"], p.failPaths["flaky"] = 409, true
	var guarded any
	if guard {
		guarded = map[string]any{"caught": "unprocessable"}
	}
	p.want = completed(map[string]any{"handled": map[string]any{"fallback": "unprocessable"},
		"guarded": guarded, "items": keys, "flaky": p.key("flaky")})
}

// normalize returns v as JSON decoding into any gives it.
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}
