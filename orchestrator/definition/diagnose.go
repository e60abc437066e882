package definition

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
	celparser "cel.dev/cel-go/parser"
)

// program is a compiled expression: its CEL program, and the environment
// it was compiled in, to explain a failed evaluation. The expression is
// compiled again for that: its checked form, kept, would about double the
// memory a definition holds.
type program struct {
	cel.Program
	env *cel.Env
}

// programOptions returns the options of expressions' programs.
func programOptions() ([]cel.ProgramOption, error) {
	guard, err := guardCalls()
	if err != nil {
		return nil, err
	}
	return []cel.ProgramOption{cel.CostLimit(DefaultCostLimit), cel.InterruptCheckFrequency(100), guard}, nil
}

// exprError is an evaluation error with what the expression read that
// made it fail.
type exprError struct {
	src    string // the expression
	detail string
	err    error
}

func (e *exprError) Error() string { return fmt.Sprintf("expression %q: %s", e.src, e.detail) }

func (e *exprError) Unwrap() error { return e.err }

// costExceeded is CEL's message for an evaluation past its cost limit.
const costExceeded = "operation cancelled: actual cost limit exceeded"

// explain returns the error of the evaluation of p, the expression src,
// in a: as a *limitError when it passed a limit, as an *exprError when
// it read a member of a null or applied an operator or function to
// operands of types it does not take, else as it is.
func (p *program) explain(err error, a *activation, src string) error {
	err = asLimit(err, src)
	if _, ok := err.(*limitError); ok {
		return err
	}
	var ce interpreter.EvalCancelledError
	if errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded && ce.Message == costExceeded {
		// CEL's own words name neither the expression nor the limit.
		return &exprError{src: src, err: err, detail: fmt.Sprintf(
			"it passed the cost limit of %d units one evaluation may use: do less in it (fewer or shorter lists under nested map, filter, exists or all, say)", DefaultCostLimit)}
	}
	msg := err.Error()
	key, noKey := strings.CutPrefix(msg, "no such key: ")
	if !noKey && !strings.HasPrefix(msg, "no such overload") {
		return err
	}
	checked, iss := p.env.Compile(src)
	if iss.Err() != nil {
		return err
	}
	st := trackedState(p.env, checked, a)
	if st == nil {
		return err
	}
	var detail string
	if noKey {
		detail = nullRead(checked, st, key, a)
	} else {
		detail = overload(checked, st)
	}
	if detail == "" {
		return err
	}
	return &exprError{src: src, detail: detail, err: err}
}

// trackedState evaluates the expression checked in env again in a's
// scope, recording every value it reaches, or returns nil.
func trackedState(env *cel.Env, checked *cel.Ast, a *activation) interpreter.EvalState {
	opts, err := programOptions()
	if err != nil {
		return nil
	}
	prg, err := env.Program(checked, append(opts, cel.EvalOptions(cel.OptTrackState))...)
	if err != nil {
		return nil
	}
	_, det, _ := prg.Eval(&activation{scope: a.scope, trigger: a.trigger})
	if det == nil {
		return nil
	}
	return det.State()
}

// nullRead says which null value the expression checked read key of in
// a, or returns "" when it cannot tell: the members named key that failed
// for want of it in the evaluation st recorded are not all of one null
// (one of a map that lacks the key, say, or one not evaluated at all).
func nullRead(checked *cel.Ast, st interpreter.EvalState, key string, a *activation) string {
	root := checked.NativeRep().Expr()
	bound := comprehensionVars(root)
	var what string
	unsure := false
	ast.PreOrderVisit(root, ast.NewExprVisitor(func(e ast.Expr) {
		op, name, ok := member(e)
		if !ok || name != key {
			return
		}
		if v, ok := st.Value(e.ID()); !ok || !types.IsError(v) || v.(*types.Err).Error() != "no such key: "+key {
			return // not evaluated, or not this failure
		}
		path, ok := constPath(op)
		if !ok || bound[path[0]] {
			unsure = true
			return
		}
		if v, ok := a.valueAt(path); !ok || v != nil {
			unsure = true // a map without the key
			return
		}
		w := path[0]
		for _, k := range path[1:] {
			w = joinField(w, k)
		}
		if what != "" && what != w {
			unsure = true
		}
		what = w
	}))
	if what == "" || unsure {
		return ""
	}
	out := fmt.Sprintf("%s is null, so it has no key %q", what, key)
	if what == "input" && !a.trigger {
		out += ": the run was started without input (give it with weft start --input, or the start request's input)"
	}
	return out
}

