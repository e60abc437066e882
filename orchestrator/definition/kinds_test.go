package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// present stands for a compiled template in expected plans.
var present = &Template{}

// ex stands for a compiled expression written as src in expected plans.
func ex(src string) *Expr { return &Expr{Source: src} }

// task is an expected task step with the package defaults.
func task(id, typ string) *Step {
	return &Step{ID: id, Kind: KindTask, Task: typ, Timeout: DefaultTimeout, Retry: defaultRetry}
}

// bare returns a copy of steps without compiled code: expressions keep only
// their Source and templates become present, so plans compare with
// reflect.DeepEqual.
func bare(steps []*Step) []*Step {
	if steps == nil {
		return nil
	}
	out := make([]*Step, len(steps))
	for i, s := range steps {
		out[i] = bareStep(s)
	}
	return out
}

func bareStep(s *Step) *Step {
	c := *s
	c.Input = bareTmpl(s.Input)
	c.If = bareExpr(s.If)
	c.Catch = nil
	for _, cl := range s.Catch {
		c.Catch = append(c.Catch, &Catch{Errors: cl.Errors, Do: bare(cl.Do)})
	}
	if s.Wait != nil {
		w := *s.Wait
		w.TimeoutSteps = bare(w.TimeoutSteps)
		c.Wait = &w
	}
	if s.Switch != nil {
		sw := &Switch{Default: bare(s.Switch.Default)}
		for _, cs := range s.Switch.Cases {
			sw.Cases = append(sw.Cases, &Case{If: bareExpr(cs.If), Then: bare(cs.Then)})
		}
		c.Switch = sw
	}
	if s.Foreach != nil {
		f := *s.Foreach
		f.Items, f.Filter, f.Do = bareExpr(f.Items), bareExpr(f.Filter), bare(f.Do)
		c.Foreach = &f
	}
	if s.Parallel != nil {
		pl := &Parallel{ContinueOnError: s.Parallel.ContinueOnError}
		for _, b := range s.Parallel.Branches {
			pl.Branches = append(pl.Branches, &Branch{Name: b.Name, Steps: bare(b.Steps)})
		}
		c.Parallel = pl
	}
	if s.Sleep != nil {
		c.Sleep = &Sleep{Duration: s.Sleep.Duration, Until: bareExpr(s.Sleep.Until)}
	}
	c.Set = nil
	for _, v := range s.Set {
		c.Set = append(c.Set, &SetVar{Name: v.Name, Value: bareExpr(v.Value)})
	}
	if s.Repeat != nil {
		c.Repeat = &Repeat{Do: bare(s.Repeat.Do), Until: bareExpr(s.Repeat.Until), MaxIterations: s.Repeat.MaxIterations}
	}
	if s.Workflow != nil {
		c.Workflow = &Child{Definition: s.Workflow.Definition, Input: bareTmpl(s.Workflow.Input)}
	}
	if s.Fail != nil {
		c.Fail = &Fail{Message: bareTmpl(s.Fail.Message), Type: s.Fail.Type}
	}
	if s.Succeed != nil {
		c.Succeed = &Succeed{Output: bareTmpl(s.Succeed.Output)}
	}
	return &c
}

func bareExpr(e *Expr) *Expr {
	if e == nil {
		return nil
	}
	if e.tmpl == nil {
		panic("expression " + e.Source + " is not compiled")
	}
	return ex(e.Source)
}

func bareTmpl(t *Template) *Template {
	if t == nil {
		return nil
	}
	return present
}

// render shows steps as JSON for failure messages.
func render(steps []*Step) string {
	b, _ := json.MarshalIndent(steps, "", "  ")
	return string(b)
}

