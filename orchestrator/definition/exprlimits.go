package definition

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// Expressions are bounded in memory as well as in cost. Every call that
// can build a large string, bytes or list works out what it would build
// before it runs, and fails the evaluation instead of building more than
// the limits allow.
const (
	// MaxValueBytes bounds one value an expression builds: a string or
	// bytes by its length, a list at 16 bytes per element. It also bounds
	// an expression's result, and a template's whole output, measured as
	// JSON.
	MaxValueBytes = 4 << 20
	// MaxEvalBytes bounds what one evaluation (of an expression, or of a
	// whole template) builds in all, temporary copies included.
	MaxEvalBytes = 16 << 20
	// elemBytes is what one list element or map entry counts.
	elemBytes = 16
	// maxRegexSteps bounds the work of the matches calls of one
	// evaluation, counted before each runs as the length of the string
	// times the instructions of the pattern's program: what Go's
	// matcher may take in the worst case, about a second's worth. CEL's
	// own cost of matches counts the pattern's source, not its program:
	// 'a' * 4 MiB matched against .{999}! costs 800,000 of the
	// 1,000,000 allowed, and takes half a minute.
	maxRegexSteps = 1 << 27
)

// ErrLimit is what an evaluation that would pass MaxValueBytes or
// MaxEvalBytes fails with: its *EvalError matches it with errors.Is.
var ErrLimit = errors.New("expression memory limit exceeded")

// limitError is an evaluation that would pass a memory limit.
type limitError struct {
	src    string // the expression
	detail string
}

func (e *limitError) Error() string {
	src := e.src
	if len(src) > 200 {
		src = src[:200] + "..."
	}
	return fmt.Sprintf("expression %q: memory limit exceeded: %s", src, e.detail)
}

func (e *limitError) Is(target error) bool { return target == ErrLimit }

// memoryLimit stops an evaluation from inside CEL: the program recovers
// the panic and returns it as its error, which no operator can absorb.
func memoryLimit(format string, args ...any) {
	panic(interpreter.EvalCancelledError{Cause: interpreter.MemoryLimitExceeded, Message: fmt.Sprintf(format, args...)})
}

// asLimit returns err as a *limitError naming src if it stopped an
// evaluation for memory, or err.
func asLimit(err error, src string) error {
	var ce interpreter.EvalCancelledError
	if errors.As(err, &ce) && ce.Cause == interpreter.MemoryLimitExceeded {
		return &limitError{src: src, detail: ce.Message}
	}
	return err
}

// meter counts what one evaluation builds. Calls inside CEL find it
// through the activation, under meterName.
type meter struct {
	built   int64 // bytes built, against MaxEvalBytes
	out     int64 // JSON bytes of the results so far, against MaxValueBytes
	regexps map[string]*regexp.Regexp
	insts   map[string]int64 // of each pattern in regexps
	steps   int64            // of the matches calls, against maxRegexSteps
}

// meterName is the hidden variable that resolves to the evaluation's
// meter; no expression can name it.
const meterName = "#meter"

// add records n bytes built and reports whether the total is within
// MaxEvalBytes. A nil meter (an evaluation without one) counts nothing.
func (m *meter) add(n int64) bool {
	if m == nil {
		return true
	}
	m.built += n
	return m.built <= MaxEvalBytes
}

// meterOf returns the meter of the evaluation f belongs to, or nil.
func meterOf(f *interpreter.ExecutionFrame) *meter {
	v, _ := f.ResolveName(meterName)
	m, _ := v.(*meter)
	return m
}

// A builder returns what a call would build from its arguments: the size
// of the value it returns, held to MaxValueBytes, and the bytes it
// allocates in all, charged to the evaluation. Arguments of unexpected
// types count nothing: the call itself rejects them.
type builder func(args []ref.Val) (value, alloc int64)

