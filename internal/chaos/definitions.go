package chaos

import (
	"encoding/json"
	"fmt"
)

// retryPolicy is generous enough that injected 503s and attempts lost to
// killed executors never exhaust a step.
const retryPolicy = `{ max_attempts: 20, initial_interval: 200ms, backoff_coefficient: 2, max_interval: 2s }`

// definitions are the workflow shapes of a run: sequential calls with a
// parallel step, a foreach fan-out, and a sleep followed by a wait for a
// signal. Every task calls the ledger, whose answers carry the call's
// idempotency key, so the expected output of each workflow is known.
var definitions = []string{`
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
`}

// Workflow shapes, by index modulo 3.
const (
	shapeSeq = iota
	shapeFanout
	shapeWait
	numShapes
)

var shapeNames = [numShapes]string{"seq", "fanout", "wait"}

// fanoutItems is the number of items of a fan-out workflow.
const fanoutItems = 5

// waitStep is the path of the wait step of the wait shape.
const waitStep = "approval"

// plan is one workflow of a run: what it is started with and what it must
// end with.
type plan struct {
	index      int
	id         string
	shape      int
	definition string
	input      map[string]any
	// signal is the payload sent to a wait-shape workflow; signalEarly
	// sends it right after the start instead of once the wait has begun.
	signal      map[string]any
	signalEarly bool
	// expected is the workflow's output, in the form JSON decoding gives.
	expected any
	// httpPaths are the paths of the steps that call the ledger.
	httpPaths []string
}

// newPlan returns the i-th workflow of a run.
func newPlan(i int, ledgerURL string) *plan {
	shape := i % numShapes
	p := &plan{index: i, shape: shape, definition: "chaos-" + shapeNames[shape],
		id: fmt.Sprintf("chaos-%s-%05d", shapeNames[shape], i)}
	key := func(path string) string { return p.id + "/" + path }
	var expected map[string]any
	switch shape {
	case shapeSeq:
		who := fmt.Sprintf("who-%d", i)
		p.input = map[string]any{"url": ledgerURL, "who": who}
		p.httpPaths = []string{"one", "left_call", "right_call", "two"}
		expected = map[string]any{"one": key("one"), "two": key("two"), "prev": key("one"), "who": who,
			"sides": []any{"left", "right"}}
	case shapeFanout:
		items := make([]any, fanoutItems)
		keys := make([]any, fanoutItems)
		for k := range items {
			items[k] = fmt.Sprintf("item-%d-%d", i, k)
			path := fmt.Sprintf("fan[%d].call", k)
			keys[k] = key(path)
			p.httpPaths = append(p.httpPaths, path)
		}
		p.input = map[string]any{"url": ledgerURL, "items": items}
		expected = map[string]any{"keys": keys, "items": items}
	case shapeWait:
		p.input = map[string]any{"url": ledgerURL}
		p.signal = map[string]any{"by": "chaos", "n": i}
		p.signalEarly = (i/numShapes)%2 == 0
		p.httpPaths = []string{"before", "after"}
		expected = map[string]any{"before": key("before"), "signal": p.signal, "after": p.signal}
	}
	p.expected = normalize(expected)
	return p
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
