package definition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore/events"
)

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	idRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`)      // step ids, branch names
	symbolRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$`) // task types, signal names, error types
)

// Limits on the shape of a definition.
const (
	// maxSteps bounds the steps of a definition, nested ones included.
	maxSteps = 10000
	// maxDepth bounds how deeply steps nest inside other steps.
	maxDepth = 32
	// maxIterations bounds a repeat's max_iterations.
	maxIterations = 100000
)

// kindSpec describes one step kind: the step field that selects it (its key
// in stepKinds), the further step fields it owns, and the fields of its own
// mapping (for hints).
type kindSpec struct {
	kind   Kind
	fields []string
	inside []string
}

// kindNames lists the kind fields in the order messages name them.
var kindNames = []string{"task", "wait", "switch", "foreach", "parallel", "sleep", "set", "repeat", "workflow", "fail", "succeed"}

// stepKinds maps each kind field to its spec.
var stepKinds = map[string]*kindSpec{
	"task":     {kind: KindTask, fields: []string{"concurrency", "input", "rate_limit", "retry", "timeout"}},
	"wait":     {kind: KindWait, fields: []string{"timeout_steps"}, inside: []string{"signal", "timeout"}},
	"switch":   {kind: KindSwitch, fields: []string{"default"}},
	"foreach":  {kind: KindForeach, fields: []string{"as", "concurrency", "do", "filter", "on_error"}},
	"parallel": {kind: KindParallel, fields: []string{"on_error"}, inside: []string{"branches"}},
	"sleep":    {kind: KindSleep, inside: []string{"until"}},
	"set":      {kind: KindSet},
	"repeat":   {kind: KindRepeat, inside: []string{"do", "max_iterations", "until"}},
	"workflow": {kind: KindWorkflow, fields: []string{"input"}},
	"fail":     {kind: KindFail, inside: []string{"message", "type"}},
	"succeed":  {kind: KindSucceed, inside: []string{"output"}},
}

// commonFields are the fields every step may have besides its kind's.
var commonFields = []string{"catch", "id", "if", "search"}

// stepFields lists every field a step may have, sorted.
var stepFields = func() []string {
	fields := slices.Clone(commonFields)
	for k, spec := range stepKinds {
		fields = append(fields, k)
		fields = append(fields, spec.fields...)
	}
	sort.Strings(fields)
	return slices.Compact(fields)
}()

// kindList renders the kinds as "task, wait, ... or succeed".
func kindList() string {
	return strings.Join(kindNames[:len(kindNames)-1], ", ") + " or " + kindNames[len(kindNames)-1]
}

// node is what the first pass over a definition learns about one step.
type node struct {
	// pos is the step's position, e.g. steps[2].do[0].
	pos string
	// id is the step's id when it is valid and unique, else "".
	id string
	// path lists the step lists holding the step, outermost first, with
	// its position (or its ancestor's) in each.
	path []slot
}

// slot is a position in a step list.
type slot struct {
	list  string // the list's position, e.g. steps[2].do
	index int
	// loop is the foreach or repeat step whose body the list is, or nil:
	// the steps of a body are visible only within their iteration.
	loop *node
}

// label names the step in problems: its id, or its position.
func (n *node) label() string {
	if n.id != "" {
		return n.id
	}
	return n.pos
}

// stepAt is where a step is being parsed.
type stepAt struct {
	label string
	node  *node
	// sc holds the loop variables the step's expressions see.
	sc *scope
}

// expr is where the step's own expressions compile.
func (at *stepAt) expr() exprAt {
	return exprAt{self: at.node, sc: at.sc}
}

// Parse parses a definition in YAML or JSON and compiles it. On failure it
// returns an *Error listing every problem found.
func Parse(src []byte) (*Definition, error) {
	p := newParser()
	d := p.definition(src)
	if len(p.problems) > 0 {
		return nil, &Error{Problems: p.problems}
	}
	d.newOnly = p.newOnly
	return d, nil
}

