package definition

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

func (p *parser) switchStep(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	sw := &Switch{}
	s.Switch = sw
	switch {
	case kind.Kind != yaml.SequenceNode:
		p.add(label, "switch", "must be a list of cases, e.g. [{ if: \"input.n > 1\", then: [...] }]")
	case len(kind.Content) == 0:
		p.add(label, "switch", "must list at least one case")
	}
	if kind.Kind == yaml.SequenceNode {
		for i, c := range kind.Content {
			field := "switch[" + strconv.Itoa(i) + "]"
			c = resolve(c)
			if c.Kind != yaml.MappingNode {
				p.add(label, field, "a case must be a mapping with if and then")
				continue
			}
			cf := p.fields(label, field+".", c, "if", "then")
			cs := &Case{}
			if n := cf["if"]; n == nil {
				p.add(label, field+".if", "is required: give the condition (use default: for the case when none holds)")
			} else {
				cs.If = p.condition(label, field+".if", n, at.expr())
			}
			if n := cf["then"]; n == nil {
				p.add(label, field+".then", "is required: list the steps to run when if holds")
			} else {
				cs.Then = p.list(at, field+".then", n, at.sc, false)
			}
			sw.Cases = append(sw.Cases, cs)
		}
	}
	if n := fields["default"]; n != nil {
		sw.Default = p.list(at, "default", n, at.sc, false)
	}
}

func (p *parser) foreach(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	f := &Foreach{As: DefaultForeachAs, Concurrency: DefaultForeachConcurrency}
	s.Foreach = f
	f.Items = p.expr(label, "foreach", kind, at.expr(), wantList)
	if n := fields["as"]; n != nil {
		if v, ok := p.str(label, "as", n); ok {
			switch msg := varNameProblem(v); {
			case msg != "":
				p.add(label, "as", "%s", msg)
			case slices.Contains(takenNames, v):
				p.add(label, "as", "%q is taken: expressions already have input, steps, vars, workflow, index and iteration; pick another name", v)
			default:
				f.As = v
			}
		}
	}
	if n := fields["concurrency"]; n != nil {
		if v, ok := p.integer(label, "concurrency", n); ok {
			if v < 1 {
				p.add(label, "concurrency", "must be at least 1")
			} else {
				f.Concurrency = min(v, MaxForeachConcurrency)
			}
		}
	}
	if n := fields["on_error"]; n != nil {
		f.ContinueOnError = p.onError(label, n)
	}
	body := at.sc.with(loopVar{f.As, cel.DynType}, loopVar{"index", cel.IntType})
	if n := fields["filter"]; n != nil {
		f.Filter = p.expr(label, "filter", n, exprAt{self: at.node, sc: body}, wantBool)
	}
	if n := fields["do"]; n == nil {
		p.add(label, "do", "is required: list the steps to run for each item")
	} else {
		f.Do = p.list(at, "do", n, body, true)
	}
}

// onError reads on_error: fail or continue; it returns whether to continue.
func (p *parser) onError(label string, n *yaml.Node) bool {
	v, ok := p.str(label, "on_error", n)
	if !ok {
		return false
	}
	switch v {
	case "fail":
		return false
	case "continue":
		return true
	}
	p.add(label, "on_error", "must be fail or continue, not %q", v)
	return false
}

func (p *parser) parallel(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	pl := &Parallel{}
	s.Parallel = pl
	if n := fields["on_error"]; n != nil {
		pl.ContinueOnError = p.onError(label, n)
	}
	if kind.Kind != yaml.MappingNode {
		p.add(label, "parallel", "must be a mapping with branches, e.g. { branches: { a: [...], b: [...] } }")
		return
	}
	pf := p.fields(label, "parallel.", kind, "branches")
	bn := pf["branches"]
	switch {
	case bn == nil:
		p.add(label, "parallel.branches", "is required: name each branch and list its steps")
		return
	case bn.Kind != yaml.MappingNode:
		p.add(label, "parallel.branches", "must be a mapping of branch names to lists of steps")
		return
	}
	names, vals := p.mapping(label, "parallel.branches", bn)
	if len(names) == 0 {
		p.add(label, "parallel.branches", "must name at least one branch")
		return
	}
	sort.Strings(names)
	for _, name := range names {
		field := joinField("parallel.branches", name)
		if !idRE.MatchString(name) {
			p.add(label, field, "invalid branch name %q: use letters, digits, _ and -, starting with a letter or _ (at most 64)", name)
		}
		pl.Branches = append(pl.Branches, &Branch{Name: name, Steps: p.list(at, field, vals[name], at.sc, true)})
	}
}