// builders are the functions that build strings, bytes or lists, by name.
var builders = map[string]builder{
	"_+_":                   buildAdd,
	"string":                copyOf,
	"bytes":                 copyOf,
	"base64.encode":         func(a []ref.Val) (int64, int64) { n := (strLen(a[0]) + 2) / 3 * 4; return n, n },
	"base64.decode":         copyOf,
	"replace":               buildReplace,
	"split":                 buildSplit,
	"join":                  buildJoin,
	"format":                buildFormat,
	"strings.quote":         func(a []ref.Val) (int64, int64) { n := strLen(a[0]); return 3*n + 2, 6*n + 2 },
	"reverse":               buildReverse,
	"charAt":                runeCopies(false),
	"indexOf":               runeCopies(false),
	"lastIndexOf":           runeCopies(false),
	"lowerAscii":            runeCopies(true),
	"upperAscii":            runeCopies(true),
	"substring":             runeCopies(true),
	"trim":                  runeCopies(true),
	"lists.range":           buildRange,
	"slice":                 buildSlice,
	"flatten":               buildFlatten,
	"distinct":              listCopy(3),
	"sort":                  listCopy(2),
	"@sortByAssociatedKeys": listCopy(3),
	"optional.unwrap":       listCopy(1),
	"unwrapOpt":             listCopy(1),
}

// strLen is the length of a string or bytes, or 0.
func strLen(v ref.Val) int64 {
	switch x := v.(type) {
	case types.String:
		return int64(len(x))
	case types.Bytes:
		return int64(len(x))
	}
	return 0
}

// elems is the number of elements of a list or entries of a map, or 0.
func elems(v ref.Val) int64 {
	switch x := v.(type) {
	case traits.Lister:
		n, _ := x.Size().(types.Int)
		return int64(n)
	case traits.Mapper:
		n, _ := x.Size().(types.Int)
		return int64(n)
	}
	return 0
}

// copyOf builds a copy of its string or bytes argument.
func copyOf(a []ref.Val) (int64, int64) { n := strLen(a[0]); return n, n }

// buildAdd is +: a new string or bytes, or a list that appends to its
// first operand in place (in a comprehension) or views both.
func buildAdd(a []ref.Val) (int64, int64) {
	switch a[0].(type) {
	case types.String, types.Bytes:
		n := strLen(a[0]) + strLen(a[1])
		return n, n
	case traits.MutableLister:
		return elemBytes * (elems(a[0]) + elems(a[1])), elemBytes * elems(a[1])
	case traits.Lister:
		return elemBytes * (elems(a[0]) + elems(a[1])), elemBytes
	}
	return 0, 0
}

// buildReplace is s.replace(old, new[, n]).
func buildReplace(a []ref.Val) (int64, int64) {
	s, ok1 := a[0].(types.String)
	old, ok2 := a[1].(types.String)
	repl, ok3 := a[2].(types.String)
	if !ok1 || !ok2 || !ok3 {
		return 0, 0
	}
	count := int64(strings.Count(string(s), string(old)))
	if len(a) == 4 {
		if n, ok := a[3].(types.Int); ok && n >= 0 && int64(n) < count {
			count = int64(n)
		}
	}
	n := int64(len(s)) + count*(int64(len(repl))-int64(len(old)))
	return n, n
}

// buildSplit is s.split(sep[, n]): a list of substrings of s.
func buildSplit(a []ref.Val) (int64, int64) {
	s, ok1 := a[0].(types.String)
	sep, ok2 := a[1].(types.String)
	if !ok1 || !ok2 {
		return 0, 0
	}
	var parts int64
	if sep == "" {
		parts = int64(utf8.RuneCountInString(string(s)))
	} else {
		parts = int64(strings.Count(string(s), string(sep))) + 1
	}
	if len(a) == 3 {
		if n, ok := a[2].(types.Int); ok && n >= 0 && int64(n) < parts {
			parts = int64(n)
		}
	}
	return elemBytes * parts, elemBytes * parts
}