// parser collects problems while it walks a definition.
type parser struct {
	problems []Problem
	// newOnly holds what a definition put now may not have, and one an
	// earlier version stored may (Definition.CheckNew).
	newOnly []Problem
	// ids maps each valid, unique step id to its step, at any depth.
	ids map[string]*node
	// byPos maps each step position the first pass saw to its step.
	byPos map[string]*node
	// count is the number of steps the first pass saw.
	count int
	// vars holds the names that set steps set.
	vars map[string]bool
	// envs caches the CEL environments of loop scopes.
	envs map[string]envResult
	// root is the scope outside all loops.
	root *scope
	// retry is the workflow's default retry policy; nil when not given.
	retry *events.RetryPolicy
	// children holds the definitions workflow steps start.
	children map[string]bool
	// steps maps each id to its compiled step.
	steps map[string]*Step
	// searchNames holds the search attribute names set anywhere.
	searchNames map[string]bool
}

func newParser() *parser {
	return &parser{
		ids:      map[string]*node{},
		byPos:    map[string]*node{},
		vars:     map[string]bool{},
		envs:     map[string]envResult{},
		root:     &scope{},
		children: map[string]bool{},
		steps:    map[string]*Step{},

		searchNames: map[string]bool{},
	}
}

func (p *parser) add(step, field, format string, args ...any) {
	p.problems = append(p.problems, Problem{Step: step, Field: field, Message: fmt.Sprintf(format, args...)})
}

// addNew records a problem that refuses the definition only when it is
// put (see Definition.CheckNew).
func (p *parser) addNew(step, field, format string, args ...any) {
	p.newOnly = append(p.newOnly, Problem{Step: step, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) definition(src []byte) *Definition {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add("", "", "the definition is empty")
		} else {
			p.add("", "", "invalid YAML or JSON: %s", syntaxError(src, err))
		}
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p.add("", "", "unexpected content after the definition: put one definition per document")
		return nil
	}
	if len(doc.Content) == 0 {
		p.add("", "", "the definition is empty")
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.add("", "", "a definition must be a mapping with name and steps")
		return nil
	}
	d := &Definition{}
	fields := p.fields("", "", root, "concurrency", "input_schema", "name", "output", "retention", "retry", "search", "steps", "timeout", "triggers")
	if n := fields["name"]; n == nil {
		p.add("", "name", "is required")
	} else if s, ok := p.str("", "name", n); ok {
		if !nameRE.MatchString(s) {
			p.add("", "name", "invalid name %q: use letters, digits, _ and - (at most 64)", s)
		}
		d.Name = s
	}
	if n := fields["input_schema"]; n != nil {
		d.InputSchema, d.inputSchema = p.inputSchema(n)
	}
	if n := fields["timeout"]; n != nil {
		if t, ok := p.duration("", "timeout", n); ok {
			if t <= 0 {
				p.add("", "timeout", "must be positive (leave it out for no limit)")
			}
			d.Timeout = t
		}
	}
	if n := fields["retention"]; n != nil {
		if t, ok := p.duration("", "retention", n); ok {
			if t <= 0 {
				p.add("", "retention", "must be positive (leave it out to keep runs as the server does)")
			}
			d.Retention = t
		}
	}
	if n := fields["concurrency"]; n != nil {
		d.Concurrency = p.runConcurrency(n)
	}
	if n := fields["retry"]; n != nil {
		r := defaultRetryPolicy()
		p.parseRetry(&r, "", n)
		d.Retry, p.retry = &r, &r
	}
	if n := fields["steps"]; n == nil {
		p.add("", "steps", "is required: list at least one step")
	} else if n.Kind != yaml.SequenceNode {
		p.add("", "steps", "must be a list of steps")
	} else if len(n.Content) == 0 {
		p.add("", "steps", "must list at least one step")
	} else {
		p.collect("steps", n.Content, nil, nil, 0)
		if p.count > maxSteps {
			return d
		}
		d.Steps = p.stepList("steps", n.Content, p.root)
	}
	if n := fields["output"]; n != nil {
		d.Output = p.template("", "output", n, exprAt{sc: p.root})
	}
	if n := fields["search"]; n != nil {
		d.Search = p.search("", n, exprAt{sc: p.root, start: true})
	}
	if len(p.searchNames) > MaxSearchAttributes {
		p.add("", "search", "too many search attributes: the definition sets %d names, on itself and its steps; at most %d", len(p.searchNames), MaxSearchAttributes)
	}
	if n := fields["triggers"]; n != nil {
		d.Triggers = p.triggers(n)
	}
	for name := range p.children {
		d.Children = append(d.Children, name)
	}
	sort.Strings(d.Children)
	d.byID = p.steps
	return d
}

