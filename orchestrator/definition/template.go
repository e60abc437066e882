package definition

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/weftworks/weft/eventstore/value"
)

// DefaultCostLimit bounds the work one expression evaluation may do; an
// evaluation that exceeds it fails with an *EvalError.
const DefaultCostLimit = 1_000_000

// Template is a compiled, immutable JSON value whose strings may hold
// ${ expr } CEL expressions. A string that is exactly one ${ expr } (give or
// take surrounding whitespace) takes the expression's value, of any type; a
// string with text around its expressions interpolates them, rendering
// strings as they are and other values as compact JSON. $${ writes a
// literal ${. Map keys are always literal.
type Template struct {
	root tnode
	// trigger is set for a trigger's templates, whose expressions see
	// s.Trigger instead of the workflow's variables.
	trigger bool
}

// Eval computes the template's value in scope s. The result is a normalized
// value (see eventstore/value). A nil *Template evaluates to nil. Evaluation
// failures are *EvalError; one that would pass MaxValueBytes or
// MaxEvalBytes also matches ErrLimit.
//
// The templates and expressions of a trigger see only s.Trigger, whose
// entries are:
//   - "event": the payload, a normalized value (e.g. from value.FromJSON);
//     absent is null.
//   - "headers": map[string]string, map[string]any with string (or list of
//     string) values, or map[string][]string, named or not (nats.Header,
//     http.Header), where a header's first value counts; absent is an
//     empty map. Keys are used as given.
//   - "subject": a string; absent is "".
//   - "tick" (cron triggers): a time.Time; an expression that reads it fails
//     when it is absent.
func (t *Template) Eval(s Scope) (any, error) {
	if t == nil {
		return nil, nil
	}
	return t.root.eval(&activation{scope: &s, trigger: t.trigger})
}

// tnode is one compiled node of a template.
type tnode interface {
	eval(a *activation) (any, error)
}

// litNode is a scalar without expressions.
type litNode struct{ v any }

func (n litNode) eval(*activation) (any, error) { return n.v, nil }

// listNode is a list template; a fresh list is built on every evaluation.
type listNode []tnode

