package definition

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes the Go heap allocated while f ran.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// evalBounded evaluates tmpl in s as the orchestrator would use the
// result, encoding it as JSON, and returns the error and the bytes
// allocated.
func evalBounded(tmpl *Template, s Scope) (error, uint64) {
	var err error
	n := allocated(func() {
		var v any
		if v, err = tmpl.Eval(s); err == nil {
			_, err = json.Marshal(v)
		}
	})
	return err, n
}

// wantLimit fails t unless err is an *EvalError for ErrLimit naming the
// expression src, and alloc stays under 64 MiB.
func wantLimit(t *testing.T, err error, alloc uint64, src string) {
	t.Helper()
	var eerr *EvalError
	if !errors.As(err, &eerr) || !errors.Is(err, ErrLimit) {
		t.Errorf("error = %v, want an *EvalError for ErrLimit", err)
	} else if !strings.Contains(err.Error(), src) {
		t.Errorf("error %q does not name the expression %q", err, src)
	}
	if alloc >= 64<<20 {
		t.Errorf("allocated %d MiB, want under 64 MiB", alloc>>20)
	}
}

func inputS(n int, c string) Scope {
	return Scope{Input: map[string]any{"s": strings.Repeat(c, n)}}
}

// Replacing every x of a 30 KB string by the string itself would build
// 900 MB: the evaluation fails before building it.
func TestIssue13Item4_ReplaceCannotBuildAHugeString(t *testing.T) {
	const src = "input.s.replace('x', input.s)"
	tmpl := compileTemplate(t, `"${ `+src+` }"`, 0)
	err, alloc := evalBounded(tmpl, inputS(30_000, "x"))
	wantLimit(t, err, alloc, src)
}

// A list of a thousand references to one 20 KB string is cheap inside CEL
// but 20 MB as a value: the result is bounded by its JSON size.
func TestIssue13Item4_SharedListResultIsBoundedBySize(t *testing.T) {
	const src = "lists.range(1000).map(i, input.s)"
	tmpl := compileTemplate(t, `"${ `+src+` }"`, 0)
	err, alloc := evalBounded(tmpl, inputS(20_000, "x"))
	wantLimit(t, err, alloc, src)
}

// Every function that can build a large string, bytes or list checks what
// it would build first; a whole evaluation builds at most MaxEvalBytes;
// interpolations and whole templates are bounded as well.
func TestIssue13Item4_EveryBuilderIsBounded(t *testing.T) {
	for _, tt := range []struct {
		name, tmpl, src string
		s               Scope
	}{
		{"join", `"${ lists.range(1000).map(i, input.s).join('') }"`, "lists.range(1000).map(i, input.s).join('')", inputS(20_000, "x")},
		{"format", `"${ '%s'.format([lists.range(1000).map(i, input.s)]) }"`, "'%s'.format([lists.range(1000).map(i, input.s)])", inputS(20_000, "x")},
		{"concatenation", `"${ input.s + input.s + input.s + input.s + input.s }"`, "input.s + input.s", inputS(1<<20, "x")},
		{"bytes", `"${ base64.encode(bytes(input.s + input.s + input.s)) }"`, "bytes(input.s", inputS(1500_000, "x")},
		{"split", `"${ input.s.split('').size() }"`, "input.s.split('')", inputS(1<<20, "x")},
		{"range", `"${ lists.range(900000).size() }"`, "lists.range(900000)", Scope{}},
		{"flatten", `"${ lists.range(400).map(i, lists.range(1000)).flatten().size() }"`, "flatten()", Scope{}},
		{"quote", `"${ strings.quote(input.s) }"`, "strings.quote(input.s)", inputS(3<<20, "\n")},
		{"built in all", `"${ lists.range(20).map(i, bytes(input.s)).size() }"`, "lists.range(20).map(i, bytes(input.s))", inputS(1<<20, "x")},
		{"rune copies", `"${ lists.range(100).map(i, input.s.indexOf('y')).size() }"`, "input.s.indexOf('y')", inputS(1<<20, "x")},
		{"regex", `"${ lists.range(10).map(i, 'x'.matches(input.s)).size() }"`, "'x'.matches(input.s)", inputS(30, `\pL{1000}`)},
		{"interpolation", `"list: ${ lists.range(1000).map(i, input.s) }"`, "lists.range(1000).map(i, input.s)", inputS(20_000, "x")},
		{"template", `{a: "${ input.s }", b: "${ input.s }", c: "${ input.s }"}`, "input.s", inputS(1500_000, "x")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := compileTemplate(t, tt.tmpl, 0)
			err, alloc := evalBounded(tmpl, tt.s)
			wantLimit(t, err, alloc, tt.src)
		})
	}
}