// buildJoin is list.join([sep]).
func buildJoin(a []ref.Val) (int64, int64) {
	l, ok := a[0].(traits.Lister)
	if !ok {
		return 0, 0
	}
	var sep int64
	if len(a) == 2 {
		sep = strLen(a[1])
	}
	var n int64
	for it := l.Iterator(); it.HasNext() == types.True && n <= MaxValueBytes; {
		n += strLen(it.Next()) + sep
	}
	return n, n
}

// buildFormat is fmt.format(args): at most the format's text and each
// argument as its verb can render it.
func buildFormat(a []ref.Val) (int64, int64) {
	l, ok := a[1].(traits.Lister)
	if !ok {
		return 0, 0
	}
	n := strLen(a[0])
	for it := l.Iterator(); it.HasNext() == types.True && n <= MaxValueBytes; {
		n += renderBound(it.Next(), true, MaxValueBytes-n)
	}
	return n, 2 * n
}

// renderBound is at most how long format renders v: top is set for an
// argument itself, which a verb may render in hex or with a precision,
// and unset for elements of a list or map. Past limit it stops counting.
func renderBound(v ref.Val, top bool, limit int64) int64 {
	switch x := v.(type) {
	case types.String, types.Bytes:
		if top {
			return 2 * strLen(v)
		}
		return strLen(v)
	case types.Int, types.Uint:
		if top {
			return 66
		}
		return 20
	case types.Double:
		n := int64(21)
		if f := math.Abs(float64(x)); f != 0 && !math.IsInf(f, 0) && !math.IsNaN(f) {
			n += int64(math.Abs(math.Floor(math.Log10(f))))
		}
		if top {
			n += 101
		}
		return n
	case traits.Mapper:
		n := int64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= limit; {
			k := it.Next()
			n += 4 + renderBound(k, false, limit-n) + renderBound(x.Get(k), false, limit-n)
		}
		return n
	case traits.Lister:
		n := int64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= limit; {
			n += 2 + renderBound(it.Next(), false, limit-n)
		}
		return n
	}
	return 64
}

// buildReverse is reverse of a string (through its runes) or of a list.
func buildReverse(a []ref.Val) (int64, int64) {
	if _, ok := a[0].(traits.Lister); ok {
		n := elemBytes * elems(a[0])
		return n, n
	}
	n := strLen(a[0])
	return n, 5 * n
}

// runeCopies is a string function that copies its string arguments into
// runes, and returns a string up to as long as its first when sized.
func runeCopies(sized bool) builder {
	return func(a []ref.Val) (int64, int64) {
		var runes int64
		for _, v := range a {
			if s, ok := v.(types.String); ok {
				runes += 4 * int64(len(s))
			}
		}
		if sized {
			return strLen(a[0]), runes + strLen(a[0])
		}
		return 0, runes
	}
}

// buildRange is lists.range(n).
func buildRange(a []ref.Val) (int64, int64) {
	n, _ := a[0].(types.Int)
	n = max(n, 0)
	return elemBytes * int64(n), elemBytes * int64(n)
}

// buildSlice is list.slice(from, to).
func buildSlice(a []ref.Val) (int64, int64) {
	from, _ := a[1].(types.Int)
	to, _ := a[2].(types.Int)
	n := elemBytes * max(int64(to)-int64(from), 0)
	return n, n
}

// buildFlatten is list.flatten([depth]).
func buildFlatten(a []ref.Val) (int64, int64) {
	l, ok := a[0].(traits.Lister)
	if !ok {
		return 0, 0
	}
	depth := int64(1)
	if len(a) == 2 {
		d, _ := a[1].(types.Int)
		depth = int64(d)
	}
	n := elemBytes * flatCount(l, depth, MaxValueBytes/elemBytes)
	return n, n
}