// collect is the first pass over the step list at position list, the body
// of the loop step loop if not nil: it gives every step its position, takes
// the first use of each valid id, learns the names set steps set, and
// descends into nested step lists, so that expressions can tell a missing
// step from one elsewhere.
func (p *parser) collect(list string, nodes []*yaml.Node, parent []slot, loop *node, depth int) {
	for i, n := range nodes {
		if p.count++; p.count > maxSteps {
			if p.count == maxSteps+1 {
				p.add("", "steps", "too many steps: a definition holds at most %d, nested ones included", maxSteps)
			}
			return
		}
		pos := list + "[" + strconv.Itoa(i) + "]"
		info := &node{pos: pos, path: append(slices.Clip(parent), slot{list, i, loop})}
		p.byPos[pos] = info
		n = resolve(n)
		if n.Kind != yaml.MappingNode {
			continue
		}
		keys, vals := entries(n)
		if v := vals["id"]; v != nil && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && idRE.MatchString(v.Value) {
			if p.ids[v.Value] == nil {
				p.ids[v.Value] = info
				info.id = v.Value
			}
		}
		if v := vals["set"]; v != nil && v.Kind == yaml.MappingNode {
			names, _ := entries(v)
			for _, name := range names {
				p.vars[name] = true
			}
		}
		kids := nested(keys, vals)
		if len(kids) > 0 && depth >= maxDepth {
			p.add(info.label(), "", "steps nest too deeply: at most %d levels", maxDepth)
			continue
		}
		for _, k := range kids {
			var body *node
			if k.loop {
				body = info
			}
			p.collect(pos+"."+k.field, k.nodes, info.path, body, depth+1)
		}
	}
}

// stepLists is a list of steps nested in a step, at field.
type stepLists struct {
	field string
	nodes []*yaml.Node
	// loop is set for a foreach's or repeat's body.
	loop bool
}

// nested returns the step lists nested in the step with fields keys and
// vals, in the order the fields appear. Their fields match those the step
// parsers give them.
func nested(keys []string, vals map[string]*yaml.Node) []stepLists {
	var out []stepLists
	add := func(field string, n *yaml.Node, loop bool) {
		if n != nil && n.Kind == yaml.SequenceNode {
			out = append(out, stepLists{field, n.Content, loop})
		}
	}
	for _, k := range keys {
		v := vals[k]
		switch {
		case k == "catch" && v.Kind == yaml.SequenceNode:
			for i, c := range v.Content {
				if c = resolve(c); c.Kind == yaml.MappingNode {
					_, cv := entries(c)
					add("catch["+strconv.Itoa(i)+"].do", cv["do"], false)
				}
			}
		case k == "switch" && v.Kind == yaml.SequenceNode:
			for i, c := range v.Content {
				if c = resolve(c); c.Kind == yaml.MappingNode {
					_, cv := entries(c)
					add("switch["+strconv.Itoa(i)+"].then", cv["then"], false)
				}
			}
		case k == "default" && vals["switch"] != nil:
			add("default", v, false)
		case k == "do" && vals["foreach"] != nil:
			add("do", v, true)
		case k == "timeout_steps" && vals["wait"] != nil:
			add("timeout_steps", v, false)
		case k == "repeat" && v.Kind == yaml.MappingNode:
			_, rv := entries(v)
			add("repeat.do", rv["do"], true)
		case k == "parallel" && v.Kind == yaml.MappingNode:
			_, pv := entries(v)
			if b := pv["branches"]; b != nil && b.Kind == yaml.MappingNode {
				names, bv := entries(b)
				for _, name := range names {
					add(joinField("parallel.branches", name), bv[name], false)
				}
			}
		}
	}
	return out
}

