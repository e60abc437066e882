package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore/value"
)

// template compiles the YAML value n into a Template whose expressions are
// compiled at at.
func (p *parser) template(label, field string, n *yaml.Node, at exprAt) *Template {
	return p.templateOf(label, field, n, at, wantAny)
}

// templateOf is template for a field whose value must be of the type w
// wants: a literal must be, and so must a string that is one expression
// when its type is known. wantAny and wantString are supported.
func (p *parser) templateOf(label, field string, n *yaml.Node, at exprAt, w want) *Template {
	untagTimestamps(n, 0)
	p.checkNumbers(label, field, n, 0)
	var v any
	if err := n.Decode(&v); err != nil {
		p.add(label, field, "invalid value: %s", yamlError(err))
		return nil
	}
	if _, ok := v.(string); w == wantString && !ok {
		p.add(label, field, "must be a string, e.g. \"${ %s }\"", w.example())
		return nil
	}
	c := &compiler{p: p, label: label, at: at, want: w}
	root := c.value(field, v)
	if root == nil {
		return nil
	}
	return &Template{root: root, trigger: at.sc.trigger != ""}
}

// untagTimestamps makes plain scalars that YAML would read as timestamps
// decode as strings, so "2024-01-02" stays the text it is.
func untagTimestamps(n *yaml.Node, depth int) {
	if depth > 1000 {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Style&yaml.TaggedStyle == 0 && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		untagTimestamps(c, depth+1)
	}
}

// checkNumbers refuses, when the definition is put, a constant in n (at
// field) that YAML reads as other than what is written: a tag it does not
// know (read as if untagged); a number YAML 1.1 and 1.2 read apart
// (yaml11); a whole number beyond ±2^53 that it reads as a float64
// (12345678901234567890123, beyond a uint64; 9007199254740993.0), which
// every reader would see rounded; and a number beyond a float64's range
// (1e400), which YAML reads as the text "1e400". Quoted scalars and those
// with a known tag are what they say; an alias is checked where its
// anchor is.
func (p *parser) checkNumbers(label, field string, n *yaml.Node, depth int) {
	if depth > 1000 {
		return
	}
	if n.Style&yaml.TaggedStyle != 0 && !knownTags[n.ShortTag()] {
		// YAML reads it as if untagged: what the tag meant would be lost.
		p.addNew(label, field, "tag %s is not one Weft reads, and would be ignored: remove it (Weft reads %s)", n.Tag, strings.Join(knownTagList, ", "))
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			return
		}
		if p.yaml11(label, field, n) {
			return
		}
		text := strings.TrimPrefix(n.Value, "+")
		switch n.ShortTag() {
		case "!!float":
			f, err := strconv.ParseFloat(text, 64)
			if err == nil && math.Abs(f) >= 1<<53 && !math.IsInf(f, 0) {
				if err := value.CheckNumber(json.Number(text)); err != nil {
					p.addNew(label, field, "%v", err)
				}
			}
		case "!!str":
			if f, err := strconv.ParseFloat(text, 64); errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0) && numberLike(text) {
				p.addNew(label, field, "number %s is beyond the range of the API's numbers (float64): quote it to have it as a string", n.Value)
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p.checkNumbers(label, joinField(field, n.Content[i].Value), n.Content[i+1], depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p.checkNumbers(label, field+"["+strconv.Itoa(i)+"]", c, depth+1)
		}
	}
}

// knownTagList lists the YAML tags a constant may have, each read as YAML
// says; knownTags holds them.
var (
	knownTagList = []string{"!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq", "!!binary", "!!timestamp"}
	knownTags    = func() map[string]bool {
		m := map[string]bool{}
		for _, t := range knownTagList {
			m[t] = true
		}
		return m
	}()
)

// yaml11 refuses, when the definition is put, the number scalar n at field
// that YAML 1.1 and 1.2 read apart (see yaml11Reason); it reports whether
// it did.
func (p *parser) yaml11(label, field string, n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return false
	}
	if msg := yaml11Reason(n); msg != "" {
		p.addNew(label, field, "%s", msg)
		return true
	}
	return false
}