// flatCount counts the elements of l flattened depth levels, stopping
// past limit.
func flatCount(l traits.Lister, depth, limit int64) int64 {
	var n int64
	for it := l.Iterator(); it.HasNext() == types.True && n <= limit; {
		if sub, ok := it.Next().(traits.Lister); ok && depth > 0 {
			n += flatCount(sub, depth-1, limit-n)
		} else {
			n++
		}
	}
	return n
}

// listCopy is a list function returning a list as long as its first
// argument, allocating factor times that while it works.
func listCopy(factor int64) builder {
	return func(a []ref.Val) (int64, int64) {
		n := elemBytes * elems(a[0])
		return n, factor * n
	}
}

// regexBytes estimates what compiling and running the regular expression
// pattern allocates: 256 bytes per instruction of its program, with
// repetitions expanded, and for a pattern anchored at its start (which Go
// also compiles to a one-pass matcher when it is short) 24 bytes per rune
// of its character classes.
func regexBytes(pattern string) int64 {
	n, _ := regexCost(pattern)
	return n
}

// regexCost is regexBytes, and the estimated instructions of pattern's
// program.
func regexCost(pattern string) (bytes, insts int64) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0, 0 // it fails to compile, after parsing as far as this did
	}
	insts, runes := regexSize(re)
	n := 256 * insts
	if insts < 1000 && anchored(re) {
		n += 24 * runes
	}
	return n, insts
}

// regexSize estimates the instructions of re's program and the runes of
// their character classes.
func regexSize(re *syntax.Regexp) (insts, runes int64) {
	for _, sub := range re.Sub {
		i, r := regexSize(sub)
		insts += i
		runes += r
	}
	if re.Op == syntax.OpRepeat {
		k := int64(max(re.Max, re.Min, 1))
		insts *= k
		runes *= k
	}
	return min(insts+1, math.MaxInt32), min(runes+int64(len(re.Rune)), math.MaxInt32)
}

// anchored reports whether re begins with ^ (\A).
func anchored(re *syntax.Regexp) bool {
	for {
		switch re.Op {
		case syntax.OpBeginText:
			return true
		case syntax.OpConcat, syntax.OpCapture:
			if len(re.Sub) == 0 {
				return false
			}
			re = re.Sub[0]
		default:
			return false
		}
	}
}

// regexp returns pattern compiled, compiling it once per evaluation and
// counting what that takes, and the estimated instructions of its
// program. A nil meter compiles it every time.
func (m *meter) regexp(pattern string) (*regexp.Regexp, int64, error) {
	if m != nil {
		if re, ok := m.regexps[pattern]; ok {
			return re, m.insts[pattern], nil
		}
	}
	n, insts := regexCost(pattern)
	if n > MaxValueBytes {
		memoryLimit("matches would compile a regular expression of about %d bytes; the limit is 4 MiB", n)
	}
	if !m.add(n) {
		memoryLimit("matches would take what the evaluation builds past the limit of 16 MiB")
	}
	re, err := regexp.Compile(pattern)
	if err != nil || m == nil {
		return re, insts, err
	}
	if m.regexps == nil {
		m.regexps = make(map[string]*regexp.Regexp)
		m.insts = make(map[string]int64)
	}
	m.regexps[pattern] = re
	m.insts[pattern] = insts
	return re, insts, nil
}

// matchCall is a call of matches, whose patterns compile through the
// evaluation's meter.
type matchCall struct {
	interpreter.InterpretableCall
	args []interpreter.InterpretableV2
}

// Eval implements interpreter.Interpretable.
func (c *matchCall) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}

// Exec implements interpreter.InterpretableV2.
func (c *matchCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	args := make([]ref.Val, 2)
	for i, arg := range c.args {
		v := arg.Exec(f)
		if types.IsUnknownOrError(v) {
			return v
		}
		args[i] = v
	}
	res := match(meterOf(f), args[0], args[1])
	if costs := f.CostTracker(); costs != nil {
		costs.EvalVarArgs(f, c.ID(), c.InterpretableCall, args, res)
	}
	return res
}