// entries returns the string keys of mapping n in order, first uses only,
// and their values, aliases resolved.
func entries(n *yaml.Node) ([]string, map[string]*yaml.Node) {
	var keys []string
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode || vals[k.Value] != nil {
			continue
		}
		keys = append(keys, k.Value)
		vals[k.Value] = resolve(n.Content[i+1])
	}
	return keys, vals
}

// stepList parses the step list at position list, whose steps see the loop
// variables of sc.
func (p *parser) stepList(list string, nodes []*yaml.Node, sc *scope) []*Step {
	var steps []*Step
	for i, n := range nodes {
		info := p.byPos[list+"["+strconv.Itoa(i)+"]"]
		if info == nil {
			break // past a limit the first pass reported
		}
		steps = append(steps, p.step(info, resolve(n), sc))
	}
	return steps
}

// list parses the steps nested at field of the step at; their expressions
// see the loop variables of sc.
func (p *parser) list(at *stepAt, field string, n *yaml.Node, sc *scope, nonEmpty bool) []*Step {
	switch {
	case n.Kind != yaml.SequenceNode:
		p.add(at.label, field, "must be a list of steps")
		return nil
	case nonEmpty && len(n.Content) == 0:
		p.add(at.label, field, "must list at least one step")
		return nil
	}
	return p.stepList(at.node.pos+"."+field, n.Content, sc)
}

func (p *parser) step(info *node, n *yaml.Node, sc *scope) *Step {
	label := info.label()
	s := &Step{ID: info.id}
	if info.id != "" {
		p.steps[info.id] = s
	}
	if n.Kind != yaml.MappingNode {
		p.add(label, "", "a step must be a mapping with an id and one kind (%s)", kindList())
		return s
	}
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && stepKinds[k.Value] != nil && !slices.Contains(kinds, k.Value) {
			kinds = append(kinds, k.Value)
		}
	}
	sort.Strings(kinds)
	var spec *kindSpec
	if len(kinds) == 1 {
		spec = stepKinds[kinds[0]]
	}
	fields := p.fieldsFunc(label, "", n, func(k string) string {
		switch {
		case slices.Contains(stepFields, k):
			return ""
		case spec != nil && slices.Contains(spec.inside, k):
			return fmt.Sprintf("not a step field: put it inside %s: { %s: ... }", kinds[0], k)
		}
		if s := suggestOnly(k, stepFields); s != "" {
			return "unknown field" + s
		}
		if spec != nil {
			return fmt.Sprintf("unknown field; %s steps take %s", kinds[0], strings.Join(fieldsOf(kinds[0]), ", "))
		}
		return fmt.Sprintf("unknown field; a step takes %s and one kind: %s", strings.Join(commonFields, ", "), kindList())
	})

	if idNode := fields["id"]; idNode == nil {
		p.add(label, "id", "is required")
	} else if v, ok := p.str(label, "id", idNode); ok && info.id == "" {
		if idRE.MatchString(v) {
			p.add(label, "id", "duplicate id %q: step ids must be unique, nested steps included", v)
		} else {
			p.add(label, "id", "invalid id %q: use letters, digits, _ and -, starting with a letter or _ (at most 64)", v)
		}
	}

	if len(kinds) == 0 {
		p.add(label, "", "a step needs a kind: one of %s", kindList())
		return s
	}
	if len(kinds) > 1 {
		p.add(label, "", "a step has exactly one kind, found %s: remove all but one", strings.Join(kinds, " and "))
		return s
	}
	s.Kind = spec.kind
	own := map[string]*yaml.Node{}
	for _, k := range sortedKeys(fields) {
		switch {
		case k == kinds[0] || slices.Contains(commonFields, k):
		case slices.Contains(spec.fields, k):
			own[k] = fields[k]
		case slices.Contains(spec.inside, k):
			p.add(label, k, "only valid on %s; on a %s step put it inside %s: { %s: ... }", kindsOwning(k), kinds[0], kinds[0], k)
		default:
			p.add(label, k, "only valid on %s", kindsOwning(k))
		}
	}
	at := &stepAt{label: label, node: info, sc: sc}
	if n := fields["if"]; n != nil {
		s.If = p.condition(label, "if", n, at.expr())
	}
	p.kind(s, at, fields[kinds[0]], own)
	if n := fields["search"]; n != nil {
		switch s.Kind {
		case KindFail:
			p.add(label, "search", "a fail step never completes, so its search would never be evaluated: set it on the definition or on another step")
		case KindSucceed:
			p.add(label, "search", "a succeed step ends the run without completing, so its search would never be evaluated: set it on the step before or on the definition")
		default:
			s.Search = p.search(label, n, exprAt{self: info, sc: sc, after: true})
		}
	}
	if n := fields["catch"]; n != nil {
		s.Catch = p.catch(at, n)
	}
	return s
}