func (p *parser) sleep(s *Step, at *stepAt, kind *yaml.Node) {
	label := at.label
	sl := &Sleep{}
	s.Sleep = sl
	switch {
	case kind.Kind == yaml.MappingNode:
		sf := p.fields(label, "sleep.", kind, "until")
		if n := sf["until"]; n == nil {
			p.add(label, "sleep.until", "is required: give the time to sleep until")
		} else {
			sl.Until = p.expr(label, "sleep.until", n, at.expr(), wantTime)
		}
	case kind.Kind == yaml.ScalarNode && kind.ShortTag() != "!!null":
		if d, ok := p.duration(label, "sleep", kind); ok {
			if d <= 0 {
				p.add(label, "sleep", "must be positive")
			}
			sl.Duration = d
		}
	default:
		p.add(label, "sleep", "must be a duration like 24h, or { until: <timestamp expression> }")
	}
}

func (p *parser) set(s *Step, at *stepAt, kind *yaml.Node) {
	label := at.label
	if kind.Kind != yaml.MappingNode {
		p.add(label, "set", "must be a mapping of variable names to expressions, e.g. { count: \"vars.count + 1\" }")
		return
	}
	names, vals := p.mapping(label, "set", kind)
	if len(names) == 0 {
		p.add(label, "set", "must set at least one variable")
		return
	}
	sort.Strings(names)
	for _, name := range names {
		field := joinField("set", name)
		if msg := varNameProblem(name); msg != "" {
			p.add(label, field, "%s", msg)
		}
		s.Set = append(s.Set, &SetVar{Name: name, Value: p.expr(label, field, vals[name], at.expr(), wantAny)})
	}
}

func (p *parser) repeat(s *Step, at *stepAt, kind *yaml.Node) {
	label := at.label
	r := &Repeat{}
	s.Repeat = r
	if kind.Kind != yaml.MappingNode {
		p.add(label, "repeat", "must be a mapping, e.g. { do: [...], until: \"vars.done\", max_iterations: 10 }")
		return
	}
	rf := p.fields(label, "repeat.", kind, "do", "until", "max_iterations")
	body := at.sc.with(loopVar{"iteration", cel.IntType})
	if n := rf["do"]; n == nil {
		p.add(label, "repeat.do", "is required: list the steps to repeat")
	} else {
		r.Do = p.list(at, "repeat.do", n, body, true)
	}
	if n := rf["until"]; n == nil {
		p.add(label, "repeat.until", "is required: give the condition that ends the loop")
	} else {
		r.Until = p.expr(label, "repeat.until", n, exprAt{self: at.node, sc: body, inner: true}, wantBool)
	}
	if n := rf["max_iterations"]; n == nil {
		p.add(label, "repeat.max_iterations", "is required: bound the loop (at most %d)", maxIterations)
	} else if v, ok := p.integer(label, "repeat.max_iterations", n); ok {
		if v < 1 || v > maxIterations {
			p.add(label, "repeat.max_iterations", "must be between 1 and %d", maxIterations)
		} else {
			r.MaxIterations = v
		}
	}
}