// comprehensionVars returns the variables the comprehensions in e bind,
// which the activation does not resolve.
func comprehensionVars(e ast.Expr) map[string]bool {
	out := map[string]bool{}
	ast.PreOrderVisit(e, ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.ComprehensionKind {
			return
		}
		c := e.AsComprehension()
		out[c.IterVar()], out[c.AccuVar()] = true, true
		if c.HasIterVar2() {
			out[c.IterVar2()] = true
		}
	}))
	return out
}

// constPath returns the variable and constant keys of e, an expression
// like input.a["b"], or false for one of another form.
func constPath(e ast.Expr) ([]string, bool) {
	var keys []string
	for e.Kind() != ast.IdentKind {
		op, name, ok := member(e)
		if !ok {
			return nil, false
		}
		keys = append(keys, name)
		e = op
	}
	path := []string{e.AsIdent()}
	for i := len(keys) - 1; i >= 0; i-- {
		path = append(path, keys[i])
	}
	return path, true
}

// valueAt returns the value at path: a variable, then keys of maps. ok is
// false when a step of it cannot be taken.
func (a *activation) valueAt(path []string) (any, bool) {
	v, ok := a.resolve(path[0])
	if !ok {
		return nil, false
	}
	for _, k := range path[1:] {
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// operand is an argument of a call: the expression, as written, and the
// name of its type.
type operand struct {
	e   ast.Expr
	src string
	typ string
}

// overload names the call of the expression checked that found no
// overload in the evaluation st recorded, with the types of its operands,
// or returns "" when it cannot tell.
func overload(checked *cel.Ast, st interpreter.EvalState) string {
	info := checked.NativeRep().SourceInfo()
	var out string
	ast.PostOrderVisit(checked.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if out != "" || e.Kind() != ast.CallKind {
			return
		}
		if v, _ := st.Value(e.ID()); !isNoOverload(v) {
			return
		}
		call := e.AsCall()
		exprs := call.Args()
		if call.FunctionName() == operators.Conditional {
			exprs = exprs[:1]
		}
		if call.IsMemberFunction() {
			exprs = append([]ast.Expr{call.Target()}, exprs...)
		}
		ops := make([]operand, len(exprs))
		for i, x := range exprs {
			v, ok := st.Value(x.ID())
			if !ok || types.IsUnknownOrError(v) {
				return
			}
			ops[i] = operand{e: x, src: unparse(x, info), typ: typeName(v.Type())}
		}
		out = noOverload(call, ops)
	}))
	return out
}

// isNoOverload reports whether v is the error of a call that found no
// overload.
func isNoOverload(v ref.Val) bool {
	e, ok := v.(*types.Err)
	return ok && strings.HasPrefix(e.Error(), "no such overload")
}

// typeName names t as messages do.
func typeName(t ref.Type) string {
	return shortType(t.TypeName())
}

// shortType shortens the names CEL gives some types.
func shortType(name string) string {
	switch name {
	case "null_type":
		return "null"
	case "google.protobuf.Timestamp":
		return "timestamp"
	case "google.protobuf.Duration":
		return "duration"
	}
	return name
}

// unparse returns the source of e, or "?".
func unparse(e ast.Expr, info *ast.SourceInfo) string {
	s, err := celparser.Unparse(e, info)
	if err != nil {
		return "?"
	}
	return s
}