// kind parses what is particular to the step's kind: the value of its kind
// field and the further fields it owns.
func (p *parser) kind(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	switch s.Kind {
	case KindTask:
		p.task(s, at, kind, fields)
	case KindWait:
		p.wait(s, at, kind, fields)
	case KindSwitch:
		p.switchStep(s, at, kind, fields)
	case KindForeach:
		p.foreach(s, at, kind, fields)
	case KindParallel:
		p.parallel(s, at, kind, fields)
	case KindSleep:
		p.sleep(s, at, kind)
	case KindSet:
		p.set(s, at, kind)
	case KindRepeat:
		p.repeat(s, at, kind)
	case KindWorkflow:
		p.workflow(s, at, kind, fields)
	case KindFail:
		p.fail(s, at, kind)
	case KindSucceed:
		p.succeed(s, at, kind)
	}
}

// fieldsOf lists the fields a step of the given kind takes, sorted.
func fieldsOf(kind string) []string {
	fields := append(slices.Clone(commonFields), kind)
	if kind == "fail" || kind == "succeed" {
		// They never complete, so a search would never be evaluated.
		fields = slices.DeleteFunc(fields, func(f string) bool { return f == "search" })
	}
	fields = append(fields, stepKinds[kind].fields...)
	sort.Strings(fields)
	return fields
}

// kindsOwning names the step kinds that own a field, e.g. "task steps".
func kindsOwning(field string) string {
	var ks []string
	for _, k := range kindNames {
		if slices.Contains(stepKinds[k].fields, field) {
			ks = append(ks, k)
		}
	}
	return strings.Join(ks, " and ") + " steps"
}

// defaultRetryPolicy is the retry policy of a task that sets none.
func defaultRetryPolicy() events.RetryPolicy {
	return events.RetryPolicy{
		MaxAttempts:        DefaultMaxAttempts,
		InitialInterval:    DefaultInitialInterval,
		BackoffCoefficient: DefaultBackoffCoefficient,
		MaxInterval:        DefaultMaxInterval,
	}
}

func (p *parser) task(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	if t, ok := p.str(label, "task", kind); ok {
		switch {
		case len(t) > events.MaxTaskType:
			p.add(label, "task", "task type is %d bytes; the limit is %d", len(t), events.MaxTaskType)
		case symbolRE.MatchString(t):
			s.Task = t
		default:
			p.add(label, "task", "invalid task type %q: use letters, digits, _ and -, in parts separated by single dots", t)
		}
	}
	if n := fields["input"]; n != nil {
		s.Input = p.template(label, "input", n, at.expr())
	}
	s.Timeout = DefaultTimeout
	if n := fields["timeout"]; n != nil {
		if d, ok := p.duration(label, "timeout", n); ok {
			if d <= 0 {
				p.add(label, "timeout", "must be positive")
			}
			s.Timeout = d
		}
	}
	if n := fields["concurrency"]; n != nil {
		s.Concurrency = p.stepLimit(label, "concurrency", n, at, false)
	}
	if n := fields["rate_limit"]; n != nil {
		s.RateLimit = p.stepLimit(label, "rate_limit", n, at, true)
	}
	switch n := fields["retry"]; {
	case n != nil:
		s.Retry = defaultRetryPolicy()
		p.parseRetry(&s.Retry, label, n)
	case p.retry != nil:
		s.Retry = *p.retry
		s.Retry.NonRetryable = slices.Clone(p.retry.NonRetryable)
	default:
		s.Retry = defaultRetryPolicy()
	}
}

