package definition

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore/value"
)

// compileTemplate compiles a template given as YAML, as the input of a
// top-level step at position pos of a definition whose top-level steps are
// ids.
func compileTemplate(t testing.TB, src string, pos int, ids ...string) *Template {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	p, at := testParser(pos, ids...)
	tmpl := p.template("", "input", doc.Content[0], at)
	if len(p.problems) > 0 {
		t.Fatalf("compile %s: %v", src, &Error{Problems: p.problems})
	}
	return tmpl
}

// testParser returns a parser that knows the top-level steps ids, and
// where the expressions of the top-level step at pos compile.
func testParser(pos int, ids ...string) (*parser, exprAt) {
	p := newParser()
	self := &node{pos: fmt.Sprintf("steps[%d]", pos), path: []slot{{list: "steps", index: pos}}}
	for i, id := range ids {
		n := &node{pos: fmt.Sprintf("steps[%d]", i), id: id, path: []slot{{list: "steps", index: i}}}
		p.ids[id] = n
		if i == pos {
			self = n
		}
	}
	return p, exprAt{self: self, sc: p.root}
}

var testScope = Scope{
	Input: map[string]any{
		"name":  "Ann",
		"count": int64(3),
		"price": 2.5,
		"ok":    true,
		"tags":  []any{"a", "b"},
		"user":  map[string]any{"email": "ann@example.com", "age": int64(40)},
		"nil":   nil,
	},
	Steps:      map[string]any{"fetch": map[string]any{"status": int64(200), "body": "hi"}, "approve": true},
	WorkflowID: "wf-1",
	Now:        time.Date(2025, 3, 4, 5, 6, 7, 800, time.UTC),
}

func TestTemplateEval(t *testing.T) {
	tests := []struct {
		name string
		src  string // YAML
		want any
	}{
		{"literal string", `hello`, "hello"},
		{"literal number", `42`, int64(42)},
		{"literal map", `{a: [1, x, true, null]}`, map[string]any{"a": []any{int64(1), "x", true, nil}}},
		{"null", `null`, nil},
		{"int keeps type", `"${ input.count }"`, int64(3)},
		{"int arithmetic", `"${ input.count * 2 }"`, int64(6)},
		{"whole double is int", `"${ 4.0 }"`, int64(4)},
		{"double", `"${ input.price }"`, 2.5},
		{"bool", `"${ input.ok && steps.approve.output }"`, true},
		{"null value", `"${ input.nil }"`, nil},
		{"map", `"${ input.user }"`, map[string]any{"email": "ann@example.com", "age": int64(40)}},
		{"list", `"${ input.tags + ['c'] }"`, []any{"a", "b", "c"}},
		{"surrounding whitespace", `"  ${ input.count }  "`, int64(3)},
		{"interpolation", `"Hi ${ input.name }, you have ${ input.count } tasks"`, "Hi Ann, you have 3 tasks"},
		{"interpolate json", `"tags=${ input.tags } user=${ {'a': 1} } nil=${ null }"`, `tags=["a","b"] user={"a":1} nil=null`},
		{"no html escaping", `"x ${ '<&>' } ${ ['<'] }"`, `x <&> ["<"]`},
		{"two expressions", `"${ input.name }${ input.count }"`, "Ann3"},
		{"nested", `{body: {to: "${ input.user.email }", list: ["${ input.count }", "n=${ 1 }"]}, "${ literal key }": 1}`,
			map[string]any{"body": map[string]any{"to": "ann@example.com", "list": []any{int64(3), "n=1"}}, "${ literal key }": int64(1)}},
		{"map literal braces", `"${ {'approved': steps.approve.output} }"`, map[string]any{"approved": true}},
		{"brace in string", `"${ '}' + \"{\" + '''}}''' }"`, "}{}}"},
		{"escaped quote", `"${ 'it\\'s }' }"`, "it's }"},
		{"raw string", `"${ r'\\' + '}' }"`, `\}`},
		{"escape", `"$${ not an expression } ${ 1 }"`, "${ not an expression } 1"},
		{"only escape", `"$${x}"`, "${x}"},
		{"step output", `"${ steps.fetch.output.status }"`, int64(200)},
		{"optional", `"${ steps.fetch.output.?missing.orValue('none') }"`, "none"},
		{"optional none", `"${ optional.none() }"`, nil},
		{"has", `"${ has(input.user.email) }"`, true},
		{"workflow id", `"${ workflow.id }"`, "wf-1"},
		{"workflow now", `"${ workflow.now }"`, "2025-03-04T05:06:07.0000008Z"},
		{"timestamp math", `"${ workflow.now + duration('1h') > workflow.now }"`, true},
		{"duration", `"${ duration('90m') }"`, "1h30m0s"},
		{"bytes", `"${ b'hi' }"`, "aGk="},
		{"uint", `"${ 7u }"`, int64(7)},
		{"strings ext", `"${ input.name.upperAscii() }"`, "ANN"},
		{"math ext", `"${ math.greatest(1, 5, 3) }"`, int64(5)},
		{"lists ext", `"${ [3, 1, 2].sort() }"`, []any{int64(1), int64(2), int64(3)}},
		{"sets ext", `"${ sets.contains([1, 2], [2]) }"`, true},
		{"encoders ext", `"${ base64.encode(b'hi') }"`, "aGk="},
		{"cross-type comparison", `"${ input.count > 2.5 }"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := compileTemplate(t, tt.src, 2, "fetch", "approve")
			got, err := tmpl.Eval(testScope)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestTemplateNil(t *testing.T) {
	var tmpl *Template
	if v, err := tmpl.Eval(testScope); v != nil || err != nil {
		t.Errorf("nil template = %v, %v", v, err)
	}
}

func TestTemplateEvalErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"missing key", `{body: {to: "${ input.email }"}}`, "evaluate input.body.to: no such key: email"},
		{"missing step", `"${ steps.fetch.output }"`, "evaluate input: no such key: fetch"},
		{"in interpolation", `["x ${ input.nope }"]`, "evaluate input[0]: no such key: nope"},
		{"division", `"${ 1 / 0 }"`, "evaluate input: division by zero"},
		{"int map key", `"${ {1: 'a'} }"`, "evaluate input: map key 1 is not a string"},
		{"not finite", `"${ 1.0 / 0.0 }"`, "evaluate input: result +Inf is not a finite number"},
		{"type value", `"${ type(1) }"`, "evaluate input: result of type type has no JSON form"},
		{"cost limit", `"${ lists.range(2000).map(x, lists.range(2000).map(y, x * y)).size() }"`,
			`evaluate input: expression "lists.range(2000).map(x, lists.range(2000).map(y, x * y)).size()": it passed the cost limit of 1000000 units one evaluation may use: do less in it (fewer or shorter lists under nested map, filter, exists or all, say)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := compileTemplate(t, tt.src, 1, "fetch")
			v, err := tmpl.Eval(Scope{Input: map[string]any{}})
			var eerr *EvalError
			if !errors.As(err, &eerr) {
				t.Fatalf("Eval = %#v, %v; want *EvalError", v, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err.Error(), tt.want)
			}
		})
	}
}