// noOverload says that call found no overload for ops (its target first,
// for a method) and how to convert them.
func noOverload(call ast.CallExpr, ops []operand) string {
	fn := call.FunctionName()
	if fn == operators.Conditional {
		return fmt.Sprintf("the condition %s is %s %s, not a bool", ops[0].src, article(ops[0].typ), ops[0].typ)
	}
	typs := make([]string, len(ops))
	for i, o := range ops {
		typs[i] = o.typ
	}
	var sig string
	op, isOp := operators.FindReverse(fn)
	switch {
	case isOp && op != "" && len(ops) == 2:
		sig = typs[0] + " " + op + " " + typs[1]
	case isOp && op != "" && len(ops) == 1:
		sig = op + typs[0]
	case fn == operators.Index && len(ops) == 2:
		sig = typs[0] + "[" + typs[1] + "]"
	case call.IsMemberFunction():
		sig = typs[0] + "." + fn + "(" + strings.Join(typs[1:], ", ") + ")"
	default:
		sig = fn + "(" + strings.Join(typs, ", ") + ")"
	}
	msg := "no such overload: " + sig
	if hint := conversion(fn, ops); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// article returns the indefinite article of word.
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// numbers are the types of numbers.
var numbers = map[string]bool{"int": true, "uint": true, "double": true}

// conversion suggests how to convert the operands ops of a binary
// operator fn that found no overload, or returns "".
func conversion(fn string, ops []operand) string {
	op, isOp := operators.FindReverse(fn)
	if !isOp || len(ops) != 2 {
		return ""
	}
	l, r := ops[0], ops[1]
	for _, o := range ops {
		if o.typ == "null" && o.e.Kind() != ast.LiteralKind {
			return o.src + " is null"
		}
	}
	// with writes the call with side i converted by conv.
	with := func(i int, conv string) string {
		sides := [2]string{operandSrc(l), operandSrc(r)}
		sides[i] = conv + "(" + ops[i].src + ")"
		return sides[0] + " " + op + " " + sides[1]
	}
	num, str := -1, -1
	for i, o := range ops {
		if numbers[o.typ] {
			num = i
		} else if o.typ == "string" {
			str = i
		}
	}
	switch fn {
	case operators.Add:
		switch {
		case num >= 0 && str >= 0:
			return fmt.Sprintf("convert one side: %s joins text, %s adds numbers", with(num, "string"), with(str, ops[num].typ))
		case numbers[l.typ] && numbers[r.typ]:
			return numberConversion(l, r, with)
		}
	case operators.Subtract, operators.Multiply, operators.Divide, operators.Modulo:
		switch {
		case num >= 0 && str >= 0:
			return "convert the string: " + with(str, ops[num].typ)
		case numbers[l.typ] && numbers[r.typ]:
			return numberConversion(l, r, with)
		}
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		if num >= 0 && str >= 0 {
			return fmt.Sprintf("convert one side: %s compares numbers, %s compares text", with(str, ops[num].typ), with(num, "string"))
		}
	}
	return ""
}

// numberConversion suggests how to do arithmetic on numbers of two
// types: in double when one is, else in int.
func numberConversion(l, r operand, with func(int, string) string) string {
	switch {
	case l.typ == r.typ:
		return ""
	case r.typ == "double":
		return "convert one side: " + with(0, "double")
	case l.typ == "double":
		return "convert one side: " + with(1, "double")
	case r.typ == "uint":
		return "convert one side: " + with(1, "int")
	}
	return "convert one side: " + with(0, "int")
}

// operandSrc returns o's source, in parentheses when it is an operator's
// call another operator could split.
func operandSrc(o operand) string {
	if o.e.Kind() == ast.CallKind {
		if op, ok := operators.FindReverse(o.e.AsCall().FunctionName()); ok && op != "" {
			return "(" + o.src + ")"
		}
	}
	return o.src
}

// checkRE matches the checker's complaint about a call no overload takes.
var checkRE = regexp.MustCompile(`^found no matching overload for '([^']+)' applied to '(.*)'$`)

// checkHint suggests how to convert the operands of a call the checker
// found no overload for in the expression src compiled in env, or
// returns "".
func checkHint(env *cel.Env, src string, e *common.Error) string {
	m := checkRE.FindStringSubmatch(e.Message)
	if m == nil || e.ExprID == 0 {
		return ""
	}
	parsed, iss := env.Parse(src)
	if iss.Err() != nil {
		return ""
	}
	var call ast.CallExpr
	ast.PreOrderVisit(parsed.NativeRep().Expr(), ast.NewExprVisitor(func(x ast.Expr) {
		if x.ID() == e.ExprID && x.Kind() == ast.CallKind {
			call = x.AsCall()
		}
	}))
	if call == nil || call.FunctionName() != m[1] || call.IsMemberFunction() {
		return ""
	}
	typs := splitTypes(strings.TrimSuffix(strings.TrimPrefix(m[2], "("), ")"))
	args := call.Args()
	if len(typs) != len(args) {
		return ""
	}
	info := parsed.NativeRep().SourceInfo()
	ops := make([]operand, len(args))
	for i, x := range args {
		ops[i] = operand{e: x, src: unparse(x, info), typ: shortType(typs[i])}
	}
	return conversion(m[1], ops)
}

// splitTypes splits a list of type names at its top-level commas.
func splitTypes(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}