// stepLimit reads a task step's concurrency (rate false) or rate_limit
// (rate true) mapping.
func (p *parser) stepLimit(label, field string, n *yaml.Node, at *stepAt, rate bool) *StepLimit {
	example := "{ key: \"${ input.region }\", limit: 5 }"
	names := []string{"key", "limit"}
	if rate {
		example = "{ key: \"${ input.region }\", limit: 10, per: 1s }"
		names = append(names, "per")
	}
	if n.Kind != yaml.MappingNode {
		p.add(label, field, "must be a mapping, e.g. %s", example)
		return nil
	}
	fields := p.fields(label, field+".", n, names...)
	l := &StepLimit{}
	if n := fields["limit"]; n == nil {
		p.add(label, field+".limit", "is required")
	} else if p.yaml11(label, field+".limit", n); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&l.Limit) != nil {
		p.add(label, field+".limit", "must be a whole number")
	} else if l.Limit < 1 {
		p.add(label, field+".limit", "must be at least 1")
	}
	if rate {
		if n := fields["per"]; n == nil {
			p.add(label, field+".per", "is required: the period the limit counts attempts in, e.g. 1s")
		} else if d, ok := p.duration(label, field+".per", n); ok {
			if d < time.Millisecond {
				p.add(label, field+".per", "must be at least 1ms")
			}
			l.Per = d
		}
	}
	if n := fields["key"]; n != nil {
		l.Key = p.expr(label, field+".key", n, at.expr(), wantAny)
	}
	return l
}

// runConcurrency reads a definition's concurrency mapping.
func (p *parser) runConcurrency(n *yaml.Node) *RunConcurrency {
	if n.Kind != yaml.MappingNode {
		p.add("", "concurrency", "must be a mapping, e.g. { key: \"${ input.customer }\", limit: 1 }")
		return nil
	}
	fields := p.fields("", "concurrency.", n, "key", "limit")
	c := &RunConcurrency{}
	if n := fields["limit"]; n == nil {
		p.add("", "concurrency.limit", "is required: how many runs of a key run at once")
	} else if p.yaml11("", "concurrency.limit", n); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&c.Limit) != nil {
		p.add("", "concurrency.limit", "must be a whole number")
	} else if c.Limit < 1 {
		p.add("", "concurrency.limit", "must be at least 1")
	}
	if n := fields["key"]; n != nil {
		c.Key = p.expr("", "concurrency.key", n, exprAt{sc: p.root, start: true}, wantAny)
	}
	return c
}