func TestTemplateResultIsFresh(t *testing.T) {
	tmpl := compileTemplate(t, `{a: [1]}`, 0)
	v1, _ := tmpl.Eval(Scope{})
	v1.(map[string]any)["a"].([]any)[0] = "changed"
	v2, _ := tmpl.Eval(Scope{})
	if !reflect.DeepEqual(v2, map[string]any{"a": []any{int64(1)}}) {
		t.Errorf("second Eval = %#v: a caller's change leaked into the template", v2)
	}
}

func TestSplitTemplate(t *testing.T) {
	tests := []struct {
		in   string
		want string // segments rendered as text|{expr}
		err  string
	}{
		{in: "plain", want: "plain"},
		{in: "${a}", want: "{a}"},
		{in: "a ${ b } c ${d}", want: "a |{b}| c |{d}"},
		{in: `${ {'k': "}"} }`, want: `{{'k': "}"}}`},
		{in: `${ """a"}""" }`, want: `{"""a"}"""}`},
		{in: "$${x} ${y}", want: "${x} |{y}"},
		{in: "${ 'unterminated }", err: "unterminated"},
		{in: "${ {a }", err: "unterminated"},
		{in: "x ${}", err: "empty"},
	}
	for _, tt := range tests {
		segs, err := splitTemplate(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("splitTemplate(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		var parts []string
		for _, s := range segs {
			if s.isExpr {
				parts = append(parts, "{"+s.text+"}")
			} else {
				parts = append(parts, s.text)
			}
		}
		if got := strings.Join(parts, "|"); err != nil || got != tt.want {
			t.Errorf("splitTemplate(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func BenchmarkTemplateEval(b *testing.B) {
	tmpl := compileTemplate(b, `{method: POST, url: "${ input.user.email }", body: {to: "Hi ${ input.name }", n: "${ input.count + 1 }", prev: "${ steps.fetch.output.status }"}}`, 2, "fetch", "approve")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Eval(testScope); err != nil {
			b.Fatal(err)
		}
	}
}

// fuzzScope is what FuzzTemplateEval evaluates in: testScope with vars and
// the variables of a foreach around a repeat.
var fuzzScope = func() Scope {
	s := testScope
	s.Vars = map[string]any{"count": int64(2), "names": []any{"x", "y"}}
	s.Locals = map[string]any{"item": map[string]any{"id": "i1", "qty": int64(3)}, "index": 4, "iteration": int64(1)}
	return s
}()

func FuzzTemplateEval(f *testing.F) {
	for _, seed := range []string{
		`hello`,
		`{a: [1, x, true, null, 2.5, 2024-01-02]}`,
		`"${ input.count * 2 }"`,
		`"Hi ${ input.name }, ${ input.tags } ${ {'a': 1} }"`,
		`{"to": "${ input.user.email }", "n": "${ steps.fetch.output.status + 1 }"}`,
		`"${ steps.fetch.output.?missing.orValue('none') }"`,
		`"${ vars.count + index + iteration }"`,
		`"${ item.id + ':' + string(item.qty) }"`,
		`"${ vars.names.map(n, n + string(index)) }"`,
		`"${ workflow.now + duration('1h') }"`,
		`"${ lists.range(2000).map(x, lists.range(2000).map(y, x * y)).size() }"`,
		`"${ 1 / 0 }"`,
		`"${ {1: 'a'} }"`,
		`"${ 1.0 / 0.0 }"`,
		`"$${ escaped } ${ '}' + \"{\" }"`,
		`"${ b'hi' } ${ 7u } ${ type(1) }"`,
		`["${ input.nope }", "${ "`,
		`"${ r'\\' + '}' }"`,
		`{ 1: x }`,
		`{"deep": [[[["${ input.user }"]]]]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil || len(doc.Content) == 0 {
			return
		}
		p, at := testParser(2, "fetch", "approve")
		p.vars["count"], p.vars["names"] = true, true
		at.sc = p.root.with(loopVar{"item", cel.DynType}, loopVar{"index", cel.IntType}, loopVar{"iteration", cel.IntType})
		tmpl := p.template("", "input", doc.Content[0], at)
		if len(p.problems) > 0 {
			if tmpl != nil {
				t.Fatalf("template compiled despite problems %v", &Error{Problems: p.problems})
			}
			return
		}
		if tmpl == nil {
			t.Fatal("no template and no problems")
		}
		v, err := tmpl.Eval(fuzzScope)
		if err != nil {
			var eerr *EvalError
			if !errors.As(err, &eerr) {
				t.Fatalf("Eval error %v is not an *EvalError", err)
			}
			return
		}
		if n, err := value.Normalize(v); err != nil || !reflect.DeepEqual(n, v) {
			t.Fatalf("result %#v is not normalized (%v)", v, err)
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("result %#v has no JSON form: %v", v, err)
		}
		again, err := tmpl.Eval(fuzzScope)
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("second Eval = %#v, %v; first was %#v", again, err, v)
		}
	})
}

// TestMapLiteralRangesInKeyOrder: ranging over a map an expression builds
// yields its keys in order, so a replay decides the same.
func TestMapLiteralRangesInKeyOrder(t *testing.T) {
	tests := []struct{ src, want string }{
		{`"${ {'c': 1, 'a': 2, 'b': 3, 'e': 4, 'd': 5}.map(k, k) }"`, `[a b c d e]`},
		{`"${ {3: 'x', 1: 'y', 2: 'z', true: 'w'}.map(k, string(k)) }"`, `[true 1 2 3]`},
		{`"${ {'b': 1, 'a': 2}.filter(k, k != 'z') }"`, `[a b]`},
		{`"${ input.m.map(k, k) }"`, `[a b c d e]`},
	}
	for _, tt := range tests {
		tmpl := compileTemplate(t, tt.src, 0)
		for range 50 {
			v, err := tmpl.Eval(Scope{Input: map[string]any{"m": map[string]any{"e": 1, "d": 1, "c": 1, "b": 1, "a": 1}}})
			if err != nil {
				t.Fatalf("%s: %v", tt.src, err)
			}
			if got := fmt.Sprint(v); got != tt.want {
				t.Fatalf("%s = %s; want %s", tt.src, got, tt.want)
			}
		}
	}
}