// Trigger filters, ids and inputs compile in their own environments, with
// the same bounds.
func TestIssue13Item4_TriggerExpressionsAreBounded(t *testing.T) {
	const src = "event.s.replace('x', event.s)"
	d := mustParse(t, `
name: w
steps: [{id: a, task: t}]
triggers:
  - subject: orders
    filter: "${ `+src+`.size() > 0 }"
    id: "${ `+src+` }"
    input: { s: "${ `+src+` }" }
`)
	s := Scope{Trigger: map[string]any{"event": map[string]any{"s": strings.Repeat("x", 30_000)}}}
	tr := d.Triggers[0]
	for name, tmpl := range map[string]*Template{"filter": tr.Filter.tmpl, "id": tr.ID, "input": tr.Input} {
		err, alloc := evalBounded(tmpl, s)
		t.Run(name, func(t *testing.T) { wantLimit(t, err, alloc, src) })
	}
}

// Large values that an expression does not build, or builds within the
// bounds, still evaluate.
func TestExpressionLimitsLeaveOrdinaryValuesAlone(t *testing.T) {
	items := make([]any, 20_000)
	for i := range items {
		items[i] = int64(i)
	}
	big := strings.Repeat("ab", 1<<15)
	s := Scope{Input: map[string]any{"s": big, "items": items, "words": strings.Split(strings.Repeat("word ", 10_000), " ")}}
	for _, tt := range []struct {
		name, tmpl string
		check      func(any) bool
	}{
		{"whole input", `"${ input }"`, func(v any) bool { return len(v.(map[string]any)["items"].([]any)) == 20_000 }},
		{"replace", `"${ input.s.replace('a', 'c') }"`, func(v any) bool { return len(v.(string)) == 1<<16 && v.(string)[:2] == "cb" }},
		{"map", `"${ input.items.map(x, x * 2) }"`, func(v any) bool { return v.([]any)[19_999] == int64(39_998) }},
		{"filter", `"${ input.items.filter(x, x % 2 == 0).size() }"`, func(v any) bool { return v == int64(10_000) }},
		{"split and join", `"${ input.s.split('b').join('-').size() }"`, func(v any) bool { return v == int64(1<<16) }},
		{"format", `"${ '%s: %d'.format([input.s.substring(0, 3), input.items.size()]) }"`, func(v any) bool { return v == "aba: 20000" }},
		{"concatenation", `"${ size(input.s + input.s + input.s) }"`, func(v any) bool { return v == int64(3<<16) }},
		{"interpolation", `"${ input.s }-${ input.items.size() }"`, func(v any) bool { return len(v.(string)) == 1<<16+6 }},
		{"regex in a loop", `"${ input.items.filter(x, string(x).matches(r'^[\\pL\\pN ]{1,100}$')).size() }"`, func(v any) bool { return v == int64(20_000) }},
		{"range", `"${ lists.range(50000).map(i, i * i).size() }"`, func(v any) bool { return v == int64(50_000) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, err := compileTemplate(t, tt.tmpl, 0).Eval(s)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(v) {
				t.Errorf("unexpected value %.100v", v)
			}
		})
	}
}
