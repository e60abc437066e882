package definition

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"
)

// identRE matches the names of variables: set names and foreach's as.
var identRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)

// celReserved are CEL's keywords and reserved words, which cannot name a
// variable.
var celReserved = []string{
	"as", "break", "const", "continue", "else", "false", "for", "function", "if",
	"import", "in", "let", "loop", "namespace", "null", "package", "return",
	"true", "var", "void", "while",
}

// takenNames are the variables expressions already have, which a foreach's
// as cannot shadow.
var takenNames = []string{"input", "steps", "vars", "workflow", "index", "iteration", "error"}

// varNameProblem says what is wrong with a variable name, or returns "".
func varNameProblem(name string) string {
	switch {
	case !identRE.MatchString(name):
		return fmt.Sprintf("invalid name %q: use letters, digits and _, starting with a letter or _ (at most 64)", name)
	case slices.Contains(celReserved, name):
		return fmt.Sprintf("%q is a reserved word in expressions: pick another name", name)
	}
	return ""
}

// scope is the set of loop variables that expressions in some place see.
type scope struct {
	// vars are the loop variables, outermost first, names unique: an inner
	// loop's variable replaces an outer one of the same name.
	vars []loopVar
	// trigger is set for the expressions of a trigger of this kind, which
	// compile in a trigger environment instead of the workflow's.
	trigger TriggerKind
}

// loopVar is one variable a loop declares.
type loopVar struct {
	name string
	typ  *cel.Type
}

// with returns the scope of a loop body inside sc that declares vars.
func (sc *scope) with(vars ...loopVar) *scope {
	out := &scope{trigger: sc.trigger}
	for _, v := range sc.vars {
		if !slices.ContainsFunc(vars, func(w loopVar) bool { return w.name == v.name }) {
			out.vars = append(out.vars, v)
		}
	}
	out.vars = append(out.vars, vars...)
	return out
}

// envResult is a cached outcome of extending the base environment.
type envResult struct {
	env *cel.Env
	err error
}

// env returns the CEL environment of the scope: the base environment (the
// workflow's, or a trigger's) extended with the loop variables. Extensions
// are cached in the parser, so they live only as long as one Parse.
func (sc *scope) env(p *parser) (*cel.Env, error) {
	var base *cel.Env
	var err error
	switch sc.trigger {
	case "":
		base, err = celEnv()
	case TriggerCron:
		base, err = cronEnv()
	default:
		base, err = eventEnv()
	}
	if err != nil || len(sc.vars) == 0 {
		return base, err
	}
	keys := make([]string, len(sc.vars))
	opts := make([]cel.EnvOption, len(sc.vars))
	for i, v := range sc.vars {
		keys[i] = v.name + ":" + v.typ.String()
		opts[i] = cel.Variable(v.name, v.typ)
	}
	slices.Sort(keys)
	key := string(sc.trigger) + "|" + strings.Join(keys, ",")
	if r, ok := p.envs[key]; ok {
		return r.env, r.err
	}
	env, err := base.Extend(opts...)
	p.envs[key] = envResult{env, err}
	return env, err
}

// want is the type an expression field needs.
type want int

const (
	wantAny    want = iota
	wantBool        // if, filter, until, switch case if
	wantList        // foreach
	wantTime        // sleep.until
	wantString      // a trigger's id
	wantSearch      // a search attribute: string, number, bool or timestamp
)

// example is an expression of the wanted type.
func (w want) example() string {
	switch w {
	case wantBool:
		return "input.count > 0"
	case wantList:
		return "input.items"
	case wantTime:
		return "workflow.now + duration('1h')"
	case wantString:
		return "'order-' + string(event.id)"
	case wantSearch:
		return "input.customer"
	}
	return "input.count + 1"
}

// check says what is wrong with an expression that yields t, or returns "".
// Expressions of unknown type (dyn) are checked when evaluated.
func (w want) check(t *cel.Type) string {
	if t == nil {
		return ""
	}
	k := t.Kind()
	if k == types.DynKind || k == types.AnyKind {
		return ""
	}
	switch w {
	case wantBool:
		if k != types.BoolKind {
			return "must yield a bool, not " + t.String()
		}
	case wantList:
		if k != types.ListKind {
			return "must yield a list, not " + t.String()
		}
	case wantTime:
		if k != types.TimestampKind && k != types.StringKind {
			return "must yield a timestamp (or an RFC 3339 string), not " + t.String()
		}
	case wantString:
		if k != types.StringKind {
			return "must yield a string, not " + t.String()
		}
	case wantSearch:
		switch k {
		case types.StringKind, types.IntKind, types.UintKind, types.DoubleKind, types.BoolKind, types.TimestampKind:
		case types.NullTypeKind:
			return "must yield a string, number, bool or timestamp, not null"
		default:
			return "must yield a string, number, bool or timestamp, not " + t.String()
		}
	}
	return ""
}

// condition compiles an if field: an expression like expr's, or true or
// false.
func (p *parser) condition(label, field string, n *yaml.Node, at exprAt) *Expr {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				p.add(label, field, "invalid value: %s", yamlError(err))
				return nil
			}
			return p.compileExpr(label, field, n.Value, strconv.FormatBool(b), at, wantBool)
		case "!!str", "!!null":
		default:
			p.add(label, field, "must be an expression, true or false, not %s", n.Value)
			return nil
		}
	}
	return p.expr(label, field, n, at, wantBool)
}

// expr compiles an expression field: a bare CEL expression or one ${ }. It
// returns nil after reporting problems.
func (p *parser) expr(label, field string, n *yaml.Node, at exprAt, w want) *Expr {
	var src, code string
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		src = n.Value
		code = strings.TrimSpace(src)
		if code == "" {
			p.add(label, field, "must not be empty: write an expression")
			return nil
		}
		if strings.HasPrefix(code, "${") {
			segs, err := splitTemplate(code)
			if err != nil {
				p.add(label, field, "%v", err)
				return nil
			}
			if len(segs) != 1 || !segs[0].isExpr {
				p.add(label, field, "must be one expression, bare or in a single ${ }, with no text around it")
				return nil
			}
			code = segs[0].text
		}
	case w == wantTime && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp":
		p.add(label, field, "must be an expression: for a fixed time write \"timestamp('%s')\"", n.Value)
		return nil
	case n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null":
		p.add(label, field, "must be an expression string (to use the constant, quote it: \"%s\")", n.Value)
		return nil
	default:
		p.add(label, field, "must be an expression string, e.g. %q", w.example())
		return nil
	}
	return p.compileExpr(label, field, src, code, at, w)
}

// compileExpr compiles the CEL code of an expression field written as src.
func (p *parser) compileExpr(label, field, src, code string, at exprAt, w want) *Expr {
	c := &compiler{p: p, label: label, at: at}
	prg, typ := c.expr(field, code)
	if prg == nil {
		return nil
	}
	if msg := w.check(typ); msg != "" {
		p.add(label, field, "expression %q: %s", code, msg)
		return nil
	}
	return &Expr{Source: src, tmpl: &Template{root: &exprNode{field: field, src: code, prg: prg}, trigger: at.sc.trigger != ""}}
}