// match is s.matches(pattern).
func match(m *meter, s, pattern ref.Val) ref.Val {
	str, ok := s.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(s)
	}
	pat, ok := pattern.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(pattern)
	}
	re, insts, err := m.regexp(string(pat))
	if err != nil {
		return types.WrapErr(err)
	}
	if m != nil {
		if m.steps += (int64(len(str)) + 1) * max(insts, 1); m.steps > maxRegexSteps {
			panic(interpreter.EvalCancelledError{Cause: interpreter.CostLimitExceeded, Message: fmt.Sprintf(
				"operation cancelled: matches of a %d-byte string against a pattern of about %d instructions would pass the work allowed for matches in one evaluation", len(str), insts)})
		}
	}
	return types.Bool(re.MatchString(string(str)))
}

// displayName is how the limit errors name a function.
func displayName(fn string) string {
	if fn == "_+_" {
		return "+"
	}
	return fn
}

// guardedCall is a call of a builder function: it evaluates the
// arguments, checks what the call would build against the limits, and
// only then runs it.
type guardedCall struct {
	interpreter.InterpretableCall
	args  []interpreter.InterpretableV2
	impl  *functions.Overload
	build builder
}

// Eval implements interpreter.Interpretable.
func (c *guardedCall) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}

// Exec implements interpreter.InterpretableV2.
func (c *guardedCall) Exec(f *interpreter.ExecutionFrame) ref.Val {
	args := make([]ref.Val, len(c.args))
	for i, arg := range c.args {
		v := arg.Exec(f)
		if types.IsUnknownOrError(v) {
			return v
		}
		args[i] = v
	}
	value, alloc := c.build(args)
	if value > MaxValueBytes {
		memoryLimit("%s would build a value of %d bytes; the limit is 4 MiB", displayName(c.Function()), value)
	}
	if alloc > 0 && !meterOf(f).add(alloc) {
		memoryLimit("%s would take what the evaluation builds past the limit of 16 MiB", displayName(c.Function()))
	}
	res := c.call(args)
	if costs := f.CostTracker(); costs != nil {
		costs.EvalVarArgs(f, c.ID(), c.InterpretableCall, args, res)
	}
	return res
}

// call runs the implementation the planner would have run.
func (c *guardedCall) call(args []ref.Val) ref.Val {
	if t := c.impl.OperandTrait; t != 0 && !args[0].Type().HasTrait(t) {
		return types.NewErr("no such overload: %s", c.Function())
	}
	switch {
	case len(args) == 1 && c.impl.Unary != nil:
		return c.impl.Unary(args[0])
	case len(args) == 2 && c.impl.Binary != nil:
		return c.impl.Binary(args[0], args[1])
	case c.impl.Function != nil:
		return c.impl.Function(args...)
	}
	return types.NewErr("no such overload: %s", c.Function())
}

// meteredConstructor is a list or map literal, whose elements count
// towards what the evaluation builds.
type meteredConstructor struct {
	interpreter.InterpretableConstructor
	bytes int64
}

// Eval implements interpreter.Interpretable.
func (c *meteredConstructor) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}

// Exec implements interpreter.InterpretableV2.
func (c *meteredConstructor) Exec(f *interpreter.ExecutionFrame) ref.Val {
	if !meterOf(f).add(c.bytes) {
		memoryLimit("a literal would take what the evaluation builds past the limit of 16 MiB")
	}
	v := c.InterpretableConstructor.Exec(f)
	if m, ok := v.(traits.Mapper); ok && c.Type() == types.MapType {
		// CEL builds a map literal over a Go map: order its keys, so
		// ranging over it decides the same on every replay.
		return orderedLiteral(m)
	}
	return v
}