// yaml11Reason says why the plain number scalar n is refused, or "": this
// parser reads numbers as YAML 1.1 wrote them, where YAML 1.2 (and other
// readers of the same source) reads another number or text, so which was
// meant cannot be told: 010 (octal, 8; 10 in 1.2) and 1_000 (1000; text in
// 1.2).
func yaml11Reason(n *yaml.Node) string {
	tag := n.ShortTag()
	if tag != "!!int" && tag != "!!float" {
		return ""
	}
	if strings.Contains(n.Value, "_") {
		return fmt.Sprintf("%s reads as a number here and as text in YAML 1.2: write the number without _, or quote it for text", n.Value)
	}
	var v int64
	if tag == "!!int" && octal11.MatchString(n.Value) && n.Decode(&v) == nil {
		if dec, err := strconv.ParseInt(n.Value, 10, 64); err == nil && dec != v {
			oct := fmt.Sprintf("0o%o", v)
			if v < 0 {
				oct = fmt.Sprintf("-0o%o", -v)
			}
			return fmt.Sprintf("%s reads as the octal number %d here and as %d in YAML 1.2: write %d (or %s for octal), or quote it for text", n.Value, v, dec, dec, oct)
		}
	}
	return ""
}

// octal11 matches an integer with a leading 0, which YAML 1.1 read as
// octal.
var octal11 = regexp.MustCompile(`^[-+]?0[0-9]+$`)

// numberLike reports whether s is written as a decimal number: digits,
// with a sign, a fraction or an exponent.
func numberLike(s string) bool { return numberRE.MatchString(s) }

var numberRE = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// compiler compiles the values of one template or expression field.
type compiler struct {
	p     *parser
	label string
	at    exprAt
	// want is what a string that is exactly one expression must yield.
	want want
	bad  bool
}

// exprAt says where an expression is compiled: the step it belongs to,
// which decides the step outputs it may read, and the loop variables it sees.
type exprAt struct {
	// self is the step; nil for the workflow's output, which may read any step.
	self *node
	// sc holds the loop variables in scope.
	sc *scope
	// inner lets the expression read the outputs of steps inside self, as
	// a repeat's until does after each iteration.
	inner bool
	// after marks an expression evaluated once self completed, as a
	// step's search is: it reads what the steps after self read, self
	// included.
	after bool
	// start marks an expression evaluated when the run starts, before
	// any step, as the definition's search is: it reads no step.
	start bool
}

// value compiles v; it returns nil after reporting a problem.
func (c *compiler) value(field string, v any) tnode {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			// Only a !!binary scalar decodes to one: every run would
			// fail on it.
			c.p.addNew(c.label, field, "the constant is not valid UTF-8 text (a !!binary value?): write text, or binary data as a base64 string")
		}
		return c.str(field, x)
	case []any:
		out := make(listNode, len(x))
		for i, e := range x {
			out[i] = c.value(field+"["+strconv.Itoa(i)+"]", e)
		}
		return c.ok(out)
	case map[string]any:
		o := &mapNode{}
		for _, k := range value.SortedKeys(x) {
			if !utf8.ValidString(k) {
				c.p.addNew(c.label, field, "a map key is not valid UTF-8 text (a !!binary value?): write keys as text, binary data as base64 strings")
			}
			o.keys = append(o.keys, k)
			o.vals = append(o.vals, c.value(joinField(field, k), x[k]))
		}
		return c.ok(o)
	case map[any]any:
		m := make(map[string]any, len(x))
		var bad []string
		for k, e := range x {
			if ks, ok := k.(string); ok {
				m[ks] = e
			} else {
				bad = append(bad, fmt.Sprint(k))
			}
		}
		if bad != nil {
			sort.Strings(bad)
			c.problem(field, "map keys must be strings; quote %s", strings.Join(bad, ", "))
			return nil
		}
		return c.value(field, m)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			c.problem(field, "%v is not a JSON number", x)
			return nil
		}
	case uint64:
		if _, err := value.Normalize(x); err != nil {
			// Beyond an int64. Stored by an earlier version, it reads as
			// the float it did.
			c.p.addNew(c.label, field, "%v", err)
			return litNode{float64(x)}
		}
	}
	n, err := value.Normalize(v)
	if err != nil {
		c.problem(field, "invalid value: %v", err)
		return nil
	}
	// A constant that breaks the rule for values (a whole number beyond
	// ±2^53: every run fails on it, or records it as the API cannot show
	// it) is refused when put.
	var inv *value.InvalidError
	if errors.As(value.Check("", n, value.Limits{}), &inv) {
		c.p.addNew(c.label, field, "%s", inv.Reason)
	}
	return litNode{n}
}

// ok returns n unless a problem was reported while compiling it.
func (c *compiler) ok(n tnode) tnode {
	if c.bad {
		return nil
	}
	return n
}

func (c *compiler) problem(field, format string, args ...any) {
	c.bad = true
	c.p.add(c.label, field, format, args...)
}