func (n listNode) eval(a *activation) (any, error) {
	out := make([]any, len(n))
	for i, e := range n {
		v, err := e.eval(a)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// mapNode is a map template; a fresh map is built on every evaluation.
type mapNode struct {
	keys []string
	vals []tnode
}

func (n *mapNode) eval(a *activation) (any, error) {
	out := make(map[string]any, len(n.keys))
	for i, k := range n.keys {
		v, err := n.vals[i].eval(a)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// exprNode is a string that is exactly one expression.
type exprNode struct {
	field string
	src   string // the expression
	prg   *program
}

func (n *exprNode) eval(a *activation) (any, error) {
	v, err := run(n.prg, a, n.src)
	if err != nil {
		return nil, &EvalError{Field: n.field, Err: err}
	}
	return v, nil
}

// interpNode is a string with text around its expressions; parts hold either
// text or a program.
type interpNode struct {
	field string
	parts []part
}

type part struct {
	text string   // the text, or the expression
	prg  *program // nil for text
}

func (n *interpNode) eval(a *activation) (any, error) {
	var b strings.Builder
	for _, p := range n.parts {
		if p.prg == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := run(p.prg, a, p.text)
		if err != nil {
			return nil, &EvalError{Field: n.field, Err: err}
		}
		if s, ok := v.(string); ok {
			b.WriteString(s)
			continue
		}
		if err := writeJSON(&b, v); err != nil {
			return nil, &EvalError{Field: n.field, Err: err}
		}
	}
	return b.String(), nil
}

// writeJSON writes v as compact JSON without HTML escaping.
func writeJSON(b *strings.Builder, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return nil
}

// run evaluates the program of the expression src and converts its
// result, which counts towards the MaxValueBytes of a template's output.
func run(prg *program, a *activation, src string) (any, error) {
	b := a.scope.Budget
	if b.Exhausted() {
		return nil, fmt.Errorf("%w (%d units): not evaluated; do less per decision (a foreach filter over fewer items, say)", ErrDecisionCost, MaxDecisionCost)
	}
	out, det, err := prg.Eval(a)
	if b != nil && det != nil {
		if c := det.ActualCost(); c != nil {
			b.used += *c
		}
	}
	if err != nil {
		return nil, prg.explain(err, a, src)
	}
	room := MaxValueBytes - a.meter.out
	size := jsonSize(out, room)
	if size > room {
		if a.meter.out == 0 {
			return nil, &limitError{src: src, detail: "its value would pass the limit of 4 MiB as JSON"}
		}
		return nil, &limitError{src: src, detail: "the template's output would pass the limit of 4 MiB as JSON"}
	}
	a.meter.out += size
	v, err := fromCEL(out, &a.meter)
	if errors.Is(err, errBuilt) {
		return nil, &limitError{src: src, detail: "converting its value would take what the evaluation builds past the limit of 16 MiB"}
	}
	return v, err
}

// errBuilt is fromCEL's error when converting passes MaxEvalBytes.
var errBuilt = errors.New("built too much")

// activation resolves input, steps, workflow, vars and the loop variables
// from a Scope, building the CEL views of steps and workflow only when an
// expression reads them.
type activation struct {
	scope    *Scope
	steps    map[string]any
	workflow map[string]any
	// trigger resolves names from scope.Trigger instead.
	trigger bool
	// meter counts what the evaluation builds.
	meter meter
}

// noVars is what vars is when the scope has none; it is never written.
var noVars = map[string]any{}

// ResolveName returns the value of name, with its maps ordered (see
// orderedAdapter).
func (a *activation) ResolveName(name string) (any, bool) {
	v, ok := a.resolve(name)
	if !ok || name == meterName {
		return v, ok
	}
	switch v.(type) {
	case map[string]any, []any:
		return orderedAdapter{}.NativeToValue(v), true
	}
	return v, true
}

func (a *activation) resolve(name string) (any, bool) {
	if name == meterName {
		return &a.meter, true
	}
	if a.trigger {
		return triggerValue(a.scope.Trigger, name)
	}
	switch name {
	case "input":
		return a.scope.Input, true
	case "steps":
		if a.steps == nil {
			a.steps = make(map[string]any, len(a.scope.Steps))
			for id, out := range a.scope.Steps {
				a.steps[id] = map[string]any{"output": out}
			}
		}
		return a.steps, true
	case "workflow":
		if a.workflow == nil {
			a.workflow = map[string]any{"id": a.scope.WorkflowID, "now": a.scope.Now}
		}
		return a.workflow, true
	case "vars":
		if a.scope.Vars == nil {
			return noVars, true
		}
		return a.scope.Vars, true
	}
	if v, ok := a.scope.Locals[name]; ok {
		return localValue(v), true
	}
	return nil, false
}

// localValue widens Go integers to int64, the type CEL declares index and
// iteration with.
func localValue(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint:
		if uint64(x) <= math.MaxInt64 {
			return int64(x)
		}
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
	}
	return v
}

func (a *activation) Parent() interpreter.Activation { return nil }

// celPrimitive converts a CEL bool, int, uint, double or string into a
// normalized value; ok is false for a value of another type. A double
// that is not finite is an error.
func celPrimitive(v ref.Val) (out any, ok bool, err error) {
	switch x := v.(type) {
	case types.Bool:
		return bool(x), true, nil
	case types.Int:
		return int64(x), true, nil
	case types.Uint:
		out, err = value.Normalize(uint64(x))
		return out, true, err
	case types.Double:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, true, fmt.Errorf("%v is not a finite number", f)
		}
		out, err = value.Normalize(f)
		return out, true, err
	case types.String:
		return string(x), true, nil
	}
	return nil, false, nil
}

// fromCEL converts a CEL value into a normalized value, counting the
// lists and maps it builds on m.
func fromCEL(v ref.Val, m *meter) (any, error) {
	if out, ok, err := celPrimitive(v); ok {
		if err != nil {
			return nil, fmt.Errorf("result %w", err)
		}
		return out, nil
	}
	switch x := v.(type) {
	case types.Null:
		return nil, nil
	case types.Bytes:
		return base64.StdEncoding.EncodeToString(x), nil
	case types.Timestamp:
		return x.Time.UTC().Format(time.RFC3339Nano), nil
	case types.Duration:
		return x.Duration.String(), nil
	case *types.Optional:
		if !x.HasValue() {
			return nil, nil
		}
		return fromCEL(x.GetValue(), m)
	case *types.Err:
		return nil, x
	case traits.Mapper:
		if !m.add(elemBytes * elems(x)) {
			return nil, errBuilt
		}
		out := make(map[string]any)
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			ks, ok := k.(types.String)
			if !ok {
				return nil, fmt.Errorf("map key %v is not a string", k)
			}
			e, err := fromCEL(x.Get(k), m)
			if err != nil {
				return nil, err
			}
			out[string(ks)] = e
		}
		return out, nil
	case traits.Lister:
		n := elems(x)
		if !m.add(elemBytes * n) {
			return nil, errBuilt
		}
		out := make([]any, 0, n)
		for it := x.Iterator(); it.HasNext() == types.True; {
			e, err := fromCEL(it.Next(), m)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("result of type %s has no JSON form", v.Type().TypeName())
}

// celEnv is the CEL environment expressions outside loops compile in; loop
// bodies extend it with their variables. It is immutable and safe for
// concurrent use.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(append([]cel.EnvOption{
		cel.Variable("input", cel.DynType),
		cel.Variable("steps", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("workflow", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("vars", cel.MapType(cel.StringType, cel.DynType)),
	}, celOptions()...)...)
})

// celOptions are the options every environment shares: the functions and
// extensions expressions may use.
func celOptions() []cel.EnvOption {
	return []cel.EnvOption{
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		ext.Strings(),
		ext.Encoders(ext.EncodersVersion(0)),
		ext.Math(),
		ext.Lists(),
		ext.Sets(),
	}
}