// implementations are the bindings of the builder functions, by overload
// id and by function name, as the planner finds them.
var implementations = sync.OnceValues(func() (map[string]*functions.Overload, error) {
	env, err := cel.NewEnv(celOptions()...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*functions.Overload)
	for name, fn := range env.Functions() {
		if _, ok := builders[name]; !ok {
			continue
		}
		bs, err := fn.Bindings()
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			out[b.Operator] = b
		}
	}
	return out, nil
})

// guardCalls is the program option that puts the builder functions'
// calls under guard and meters literals.
func guardCalls() (cel.ProgramOption, error) {
	impls, err := implementations()
	if err != nil {
		return nil, err
	}
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		switch n := i.(type) {
		case interpreter.InterpretableCall:
			if n.Function() == "matches" && len(n.Args()) == 2 {
				return &matchCall{InterpretableCall: n, args: n.Args()}, nil
			}
			build, ok := builders[n.Function()]
			if !ok {
				return i, nil
			}
			impl := impls[n.OverloadID()]
			if impl == nil {
				impl = impls[n.Function()]
			}
			if impl == nil {
				return nil, fmt.Errorf("no implementation of %s to guard", n.Function())
			}
			return &guardedCall{InterpretableCall: n, args: n.Args(), impl: impl, build: build}, nil
		case interpreter.InterpretableConstructor:
			return &meteredConstructor{InterpretableConstructor: n, bytes: elemBytes * int64(len(n.InitVals()))}, nil
		}
		return i, nil
	}), nil
}

// jsonSize returns the length of v's JSON encoding, or a number past limit
// once it passes limit.
func jsonSize(v ref.Val, limit int64) int64 {
	switch x := v.(type) {
	case types.Null:
		return 4
	case types.Bool:
		return 5
	case types.Int:
		return intLen(int64(x))
	case types.Uint:
		return 20
	case types.Double:
		return 24
	case types.String:
		return strJSONLen(string(x))
	case types.Bytes:
		return (int64(len(x))+2)/3*4 + 2
	case types.Timestamp, types.Duration:
		return 40
	case *types.Optional:
		if !x.HasValue() {
			return 4
		}
		return jsonSize(x.GetValue(), limit)
	case traits.Mapper:
		if m, ok := x.Value().(map[string]any); ok {
			return goJSONSize(m, limit)
		}
		n := int64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= limit; {
			k := it.Next()
			n += 2 + jsonSize(k, limit-n)
			n += jsonSize(x.Get(k), limit-n)
		}
		return n
	case traits.Lister:
		switch l := x.Value().(type) {
		case []any:
			return goJSONSize(l, limit)
		case []string:
			return goJSONSize(l, limit)
		}
		n := int64(2)
		for it := x.Iterator(); it.HasNext() == types.True && n <= limit; {
			n += 1 + jsonSize(it.Next(), limit-n)
		}
		return n
	}
	return 16
}

// goJSONSize is jsonSize for a normalized Go value.
func goJSONSize(v any, limit int64) int64 {
	switch x := v.(type) {
	case nil:
		return 4
	case bool:
		return 5
	case int64:
		return intLen(x)
	case string:
		return strJSONLen(x)
	case []string:
		n := int64(2)
		for _, e := range x {
			if n += 1 + strJSONLen(e); n > limit {
				break
			}
		}
		return n
	case []any:
		n := int64(2)
		for _, e := range x {
			if n += 1 + goJSONSize(e, limit-n); n > limit {
				break
			}
		}
		return n
	case map[string]any:
		n := int64(2)
		for k, e := range x {
			if n += 2 + strJSONLen(k) + goJSONSize(e, limit-n); n > limit {
				break
			}
		}
		return n
	}
	return 24
}

// intLen is the number of characters of i in decimal.
func intLen(i int64) int64 {
	n := int64(1)
	if i < 0 {
		n++
	}
	for i <= -10 || i >= 10 {
		i /= 10
		n++
	}
	return n
}

// strJSONLen is the length of s as a JSON string.
func strJSONLen(s string) int64 {
	n := int64(len(s)) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}