// str compiles a string that may hold ${ } expressions.
func (c *compiler) str(field, s string) tnode {
	if !strings.Contains(s, "${") {
		return litNode{s}
	}
	segs, err := splitTemplate(s)
	if err != nil {
		c.problem(field, "%v", err)
		return nil
	}
	var parts []part
	var typ *cel.Type // of the last expression
	exprs, blank := 0, true
	for _, sg := range segs {
		if !sg.isExpr {
			parts = append(parts, part{text: sg.text})
			blank = blank && strings.TrimSpace(sg.text) == ""
			continue
		}
		exprs++
		var prg *program
		prg, typ = c.expr(field, sg.text)
		parts = append(parts, part{text: sg.text, prg: prg})
	}
	switch {
	case c.bad:
		return nil
	case exprs == 0:
		return litNode{parts[0].text} // only $${ escapes: one text part
	case exprs == 1 && blank:
		for _, pt := range parts {
			if pt.prg == nil {
				continue
			}
			if msg := c.want.check(typ); msg != "" {
				c.problem(field, "expression %q: %s", pt.text, msg)
				return nil
			}
			return &exprNode{field: field, src: pt.text, prg: pt.prg}
		}
	}
	return &interpNode{field: field, parts: parts}
}

// expr compiles and checks one expression; it returns the program and the
// type it yields, or nil after reporting problems.
func (c *compiler) expr(field, src string) (*program, *cel.Type) {
	env, err := c.at.sc.env(c.p)
	if err != nil {
		c.problem(field, "expressions are unavailable: %v", err)
		return nil, nil
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		for _, e := range iss.Errors() {
			msg := explain(e.Message, c.at.sc.trigger)
			if hint := checkHint(env, src, e); hint != "" {
				msg += " (" + hint + ")"
			}
			c.problem(field, "expression %q: %s", src, msg)
		}
		return nil, nil
	}
	if c.at.sc.trigger == "" {
		for _, msg := range c.refs(checked) {
			c.problem(field, "expression %q: %s", src, msg)
		}
	}
	if c.bad {
		return nil, nil
	}
	opts, err := programOptions()
	if err != nil {
		c.problem(field, "expressions are unavailable: %v", err)
		return nil, nil
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		c.problem(field, "expression %q: %v", src, err)
		return nil, nil
	}
	return &program{Program: prg, env: env}, checked.OutputType()
}

// loopVarHints explain where the loop variables are defined.
var loopVarHints = map[string]string{
	DefaultForeachAs: "it is only defined in a foreach's filter and do (or under the name given by as)",
	"index":          "it is only defined in a foreach's filter and do",
	"iteration":      "it is only defined in a repeat's do and until",
}

// workflowNames are the variables of workflow expressions, which trigger
// expressions do not have.
var workflowNames = []string{"input", "steps", "vars", "workflow", DefaultForeachAs, "index", "iteration", "error"}

// explain adds what is available to CEL's complaint about an undeclared
// variable: where a loop variable is defined, or what the expressions of a
// trigger of kind trigger see.
func explain(msg string, trigger TriggerKind) string {
	name, ok := undeclared(msg)
	if !ok {
		return msg
	}
	if trigger != "" {
		sees := "event, headers and subject"
		if trigger == TriggerCron {
			sees = "event (null), headers, subject and tick"
		}
		switch {
		case name == "tick":
			return "undeclared reference to 'tick': only cron triggers have tick; " + string(trigger) + " triggers see " + sees
		case slices.Contains(workflowNames, name):
			return "undeclared reference to '" + name + "': a trigger runs before its workflow exists, so its expressions see only " + sees
		}
		return msg + "; trigger expressions see " + sees
	}
	if hint, ok := loopVarHints[name]; ok {
		return "undeclared reference to '" + name + "': " + hint
	}
	switch name {
	case "event", "headers", "subject", "tick":
		return "undeclared reference to '" + name + "': only a trigger's expressions see it; what its input: computes reaches the run as input"
	}
	return msg
}

// undeclared returns the name in CEL's "undeclared reference to 'name'".
func undeclared(msg string) (string, bool) {
	const prefix = "undeclared reference to '"
	rest, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "'")
	return name, ok
}