func mustParse(t testing.TB, src string) *Definition {
	t.Helper()
	d, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseKinds(t *testing.T) {
	tests := []struct {
		name string
		src  string // the steps of a definition, as YAML
		want []*Step
	}{
		{
			name: "switch",
			src: `
- id: route
  switch:
    - if: "input.n > 10"
      then: [{id: big, task: t}]
    - if: "${ input.n > 5 }"
      then: []
    - if: true
      then: [{id: other, task: t}]
  default: [{id: small, task: t}]`,
			want: []*Step{{ID: "route", Kind: KindSwitch, Switch: &Switch{
				Cases: []*Case{
					{If: ex("input.n > 10"), Then: []*Step{task("big", "t")}},
					{If: ex("${ input.n > 5 }")},
					{If: ex("true"), Then: []*Step{task("other", "t")}},
				},
				Default: []*Step{task("small", "t")},
			}}},
		},
		{
			name: "switch without default",
			src:  `[{id: s, switch: [{if: "input.ok", then: [{id: a, task: t}]}]}]`,
			want: []*Step{{ID: "s", Kind: KindSwitch, Switch: &Switch{Cases: []*Case{{If: ex("input.ok"), Then: []*Step{task("a", "t")}}}}}},
		},
		{
			name: "foreach defaults",
			src:  `[{id: each, foreach: input.items, do: [{id: one, task: t, input: "${ item }"}]}]`,
			want: []*Step{{ID: "each", Kind: KindForeach, Foreach: &Foreach{
				Items: ex("input.items"), As: "item", Concurrency: 10,
				Do: []*Step{func() *Step { s := task("one", "t"); s.Input = present; return s }()},
			}}},
		},
		{
			name: "foreach",
			src: `
- id: each
  foreach: "${ input.orders }"
  as: order
  concurrency: 3
  filter: "order.qty > index"
  on_error: continue
  do:
    - id: one
      task: t
      input: "${ [order, index] }"`,
			want: []*Step{{ID: "each", Kind: KindForeach, Foreach: &Foreach{
				Items: ex("${ input.orders }"), As: "order", Concurrency: 3, Filter: ex("order.qty > index"), ContinueOnError: true,
				Do: []*Step{func() *Step { s := task("one", "t"); s.Input = present; return s }()},
			}}},
		},
		{
			name: "foreach on_error fail",
			src:  `[{id: each, foreach: "[1]", on_error: fail, do: [{id: one, task: t}]}]`,
			want: []*Step{{ID: "each", Kind: KindForeach, Foreach: &Foreach{
				Items: ex("[1]"), As: "item", Concurrency: 10, Do: []*Step{task("one", "t")},
			}}},
		},
		{
			name: "parallel",
			src: `
- id: fan
  parallel:
    branches:
      zeta: [{id: z, task: t}]
      alpha: [{id: a1, task: t}, {id: a2, task: t}]
      mid-1: [{id: m, task: t}]`,
			want: []*Step{{ID: "fan", Kind: KindParallel, Parallel: &Parallel{Branches: []*Branch{
				{Name: "alpha", Steps: []*Step{task("a1", "t"), task("a2", "t")}},
				{Name: "mid-1", Steps: []*Step{task("m", "t")}},
				{Name: "zeta", Steps: []*Step{task("z", "t")}},
			}}}},
		},
		{
			name: "parallel continue",
			src:  `[{id: fan, parallel: {branches: {a: [{id: x, task: t}]}}, on_error: continue}]`,
			want: []*Step{{ID: "fan", Kind: KindParallel, Parallel: &Parallel{ContinueOnError: true,
				Branches: []*Branch{{Name: "a", Steps: []*Step{task("x", "t")}}}}}},
		},
		{
			name: "sleep",
			src:  `[{id: nap, sleep: 1d12h}, {id: later, sleep: {until: "timestamp(input.at)"}}, {id: wrapped, sleep: {until: "${ workflow.now + duration('1h') }"}}]`,
			want: []*Step{
				{ID: "nap", Kind: KindSleep, Sleep: &Sleep{Duration: 36 * time.Hour}},
				{ID: "later", Kind: KindSleep, Sleep: &Sleep{Until: ex("timestamp(input.at)")}},
				{ID: "wrapped", Kind: KindSleep, Sleep: &Sleep{Until: ex("${ workflow.now + duration('1h') }")}},
			},
		},
		{
			name: "set",
			src:  `[{id: init, set: {total: "0", names: "${ ['a'] }", _x: "vars.total + 1"}}]`,
			want: []*Step{{ID: "init", Kind: KindSet, Set: []*SetVar{
				{Name: "_x", Value: ex("vars.total + 1")},
				{Name: "names", Value: ex("${ ['a'] }")},
				{Name: "total", Value: ex("0")},
			}}},
		},
		{
			name: "repeat",
			src: `
- id: poll
  repeat:
    do: [{id: check, task: t, input: "${ iteration }"}]
    until: "steps.check.output.done || iteration >= 3"
    max_iterations: 100000`,
			want: []*Step{{ID: "poll", Kind: KindRepeat, Repeat: &Repeat{
				Do:    []*Step{func() *Step { s := task("check", "t"); s.Input = present; return s }()},
				Until: ex("steps.check.output.done || iteration >= 3"), MaxIterations: 100000,
			}}},
		},
		{
			name: "workflow",
			src:  `[{id: child, workflow: billing, input: {id: "${ input.id }"}}, {id: bare, workflow: billing-v2}]`,
			want: []*Step{
				{ID: "child", Kind: KindWorkflow, Workflow: &Child{Definition: "billing", Input: present}},
				{ID: "bare", Kind: KindWorkflow, Workflow: &Child{Definition: "billing-v2"}},
			},
		},
		{
			name: "fail",
			src:  `[{id: stop, fail: {message: "no stock for ${ input.sku }"}}, {id: typed, fail: {message: m, type: out_of.stock}}]`,
			want: []*Step{
				{ID: "stop", Kind: KindFail, Fail: &Fail{Message: present, Type: "fail"}},
				{ID: "typed", Kind: KindFail, Fail: &Fail{Message: present, Type: "out_of.stock"}},
			},
		},
		{
			name: "succeed",
			src:  "- {id: done, succeed: {output: \"${ input }\"}}\n- {id: empty, succeed: {}}\n- id: nothing\n  succeed:\n",
			want: []*Step{
				{ID: "done", Kind: KindSucceed, Succeed: &Succeed{Output: present}},
				{ID: "empty", Kind: KindSucceed, Succeed: &Succeed{}},
				{ID: "nothing", Kind: KindSucceed, Succeed: &Succeed{}},
			},
		},
		{
			name: "wait timeout_steps",
			src:  `[{id: approval, wait: {signal: ok, timeout: 1h}, timeout_steps: [{id: remind, task: mail}]}]`,
			want: []*Step{{ID: "approval", Kind: KindWait, Wait: &Wait{Signal: "ok", Timeout: time.Hour,
				TimeoutSteps: []*Step{task("remind", "mail")}}}},
		},
		{
			name: "if and catch",
			src: `
- id: guarded
  if: "input.enabled"
  task: t
  catch:
    - errors: [timeout, http.bad_gateway]
      do: [{id: fallback, task: t}]
    - do: []
- id: always
  if: true
  sleep: 1s
- id: never
  if: false
  set: {x: "1"}`,
			want: []*Step{
				func() *Step {
					s := task("guarded", "t")
					s.If = ex("input.enabled")
					s.Catch = []*Catch{
						{Errors: []string{"timeout", "http.bad_gateway"}, Do: []*Step{task("fallback", "t")}},
						{},
					}
					return s
				}(),
				{ID: "always", Kind: KindSleep, If: ex("true"), Sleep: &Sleep{Duration: time.Second}},
				{ID: "never", Kind: KindSet, If: ex("false"), Set: []*SetVar{{Name: "x", Value: ex("1")}}},
			},
		},
		{
			name: "nested loops",
			src: `
- id: outer
  foreach: input.rows
  as: row
  do:
    - id: inner
      foreach: row.cells
      as: cell
      concurrency: 1
      do:
        - id: again
          repeat:
            do:
              - id: cellwork
                if: "index >= 0 && iteration < 5"
                task: t
                input: "${ [row, cell, index, iteration] }"
            until: "cell != null"
            max_iterations: 2`,
			want: []*Step{{ID: "outer", Kind: KindForeach, Foreach: &Foreach{
				Items: ex("input.rows"), As: "row", Concurrency: 10,
				Do: []*Step{{ID: "inner", Kind: KindForeach, Foreach: &Foreach{
					Items: ex("row.cells"), As: "cell", Concurrency: 1,
					Do: []*Step{{ID: "again", Kind: KindRepeat, Repeat: &Repeat{
						Do: []*Step{func() *Step {
							s := task("cellwork", "t")
							s.If = ex("index >= 0 && iteration < 5")
							s.Input = present
							return s
						}()},
						Until: ex("cell != null"), MaxIterations: 2,
					}}},
				}}},
			}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "name: kinds\nsteps:\n" + indent(strings.TrimPrefix(tt.src, "\n"))
			d := mustParse(t, src)
			if got := bare(d.Steps); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", render(got), render(tt.want))
			}
		})
	}
}

// indent indents YAML by two spaces.
func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestParseWorkflowLevel(t *testing.T) {
	d := mustParse(t, `
name: w
timeout: 7d
retry: { max_attempts: 9, initial_interval: 2s, non_retryable: [bad] }
steps:
  - id: inherits
    task: t
  - id: own
    task: t
    retry: { max_interval: 2m }
  - id: loop
    foreach: input.items
    do:
      - id: nested
        task: t
  - id: child
    workflow: b
  - id: other
    workflow: a
  - id: again
    workflow: b
`)
	wfRetry := events.RetryPolicy{MaxAttempts: 9, InitialInterval: 2 * time.Second, BackoffCoefficient: DefaultBackoffCoefficient,
		MaxInterval: DefaultMaxInterval, NonRetryable: []string{"bad"}}
	if d.Timeout != 7*24*time.Hour {
		t.Errorf("Timeout = %v", d.Timeout)
	}
	if d.Retry == nil || !reflect.DeepEqual(*d.Retry, wfRetry) {
		t.Errorf("Retry = %+v, want %+v", d.Retry, wfRetry)
	}
	if got := d.Step("inherits").Retry; !reflect.DeepEqual(got, wfRetry) {
		t.Errorf("inherits: Retry = %+v, want the workflow's", got)
	}
	if got := d.Step("nested").Retry; !reflect.DeepEqual(got, wfRetry) {
		t.Errorf("nested: Retry = %+v, want the workflow's", got)
	}
	wantOwn := defaultRetry
	wantOwn.MaxInterval = 2 * time.Minute
	if got := d.Step("own").Retry; !reflect.DeepEqual(got, wantOwn) {
		t.Errorf("own: Retry = %+v, want %+v (package defaults under its own fields)", got, wantOwn)
	}
	// Steps do not share the workflow's slices.
	d.Step("inherits").Retry.NonRetryable[0] = "changed"
	if d.Retry.NonRetryable[0] != "bad" || d.Step("nested").Retry.NonRetryable[0] != "bad" {
		t.Error("tasks share the workflow retry's non_retryable list")
	}
	if want := []string{"a", "b"}; !reflect.DeepEqual(d.Children, want) {
		t.Errorf("Children = %v, want %v", d.Children, want)
	}

	d = mustParse(t, "name: w\nsteps: [{id: a, task: t}]\n")
	if d.Timeout != 0 || d.Retry != nil || d.Children != nil || !reflect.DeepEqual(d.Steps[0].Retry, defaultRetry) {
		t.Errorf("defaults: Timeout %v, Retry %v, Children %v, task retry %+v", d.Timeout, d.Retry, d.Children, d.Steps[0].Retry)
	}
}

func TestExprEval(t *testing.T) {
	d := mustParse(t, `
name: e
steps:
  - id: init
    if: "${ input.go }"
    set: { n: "${ input.n + 1 }", tags: "${ ['a', 'b'] }", label: "'n=' + string(input.n)" }
  - id: each
    foreach: vars.tags
    as: tag
    filter: "${ index > 0 || tag == 'a' }"
    do:
      - id: loop
        repeat:
          do:
            - id: work
              if: "index + iteration < vars.n"
              task: t
              input: "${ tag + ':' + string(index) + ':' + string(iteration) }"
          until: "${ iteration >= 2 }"
          max_iterations: 5
  - id: nap
    sleep: { until: "workflow.now + duration('1h')" }
  - id: const
    if: false
    sleep: 1s
`)
	scope := Scope{
		Input:  map[string]any{"go": true, "n": int64(2)},
		Vars:   map[string]any{"n": int64(3), "tags": []any{"a", "b"}},
		Locals: map[string]any{"tag": "b", "index": 1, "iteration": int32(1)},
		Now:    time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	init := d.Step("init")
	each := d.Step("each")
	work := d.Step("work")
	tests := []struct {
		name string
		expr *Expr
		want any
	}{
		{"wrapped if", init.If, true},
		{"wrapped set", init.Set[1].Value, int64(3)},
		{"wrapped list", init.Set[2].Value, []any{"a", "b"}},
		{"bare string", init.Set[0].Value, "n=2"},
		{"foreach items from vars", each.Foreach.Items, []any{"a", "b"}},
		{"filter sees item and index", each.Foreach.Filter, true},
		{"if sees index, iteration and vars", work.If, true},
		{"until sees iteration", d.Step("loop").Repeat.Until, false},
		{"sleep until", d.Step("nap").Sleep.Until, "2025-01-02T04:04:05Z"},
		{"constant if", d.Step("const").If, false},
		{"nil expression", (*Expr)(nil), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.expr.Eval(scope)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
	in, err := work.Input.Eval(scope)
	if err != nil || in != "b:1:1" {
		t.Errorf("work input = %#v, %v; want b:1:1", in, err)
	}

	// Locals of every integer type are ints; a missing local or var fails.
	for _, idx := range []any{7, int8(7), int16(7), int32(7), int64(7), uint(7), uint8(7), uint16(7), uint32(7), uint64(7)} {
		s := scope
		s.Locals = map[string]any{"tag": "a", "index": idx}
		if v, err := each.Foreach.Filter.Eval(s); err != nil || v != true {
			t.Errorf("index %T: filter = %v, %v", idx, v, err)
		}
	}
	s := scope
	s.Locals = map[string]any{"tag": "b"}
	if _, err := each.Foreach.Filter.Eval(s); err == nil {
		t.Error("filter without index evaluated")
	} else if eerr := (*EvalError)(nil); !errors.As(err, &eerr) || eerr.Field != "filter" {
		t.Errorf("error = %v, want an *EvalError for field filter", err)
	}
	s = scope
	s.Vars = nil
	if _, err := init.Set[1].Value.Eval(s); err != nil {
		t.Errorf("set without vars: %v", err)
	}
	_, err = work.If.Eval(s)
	if err == nil || !strings.Contains(err.Error(), "evaluate if: no such key: n") {
		t.Errorf("if with no vars: error = %v", err)
	}
}

func TestExprVarsOptional(t *testing.T) {
	d := mustParse(t, `
name: v
steps:
  - id: bump
    set: { count: "vars.?count.orValue(0) + 1", seen: "has(vars.count)" }
`)
	for _, tt := range []struct {
		vars  map[string]any
		count any
		seen  any
	}{
		{nil, int64(1), false},
		{map[string]any{"count": int64(4)}, int64(5), true},
	} {
		s := Scope{Vars: tt.vars}
		count, err1 := d.Step("bump").Set[0].Value.Eval(s)
		seen, err2 := d.Step("bump").Set[1].Value.Eval(s)
		if err1 != nil || err2 != nil || count != tt.count || seen != tt.seen {
			t.Errorf("vars %v: count = %v, %v; seen = %v, %v", tt.vars, count, err1, seen, err2)
		}
	}
}

func TestParseNestedIDs(t *testing.T) {
	_, err := Parse([]byte(`
name: ids
steps:
  - id: a
    foreach: "[1]"
    do:
      - id: b
        task: t
        catch:
          - do:
              - id: a
                task: t
  - id: c
    parallel:
      branches:
        x: [{id: b, task: t}]
        y: [{task: t}]
`))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("Parse = %v, want *Error", err)
	}
	want := []Problem{
		{Step: "steps[0].do[0].catch[0].do[0]", Field: "id", Message: `duplicate id "a": step ids must be unique, nested steps included`},
		{Step: "steps[1].parallel.branches.x[0]", Field: "id", Message: `duplicate id "b": step ids must be unique, nested steps included`},
		{Step: "steps[1].parallel.branches.y[0]", Field: "id", Message: "is required"},
	}
	if !reflect.DeepEqual(perr.Problems, want) {
		t.Errorf("problems:\n%+v\nwant\n%+v", perr.Problems, want)
	}
}

func TestParseReferences(t *testing.T) {
	tests := []struct {
		name  string
		steps string
		bad   string // a fragment of the one problem, or "" for none
	}{
		{"earlier top-level", `[{id: a, task: t}, {id: b, task: t, input: "${ steps.a.output }"}]`, ""},
		{"nested reads earlier top-level", `[{id: a, task: t}, {id: l, foreach: "[1]", do: [{id: b, task: t, input: "${ steps.a.output }"}]}]`, ""},
		{"top-level reads earlier branch", `[{id: p, parallel: {branches: {x: [{id: a, task: t}]}}}, {id: b, task: t, input: "${ steps.a.output }"}]`, ""},
		{"earlier sibling in a body", `[{id: l, foreach: "[1]", do: [{id: a, task: t}, {id: b, task: t, input: "${ steps.a.output }"}]}]`, ""},
		{"other branch", `[{id: p, parallel: {branches: {x: [{id: a, task: t}], y: [{id: b, task: t, input: "${ steps.a.output }"}]}}}]`, ""},
		{"catch reads body", `[{id: s, switch: [{if: "true", then: [{id: a, task: t}]}], catch: [{do: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, ""},
		{"until reads body", `[{id: r, repeat: {do: [{id: a, task: t}], until: "steps.a.output", max_iterations: 2}}]`, ""},
		{"until reads nested body", `[{id: r, repeat: {do: [{id: s, switch: [{if: "true", then: [{id: a, task: t}]}]}], until: "steps.a.output", max_iterations: 2}}]`, ""},
		{"if reads vars set later", `[{id: a, if: "vars.x", task: t}, {id: b, set: {x: "true"}}]`, ""},
		{"later top-level", `[{id: a, task: t, input: "${ steps.b.output }"}, {id: b, task: t}]`, `step "b" comes later`},
		{"later sibling in a body", `[{id: l, foreach: "[1]", do: [{id: a, task: t, input: "${ steps.b.output }"}, {id: b, task: t}]}]`, `step "b" comes later`},
		{"top-level reads earlier loop body", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, `step "a" is in the body of loop "l"`},
		{"catch reads loop body", `[{id: l, foreach: "[1]", do: [{id: a, task: t}], catch: [{do: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, `step "a" is in the body of loop "l"`},
		{"nested in a later step", `[{id: a, task: t, input: "${ steps.b.output }"}, {id: l, foreach: "[1]", do: [{id: b, task: t}]}]`, `step "b" comes later`},
		{"own output in if", `[{id: a, if: "steps.a.output", task: t}]`, "cannot read its own output"},
		{"container", `[{id: l, foreach: "[1]", do: [{id: a, task: t, input: "${ steps.l.output }"}]}]`, `step "l" contains this step`},
		{"catch reads its step", `[{id: a, task: t, catch: [{do: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, `step "a" contains this step`},
		{"filter reads body", `[{id: l, foreach: "[1]", filter: "steps.a.output", do: [{id: a, task: t}]}]`, `step "a" is inside this step`},
		{"case reads its branch", `[{id: s, switch: [{if: "steps.a.output", then: [{id: a, task: t}]}]}]`, `step "a" is inside this step`},
		{"missing", `[{id: a, task: t, input: "${ steps.x.output }"}]`, `there is no step "x"`},
		{"var never set", `[{id: a, task: t, input: "${ vars.x }"}]`, "vars.x is never set"},
		{"item outside foreach", `[{id: a, task: t, input: "${ item }"}]`, "undeclared reference to 'item'"},
		{"item in own items", `[{id: l, foreach: "item", do: [{id: a, task: t}]}]`, "undeclared reference to 'item'"},
		{"item in own if", `[{id: l, if: "index > 0", foreach: "[1]", do: [{id: a, task: t}]}]`, "undeclared reference to 'index'"},
		{"iteration outside repeat", `[{id: l, foreach: "[1]", do: [{id: a, task: t, input: "${ iteration }"}]}]`, "undeclared reference to 'iteration'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("name: refs\nsteps: " + tt.steps + "\n"))
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) != 1 || !strings.Contains(perr.Problems[0].Message, tt.bad) {
				t.Fatalf("Parse = %v; want one problem with %q", err, tt.bad)
			}
		})
	}
}

// TestDefect12_LoopBodyReadsRejectedAtPut checks that reading a step inside
// a foreach or repeat body from outside that body is rejected when the
// definition is put, since at run time such a step is only visible within
// its own iteration, while steps nested in branches, cases, catch blocks and
// timeout steps, which run at their holder's level, stay readable.
func TestDefect12_LoopBodyReadsRejectedAtPut(t *testing.T) {
	const hint = `step "a" is in the body of loop "l" and cannot be read outside it; read the loop's output (steps.l.output) instead`
	tests := []struct {
		name  string
		steps string
		extra string // appended to the definition, e.g. an output
		want  []Problem
	}{
		{"after foreach", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"after repeat", `[{id: l, repeat: {do: [{id: a, task: t}], until: "true", max_iterations: 2}}, {id: b, task: t, if: "steps.a.output"}]`, "",
			[]Problem{{"b", "if", `expression "steps.a.output": steps.a: ` + hint}}},
		{"workflow output", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}]`, `output: "${ steps.a.output }"`,
			[]Problem{{"", "output", `expression "steps.a.output": steps.a: ` + hint}}},
		{"nested in a switch in the body", `[{id: l, foreach: "[1]", do: [{id: s, switch: [{if: "true", then: [{id: a, task: t}]}]}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"from a switch after the loop", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: s, switch: [{if: "true", then: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"from another loop", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: m, foreach: "[1]", do: [{id: b, task: t, input: "${ steps.a.output }"}]}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"catch of the loop", `[{id: l, foreach: "[1]", do: [{id: a, task: t}], catch: [{do: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"inner loop from the outer body", `[{id: o, foreach: "[1]", do: [{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: b, task: t, input: "${ steps.a.output }"}]}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"inner loop from after the outer", `[{id: l, foreach: "[1]", do: [{id: i, foreach: "[1]", do: [{id: a, task: t}]}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, "",
			[]Problem{{"b", "input", `expression "steps.a.output": steps.a: ` + hint}}},
		{"until reads an inner loop", `[{id: r, repeat: {do: [{id: l, foreach: "[1]", do: [{id: a, task: t}]}], until: "steps.a.output", max_iterations: 2}}]`, "",
			[]Problem{{"r", "repeat.until", `expression "steps.a.output": steps.a: ` + hint}}},

		{"parallel branch", `[{id: p, parallel: {branches: {x: [{id: a, task: t}]}}}, {id: b, task: t, input: "${ steps.a.output }"}]`, `output: "${ steps.a.output }"`, nil},
		{"switch case", `[{id: s, switch: [{if: "true", then: [{id: a, task: t}]}], default: [{id: d, task: t}]}, {id: b, task: t, input: "${ [steps.a.output, steps.d.output] }"}]`, "", nil},
		{"catch block", `[{id: c, task: t, catch: [{do: [{id: a, task: t}]}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, `output: "${ steps.a.output }"`, nil},
		{"timeout steps", `[{id: w, wait: {signal: s, timeout: 1h}, timeout_steps: [{id: a, task: t}]}, {id: b, task: t, input: "${ steps.a.output }"}]`, "", nil},
		{"loop output", `[{id: l, foreach: "[1]", do: [{id: a, task: t}]}, {id: b, task: t, input: "${ steps.l.output }"}]`, `output: "${ steps.l.output }"`, nil},
		{"same body", `[{id: l, foreach: "[1]", do: [{id: a, task: t}, {id: s, switch: [{if: "true", then: [{id: c, task: t}]}]}, {id: b, task: t, input: "${ [steps.a.output, steps.c.output] }"}]}]`, "", nil},
		{"outer body from inner loop", `[{id: o, foreach: "[1]", do: [{id: a, task: t}, {id: l, foreach: "[1]", do: [{id: b, task: t, input: "${ steps.a.output }"}]}]}]`, "", nil},
		{"until reads body", `[{id: r, repeat: {do: [{id: p, parallel: {branches: {x: [{id: a, task: t}]}}}], until: "steps.a.output", max_iterations: 2}}]`, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("name: refs\nsteps: " + tt.steps + "\n" + tt.extra + "\n"))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse = %v; want problems %+v", err, tt.want)
			}
			if !reflect.DeepEqual(perr.Problems, tt.want) {
				t.Errorf("problems:\n%+v\nwant\n%+v", perr.Problems, tt.want)
			}
		})
	}
}

func TestParseOutputReadsNested(t *testing.T) {
	d := mustParse(t, `
name: o
steps:
  - id: s
    switch:
      - if: "input.x"
        then: [{id: a, task: t}]
output: "${ steps.a.output }"
`)
	out, err := d.Output.Eval(Scope{Steps: map[string]any{"a": "x"}})
	if err != nil || out != "x" {
		t.Errorf("output = %v, %v", out, err)
	}
}

func TestDefinitionWalk(t *testing.T) {
	d := mustParse(t, `
name: walk
steps:
  - id: s
    switch:
      - if: "true"
        then: [{id: s1, task: t}]
    default: [{id: s2, task: t}]
    catch: [{do: [{id: c1, task: t}]}]
  - id: p
    parallel: { branches: { b: [{id: pb, task: t}], a: [{id: pa, task: t}] } }
  - id: w
    wait: { signal: go, timeout: 1h }
    timeout_steps: [{id: w1, task: t}]
  - id: r
    repeat: { do: [{id: r1, foreach: "[1]", do: [{id: f1, task: t}]}], until: "true", max_iterations: 1 }
`)
	var ids []string
	for s := range d.All() {
		ids = append(ids, s.ID)
	}
	want := []string{"s", "s1", "s2", "c1", "p", "pa", "pb", "w", "w1", "r", "r1", "f1"}
	if !slices.Equal(ids, want) {
		t.Errorf("All = %v, want %v", ids, want)
	}
	for _, id := range want {
		if s := d.Step(id); s == nil || s.ID != id {
			t.Errorf("Step(%q) = %v", id, s)
		}
	}
	if d.Step("nope") != nil || d.Index("f1") != -1 || d.Index("w") != 2 {
		t.Error("lookups are off")
	}
	// A definition built by hand, without the index, is walked.
	hand := &Definition{Steps: []*Step{{ID: "x", Kind: KindForeach, Foreach: &Foreach{Do: []*Step{{ID: "y"}}}}}}
	if s := hand.Step("y"); s == nil || s.ID != "y" {
		t.Errorf("hand-built Step(y) = %v", s)
	}
	// Stopping early stops the walk.
	n := 0
	for range d.All() {
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("walk went on after break: %d", n)
	}
}

func TestParseLimits(t *testing.T) {
	// Deep nesting is refused, however written.
	var b strings.Builder
	b.WriteString("name: deep\nsteps:\n")
	ind := "  "
	for i := range maxDepth + 2 {
		fmt.Fprintf(&b, "%s- id: s%d\n%s  foreach: \"[1]\"\n%s  do:\n", ind, i, ind, ind)
		ind += "    "
	}
	fmt.Fprintf(&b, "%s- id: leaf\n%s  task: t\n", ind, ind)
	_, err := Parse([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "steps nest too deeply") {
		t.Errorf("deep: %v", err)
	}

	// Aliases cannot blow a definition up, nor loop it.
	bomb := "name: bomb\nsteps:\n  - &a {id: x, foreach: \"[1]\", do: [{task: t}]}\n"
	for i := range 20 {
		prev := "a"
		if i > 0 {
			prev = fmt.Sprintf("a%d", i)
		}
		bomb += fmt.Sprintf("  - &a%d {foreach: \"[1]\", do: [*%s, *%s]}\n", i+1, prev, prev)
	}
	start := time.Now()
	_, err = Parse([]byte(bomb))
	if err == nil || !strings.Contains(err.Error(), "too many steps") {
		t.Errorf("bomb: %v", err)
	}
	_, err = Parse([]byte("name: loop\nsteps: &s\n  - {id: x, foreach: \"[1]\", do: *s}\n"))
	if err == nil {
		t.Error("self-nesting steps parsed")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("limits took %v", d)
	}
}

func TestParseConcurrentNested(t *testing.T) {
	t.Parallel()
	src := []byte(`
name: c
steps:
  - id: l
    foreach: input.items
    do:
      - id: r
        repeat:
          do: [{id: a, task: t, input: "${ item * 10 + iteration }"}]
          until: "iteration >= 1"
          max_iterations: 2
`)
	done := make(chan error)
	for i := range 8 {
		go func() {
			d, err := Parse(src)
			if err == nil {
				var v any
				v, err = d.Step("a").Input.Eval(Scope{Locals: map[string]any{"item": int64(i), "index": 0, "iteration": 1}})
				if err == nil && v != int64(i*10+1) {
					err = fmt.Errorf("input = %v", v)
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