// parseRetry reads a retry mapping into r, which holds the defaults.
func (p *parser) parseRetry(r *events.RetryPolicy, label string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.add(label, "retry", "must be a mapping, e.g. { max_attempts: 5 }")
		return
	}
	fields := p.fields(label, "retry.", n, "max_attempts", "initial_interval", "backoff_coefficient", "max_interval", "non_retryable", "exhausted")
	intervalsOK := true
	if n := fields["max_attempts"]; n != nil {
		var v int
		if p.yaml11(label, "retry.max_attempts", n); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
			p.add(label, "retry.max_attempts", "must be a whole number")
		} else if v < 1 {
			p.add(label, "retry.max_attempts", "must be at least 1")
		} else {
			r.MaxAttempts = v
		}
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"initial_interval", &r.InitialInterval}, {"max_interval", &r.MaxInterval}} {
		if n := fields[f.name]; n != nil {
			d, ok := p.duration(label, "retry."+f.name, n)
			if ok && d <= 0 {
				p.add(label, "retry."+f.name, "must be positive")
				ok = false
			}
			if ok {
				*f.d = d
			}
			intervalsOK = intervalsOK && ok
		}
	}
	if intervalsOK && r.MaxInterval < r.InitialInterval {
		p.add(label, "retry.max_interval", "must be at least retry.initial_interval (%s, max_interval is %s)", r.InitialInterval, r.MaxInterval)
	}
	if n := fields["backoff_coefficient"]; n != nil {
		var v float64
		if p.yaml11(label, "retry.backoff_coefficient", n); n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			p.add(label, "retry.backoff_coefficient", "must be a number")
		} else if v < 1 {
			p.add(label, "retry.backoff_coefficient", "must be at least 1")
		} else {
			r.BackoffCoefficient = v
		}
	}
	if n := fields["exhausted"]; n != nil {
		if v, ok := p.str(label, "retry.exhausted", n); ok {
			switch v {
			case "fail":
				r.Suspend = false
			case "suspend":
				r.Suspend = true
			default:
				p.add(label, "retry.exhausted", "must be fail (the default: the step fails) or suspend (the step waits for a resume), got %q", v)
			}
		}
	}
	if n := fields["non_retryable"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.add(label, "retry.non_retryable", "must be a list of error types")
			return
		}
		for i, e := range n.Content {
			field := "retry.non_retryable[" + strconv.Itoa(i) + "]"
			if t, ok := p.str(label, field, resolve(e)); ok {
				if t == "" {
					p.add(label, field, "must not be empty")
				}
				r.NonRetryable = append(r.NonRetryable, t)
			}
		}
	}
}

func (p *parser) wait(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	w := &Wait{}
	s.Wait = w
	timeoutOK := true // no timeout problem yet
	if kind.Kind != yaml.MappingNode {
		p.add(label, "wait", "must be a mapping, e.g. { signal: approve, timeout: 72h }")
		timeoutOK = false
	} else {
		wf := p.fields(label, "wait.", kind, "signal", "timeout")
		if n := wf["signal"]; n == nil {
			p.add(label, "wait.signal", "is required")
		} else if sig, ok := p.str(label, "wait.signal", n); ok {
			switch {
			case len(sig) > MaxSignalName:
				p.add(label, "wait.signal", "signal name is %d bytes; the limit is %d (what SignalWorkflow takes)", len(sig), MaxSignalName)
			case symbolRE.MatchString(sig):
				w.Signal = sig
			default:
				p.add(label, "wait.signal", "invalid signal name %q: use letters, digits, _ and -, in parts separated by single dots", sig)
			}
		}
		if n := wf["timeout"]; n != nil {
			d, ok := p.duration(label, "wait.timeout", n)
			if ok && d < 0 {
				p.add(label, "wait.timeout", "must not be negative (leave it out to wait forever)")
				ok = false
			}
			w.Timeout = d
			timeoutOK = ok
		}
	}
	if n := fields["timeout_steps"]; n != nil {
		if timeoutOK && w.Timeout == 0 {
			p.add(label, "timeout_steps", "only valid on a wait with a timeout: add wait.timeout")
		}
		w.TimeoutSteps = p.list(at, "timeout_steps", n, at.sc, true)
	}
}

// fields returns the mapping n's values by key, reporting unknown and
// duplicate keys. prefix is prepended to keys in problems ("retry.").
func (p *parser) fields(label, prefix string, n *yaml.Node, known ...string) map[string]*yaml.Node {
	return p.fieldsFunc(label, prefix, n, func(k string) string {
		if slices.Contains(known, k) {
			return ""
		}
		return "unknown field" + suggest(k, known)
	})
}

// fieldsFunc is fields with a function that returns the problem with a key,
// or "" for a known one.
func (p *parser) fieldsFunc(label, prefix string, n *yaml.Node, check func(key string) string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(label, strings.TrimSuffix(prefix, "."), "keys must be strings")
			continue
		}
		if msg := check(k.Value); msg != "" {
			p.add(label, prefix+k.Value, "%s", msg)
			continue
		}
		if out[k.Value] != nil {
			p.add(label, prefix+k.Value, "appears more than once")
			continue
		}
		out[k.Value] = v
	}
	return out
}