// refs checks the expression's constant references to steps.<id>,
// vars.<name> and workflow.<name> and returns what is wrong with them.
func (c *compiler) refs(checked *cel.Ast) []string {
	var msgs []string
	seen := map[string]bool{}
	report := func(format string, args ...any) {
		m := fmt.Sprintf(format, args...)
		if !seen[m] {
			seen[m] = true
			msgs = append(msgs, m)
		}
	}
	ast.PostOrderVisit(checked.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		op, name, ok := member(e)
		if !ok {
			return
		}
		if op.Kind() != ast.IdentKind {
			// steps.<id>.<name>
			if inner, id, ok := member(op); ok && isIdent(inner, "steps") && name != "output" {
				report("steps.%s.%s: a step has only .output", id, name)
			}
			return
		}
		switch op.AsIdent() {
		case "steps":
			target := c.p.ids[name]
			if target == nil {
				report("steps.%s: there is no step %q", name, name)
			} else if msg := c.at.reads(target); msg != "" {
				report("steps.%s: %s", name, msg)
			}
		case "vars":
			if !c.p.vars[name] {
				if best := closest(name, sortedSet(c.p.vars)); best != "" {
					report("vars.%s is never set (did you mean vars.%s?)", name, best)
				} else {
					report("vars.%s is never set: no set step sets it", name)
				}
			}
		case "workflow":
			if name != "id" && name != "now" {
				report("workflow.%s: unknown field; use workflow.id or workflow.now", name)
			}
		}
	}))
	return msgs
}

// reads says why an expression at at cannot read the output of step
// target, or returns "" when it can. A step cannot read its own output
// (but its search, evaluated once it completed, can),
// a step that contains it, a step inside it (except from a repeat's until),
// a step that comes later in a list the two share, or a step in a loop body
// it is not in: the steps of a body are visible only within their iteration.
func (at exprAt) reads(target *node) string {
	if at.start {
		return "the definition's search is evaluated when the run starts, before any step has run"
	}
	self := at.self
	if self == nil {
		return hidden(nil, target, nil)
	}
	if target == self {
		if at.after {
			return ""
		}
		return "a step cannot read its own output"
	}
	a, b := self.path, target.path
	k := 0
	for k < len(a) && k < len(b) && a[k] == b[k] {
		k++
	}
	switch {
	case k == len(b):
		return fmt.Sprintf("step %q contains this step, so its output is not ready yet", target.id)
	case k == len(a):
		if at.inner {
			return hidden(a, target, self)
		}
		if at.after {
			return hidden(a, target, nil)
		}
		return fmt.Sprintf("step %q is inside this step and has not run when this is evaluated", target.id)
	case a[k].list == b[k].list && b[k].index > a[k].index:
		return fmt.Sprintf("step %q comes later; only earlier steps' outputs can be read", target.id)
	}
	return hidden(a, target, nil)
}

// hidden says why an expression of the step at path a (nil for the
// workflow's output) cannot see target because target is in a loop body
// that a is not in, or returns "". Steps nested in branches, cases, catch
// blocks and timeout steps run at their holder's level and stay visible;
// the body of a loop is not visible outside the loop. own, if not nil, is a
// loop whose body the expression sees, as a repeat's until sees its body.
func hidden(a []slot, target, own *node) string {
	for j, s := range target.path {
		if s.loop == nil || s.loop == own || j < len(a) && a[j].list == s.list {
			continue
		}
		if s.loop.id == "" {
			return fmt.Sprintf("step %q is in the body of the loop at %s and cannot be read outside it", target.id, s.loop.pos)
		}
		return fmt.Sprintf("step %q is in the body of loop %q and cannot be read outside it; read the loop's output (steps.%s.output) instead", target.id, s.loop.id, s.loop.id)
	}
	return ""
}

func isIdent(e ast.Expr, name string) bool {
	return e.Kind() == ast.IdentKind && e.AsIdent() == name
}

// member matches x.name, x[name] and their optional forms where name is a
// constant, returning x and name.
func member(e ast.Expr) (ast.Expr, string, bool) {
	switch e.Kind() {
	case ast.SelectKind:
		return e.AsSelect().Operand(), e.AsSelect().FieldName(), true
	case ast.CallKind:
		call := e.AsCall()
		switch call.FunctionName() {
		case "_[_]", "_[?_]", "_?._":
		default:
			return nil, "", false
		}
		args := call.Args()
		if len(args) != 2 || args[1].Kind() != ast.LiteralKind {
			return nil, "", false
		}
		if s, ok := args[1].AsLiteral().(types.String); ok {
			return args[0], string(s), true
		}
	}
	return nil, "", false
}

// joinField appends a map key to a field path.
func joinField(field, key string) string {
	if key != "" && !strings.ContainsFunc(key, func(r rune) bool { return r > 127 || !isIdentByte(byte(r)) }) {
		return field + "." + key
	}
	return field + "[" + strconv.Quote(key) + "]"
}