// triggerEnv returns the environment of trigger expressions, with tick for
// cron triggers.
func triggerEnv(tick bool) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.Variable("event", cel.DynType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.StringType)),
		cel.Variable("subject", cel.StringType),
	}
	if tick {
		opts = append(opts, cel.Variable("tick", cel.TimestampType))
	}
	return cel.NewEnv(append(opts, celOptions()...)...)
}

// eventEnv and cronEnv are the environments the expressions of subject and
// webhook triggers, and of cron triggers, compile in. They are immutable and
// safe for concurrent use.
var (
	eventEnv = sync.OnceValues(func() (*cel.Env, error) { return triggerEnv(false) })
	cronEnv  = sync.OnceValues(func() (*cel.Env, error) { return triggerEnv(true) })
)

// triggerValue resolves the variable name of a trigger expression from the
// Scope's Trigger map t. Values of the wrong type resolve to an error,
// which fails the evaluation.
func triggerValue(t map[string]any, name string) (any, bool) {
	v, ok := t[name]
	switch name {
	case "event":
		return v, true
	case "headers":
		return headersValue(v), true
	case "subject":
		switch x := v.(type) {
		case nil:
			return "", true
		case string:
			return x, true
		}
		return types.NewErr("subject is a %T, not a string", v), true
	case "tick":
		switch x := v.(type) {
		case time.Time:
			return types.Timestamp{Time: x}, true
		case types.Timestamp:
			return x, true
		case nil:
			if !ok {
				return types.NewErr("no tick: only cron triggers have one"), true
			}
		}
		return types.NewErr("tick is a %T, not a time.Time", v), true
	}
	return nil, false
}

// headersValue converts headers given as map[string]string, map[string]any
// or map[string][]string (also named, like http.Header) into the
// map[string]string expressions see; a list of values counts by its first,
// and an empty one leaves the header out.
func headersValue(v any) any {
	switch x := v.(type) {
	case nil:
		return map[string]string{}
	case map[string]string:
		return x
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			switch e := e.(type) {
			case string:
				out[k] = e
			case []string:
				if len(e) > 0 {
					out[k] = e[0]
				}
			case []any:
				if len(e) == 0 {
					continue
				}
				s, ok := e[0].(string)
				if !ok {
					return types.NewErr("header %q holds a %T, not a string", k, e[0])
				}
				out[k] = s
			default:
				return types.NewErr("header %q is a %T, not a string", k, e)
			}
		}
		return out
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
		switch et := rv.Type().Elem(); {
		case et.Kind() == reflect.String:
			out := make(map[string]string, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				out[it.Key().String()] = it.Value().String()
			}
			return out
		case et.Kind() == reflect.Slice && et.Elem().Kind() == reflect.String:
			out := make(map[string]string, rv.Len())
			for it := rv.MapRange(); it.Next(); {
				if it.Value().Len() > 0 {
					out[it.Key().String()] = it.Value().Index(0).String()
				}
			}
			return out
		}
	}
	return types.NewErr("headers are a %T, not a map of strings", v)
}

// segment is a piece of a template string: literal text or an expression.
type segment struct {
	text   string
	isExpr bool
}

// splitTemplate splits s into text and ${ } expressions.
func splitTemplate(s string) ([]segment, error) {
	var segs []segment
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			segs = append(segs, segment{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			text.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := closingBrace(s, i+2)
			if end < 0 {
				return nil, fmt.Errorf("unterminated ${ in %q: add the closing }", s)
			}
			e := strings.TrimSpace(s[i+2 : end])
			if e == "" {
				return nil, errors.New("empty ${ }: put an expression inside")
			}
			flush()
			segs = append(segs, segment{text: e, isExpr: true})
			i = end + 1
		default:
			text.WriteByte(s[i])
			i++
		}
	}
	flush()
	return segs, nil
}

// closingBrace returns the index of the } that closes an expression starting
// at start, skipping nested braces and CEL string literals; -1 if none.
func closingBrace(s string, start int) int {
	depth := 0
	for i := start; i < len(s); i++ {
		switch c := s[i]; c {
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i
			}
			depth--
		case '\'', '"':
			i = stringEnd(s, i)
			if i < 0 {
				return -1
			}
		}
	}
	return -1
}

// stringEnd returns the index of the last quote of the CEL string literal
// whose opening quote is at s[i], or -1 if it is not terminated.
func stringEnd(s string, i int) int {
	q := s[i : i+1]
	if strings.HasPrefix(s[i:], q+q+q) {
		q += q + q
	}
	// A raw string (r'...', also with a b prefix) has no escapes.
	j := i
	for j > 0 && strings.ContainsRune("rRbB", rune(s[j-1])) {
		j--
	}
	prefix := strings.ToLower(s[j:i])
	raw := strings.Contains(prefix, "r") && len(prefix) <= 2 && (j == 0 || !isIdentByte(s[j-1]))
	for k := i + len(q); k < len(s); k++ {
		if s[k] == '\\' && !raw {
			k++
			continue
		}
		if strings.HasPrefix(s[k:], q) {
			return k + len(q) - 1
		}
	}
	return -1
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