func (p *parser) workflow(s *Step, at *stepAt, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	c := &Child{}
	s.Workflow = c
	if name, ok := p.str(label, "workflow", kind); ok {
		if nameRE.MatchString(name) {
			c.Definition = name
			p.children[name] = true
		} else {
			p.add(label, "workflow", "invalid definition name %q: use letters, digits, _ and - (at most 64)", name)
		}
	}
	if n := fields["input"]; n != nil {
		c.Input = p.template(label, "input", n, at.expr())
	}
}

func (p *parser) fail(s *Step, at *stepAt, kind *yaml.Node) {
	label := at.label
	f := &Fail{Type: "fail"}
	s.Fail = f
	if kind.Kind != yaml.MappingNode {
		p.add(label, "fail", "must be a mapping, e.g. { message: \"no stock for ${ input.sku }\", type: out_of_stock }")
		return
	}
	ff := p.fields(label, "fail.", kind, "message", "type")
	if n := ff["message"]; n == nil {
		p.add(label, "fail.message", "is required: say why the workflow fails")
	} else {
		f.Message = p.template(label, "fail.message", n, at.expr())
	}
	if n := ff["type"]; n != nil {
		if t, ok := p.str(label, "fail.type", n); ok {
			if symbolRE.MatchString(t) {
				f.Type = t
			} else {
				p.add(label, "fail.type", "invalid error type %q: use letters, digits, _ and -, in parts separated by single dots", t)
			}
		}
	}
}

func (p *parser) succeed(s *Step, at *stepAt, kind *yaml.Node) {
	label := at.label
	sc := &Succeed{}
	s.Succeed = sc
	switch {
	case kind.Kind == yaml.ScalarNode && kind.ShortTag() == "!!null":
	case kind.Kind != yaml.MappingNode:
		p.add(label, "succeed", "must be a mapping, e.g. { output: \"${ steps.total.output }\" } or {}")
	default:
		sf := p.fields(label, "succeed.", kind, "output")
		if n := sf["output"]; n != nil {
			sc.Output = p.template(label, "succeed.output", n, at.expr())
		}
	}
}

// catch parses a step's catch clauses.
func (p *parser) catch(at *stepAt, n *yaml.Node) []*Catch {
	label := at.label
	switch {
	case n.Kind != yaml.SequenceNode:
		p.add(label, "catch", "must be a list of clauses, e.g. [{ errors: [timeout], do: [...] }]")
		return nil
	case len(n.Content) == 0:
		p.add(label, "catch", "must list at least one clause (or leave catch out)")
		return nil
	}
	var clauses []*Catch
	catchAll := -1 // the first clause that handles every error
	for i, c := range n.Content {
		field := "catch[" + strconv.Itoa(i) + "]"
		c = resolve(c)
		if c.Kind != yaml.MappingNode {
			p.add(label, field, "a clause must be a mapping with do and optionally errors")
			continue
		}
		cf := p.fields(label, field+".", c, "errors", "do")
		cl := &Catch{}
		if en := cf["errors"]; en != nil {
			if en.Kind != yaml.SequenceNode {
				p.add(label, field+".errors", "must be a list of error types")
			} else {
				for j, e := range en.Content {
					ef := fmt.Sprintf("%s.errors[%d]", field, j)
					if t, ok := p.str(label, ef, resolve(e)); ok {
						if t == "" {
							p.add(label, ef, "must not be empty")
						}
						cl.Errors = append(cl.Errors, t)
					}
				}
			}
		}
		if catchAll >= 0 {
			p.add(label, field, "never runs: catch[%d] before it handles every error", catchAll)
		} else if en := cf["errors"]; en == nil || en.Kind == yaml.SequenceNode && len(en.Content) == 0 {
			catchAll = i
		}
		if dn := cf["do"]; dn == nil {
			p.add(label, field+".do", "is required: list the steps to run instead (or [] to carry on)")
		} else {
			// The catch steps see the error they handle as error.message and error.type.
			cl.Do = p.list(at, field+".do", dn, at.sc.with(loopVar{name: "error", typ: cel.MapType(cel.StringType, cel.StringType)}), false)
		}
		clauses = append(clauses, cl)
	}
	return clauses
}