// mapping returns the keys of mapping n in order and their values,
// reporting keys that are not strings or appear more than once; field
// names n in problems.
func (p *parser) mapping(label, field string, n *yaml.Node) ([]string, map[string]*yaml.Node) {
	var keys []string
	vals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		switch {
		case k.Kind != yaml.ScalarNode:
			p.add(label, field, "keys must be strings")
		case vals[k.Value] != nil:
			p.add(label, joinField(field, k.Value), "appears more than once")
		default:
			keys = append(keys, k.Value)
			vals[k.Value] = v
		}
	}
	return keys, vals
}

// integer returns n's value if it is a whole number, reporting a problem
// otherwise.
func (p *parser) integer(label, field string, n *yaml.Node) (int, bool) {
	var v int
	if p.yaml11(label, field, n); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		p.add(label, field, "must be a whole number")
		return 0, false
	}
	return v, true
}

// str returns n's value if it is a string, reporting a problem otherwise.
func (p *parser) str(label, field string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			p.add(label, field, "must be a string (quote %s)", n.Value)
		} else {
			p.add(label, field, "must be a string")
		}
		return "", false
	}
	return n.Value, true
}

// duration parses a duration field, which must be a string.
func (p *parser) duration(label, field string, n *yaml.Node) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		p.add(label, field, "must be a duration string like \"30s\", not a number")
		return 0, false
	}
	s, ok := p.str(label, field, n)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(label, field, "%v", err)
		return 0, false
	}
	return d, true
}

// suggest returns ` (did you mean "x"?)` for a known name close to s, or a
// list of the known names.
func suggest(s string, known []string) string {
	if hint := suggestOnly(s, known); hint != "" {
		return hint
	}
	known = slices.Clone(known)
	sort.Strings(known)
	return "; known fields: " + strings.Join(known, ", ")
}

// suggestOnly returns ` (did you mean "x"?)` for a known name close to s,
// or "".
func suggestOnly(s string, known []string) string {
	if best := closest(s, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// closest returns the known name closest to s if it is close enough to be
// a typo, or "".
func closest(s string, known []string) string { return Closest(s, known) }

// Closest returns the name of known closest to s if it is close enough to
// be a typo of it (two edits at most, a swap of neighbours counting as
// one: "taks" is "task", not "as"), or "".
func Closest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestDist && d < max(len(s), len(k)) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein's, with a swap of two neighbouring bytes one edit.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// sortedSet returns the members of set, sorted.
func sortedSet(set map[string]bool) []string {
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys(m map[string]*yaml.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// yamlError renders a YAML error on one line.
func yamlError(err error) string {
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
}

// blockRE matches the YAML parser's complaints about a block mapping or
// list, which name the line where the block began (counted from 0), not
// the line that broke it.
var blockRE = regexp.MustCompile(`^yaml: line \d+: (did not find expected key|did not find expected '-' indicator)$`)

// syntaxError renders err, the failure to decode src, for a problem. For
// a broken block it names the line that broke it: the first line that,
// with those before it, fails to decode the same way. Lines cut short
// before it decode, or fail otherwise (in a quoted or flow value), since
// a block may end anywhere; with it they fail alike, so the search may
// halve.
func syntaxError(src []byte, err error) string {
	m := blockRE.FindStringSubmatch(err.Error())
	if m == nil {
		return yamlError(err)
	}
	var ends []int // of each line, past its newline
	for i, b := range src {
		if b == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(src) {
		ends = append(ends, len(src))
	}
	same := func(n int) bool {
		var doc yaml.Node
		e := yaml.NewDecoder(bytes.NewReader(src[:ends[n-1]])).Decode(&doc)
		return e != nil && e.Error() == err.Error()
	}
	line := 1 + sort.Search(len(ends), func(i int) bool { return same(i + 1) })
	if line > len(ends) {
		return yamlError(err)
	}
	return fmt.Sprintf("line %d: %s (check this line's indentation)", line, m[1])
}
