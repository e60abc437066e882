package definition

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const searchDef = `
name: orders
search:
  customer: "${ input.customer }"
  region: eu
  priority: 2
  vip: false
  label: "order ${ input.n }"
  due: "${ timestamp('2025-03-01T12:00:00+01:00') }"
steps:
  - id: charge
    task: billing.charge
    search:
      charged: "${ steps.charge.output.amount }"
      ratio: "${ double(steps.charge.output.amount) / 4.0 }"
  - id: check
    switch:
      - if: "input.n > 0"
        then:
          - id: inner
            task: t
    search:
      inner: "${ steps.inner.output }"
  - id: each
    foreach: input.items
    do:
      - id: line
        task: t
        search:
          line: "${ item + ':' + string(index) + ':' + string(steps.line.output) }"
    catch:
      - do:
          - id: handle
            task: t
            search: { error: "${ error.type }" }
`

func TestParseSearch(t *testing.T) {
	d, err := Parse([]byte(searchDef))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range d.Search {
		names = append(names, a.Name)
	}
	if want := []string{"customer", "due", "label", "priority", "region", "vip"}; !reflect.DeepEqual(names, want) {
		t.Errorf("definition search names = %v, want %v (sorted)", names, want)
	}
	got, err := EvalSearch(d.Search, Scope{Input: map[string]any{"customer": "ann", "n": int64(3)}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"customer": "ann", "region": "eu", "priority": int64(2), "vip": false,
		"label": "order 3", "due": time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("start search = %#v\nwant %#v", got, want)
	}
	if due := got["due"].(time.Time); due.Location() != time.UTC {
		t.Errorf("a timestamp's location is %v, want UTC", due.Location())
	}

	// A step's search reads its own output.
	got, err = EvalSearch(d.Step("charge").Search, Scope{Steps: map[string]any{"charge": map[string]any{"amount": int64(10)}}})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"charged": int64(10), "ratio": 2.5}) {
		t.Errorf("charge search = %#v, %v", got, err)
	}
	got, err = EvalSearch(d.Step("check").Search, Scope{Steps: map[string]any{"inner": "x", "check": nil}})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"inner": "x"}) {
		t.Errorf("check search = %#v, %v", got, err)
	}
	got, err = EvalSearch(d.Step("line").Search, Scope{Steps: map[string]any{"line": int64(5)},
		Locals: map[string]any{"item": "a", "index": 1}})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"line": "a:1:5"}) {
		t.Errorf("line search = %#v, %v", got, err)
	}
	got, err = EvalSearch(d.Step("handle").Search, Scope{Locals: map[string]any{"error": map[string]any{"type": "oops", "message": "m"}}})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"error": "oops"}) {
		t.Errorf("handle search = %#v, %v", got, err)
	}
}

// A value of another type, or a string too long, fails the evaluation
// with an *EvalError naming the field that matches ErrSearchValue; other
// failures are plain evaluation errors.
func TestEvalSearchRejects(t *testing.T) {
	d, err := Parse([]byte(`
name: d
steps:
  - id: a
    task: t
    search:
      v: "${ steps.a.output }"
      w: "x ${ steps.a.output }"
`))
	if err != nil {
		t.Fatal(err)
	}
	v, w := d.Step("a").Search[0], d.Step("a").Search[1]
	for _, tc := range []struct {
		out  any
		attr *SearchAttr
		msg  string
	}{
		{[]any{int64(1)}, v, "it is a list"},
		{map[string]any{"a": int64(1)}, v, "it is a map"},
		{nil, v, "it is null"},
		{strings.Repeat("é", 129), v, "a string of 258 bytes, longer than 256"},
		{strings.Repeat("x", 255), w, "a string of 257 bytes, longer than 256"},
	} {
		_, err := tc.attr.Eval(Scope{Steps: map[string]any{"a": tc.out}})
		var ee *EvalError
		if !errors.As(err, &ee) || ee.Field != "search."+tc.attr.Name || !errors.Is(err, ErrSearchValue) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s over %v: error %v, want an *EvalError for search.%s matching ErrSearchValue saying %q", tc.attr.Name, tc.out, err, tc.attr.Name, tc.msg)
		}
	}
	// At the limit is fine.
	if got, err := v.Eval(Scope{Steps: map[string]any{"a": strings.Repeat("x", 256)}}); err != nil || len(got.(string)) != 256 {
		t.Errorf("a string of 256 bytes: %v", err)
	}
	// A missing key is an evaluation error, not a bad value.
	_, err = v.Eval(Scope{Steps: map[string]any{}})
	var ee *EvalError
	if !errors.As(err, &ee) || errors.Is(err, ErrSearchValue) {
		t.Errorf("missing step output: %v, want an *EvalError not matching ErrSearchValue", err)
	}
}

// At most MaxSearchAttributes distinct names, counted over the definition
// and all its steps; a name set in several places counts once.
func TestParseSearchLimit(t *testing.T) {
	def := func(top, perStep int) string {
		var b strings.Builder
		b.WriteString("name: d\nsearch:\n")
		for i := range top {
			fmt.Fprintf(&b, "  top%d: \"${ input.x }\"\n", i)
		}
		b.WriteString("steps:\n")
		for s := range 2 {
			fmt.Fprintf(&b, "  - id: s%d\n    task: t\n    search:\n      top0: \"1\"\n", s)
			for i := range perStep {
				fmt.Fprintf(&b, "      step%d: \"${ input.x }\"\n", i)
			}
		}
		return b.String()
	}
	if _, err := Parse([]byte(def(20, 12))); err != nil {
		t.Errorf("32 names (some in several places): %v", err)
	}
	_, err := Parse([]byte(def(20, 13)))
	want := `invalid definition: field "search": too many search attributes: the definition sets 33 names, on itself and its steps; at most 32`
	if err == nil || err.Error() != want {
		t.Errorf("33 names: %v\nwant %s", err, want)
	}
}

// The fields a fail or succeed step takes, as problems list them, leave
// out search, which they refuse.
func TestFieldsOfLeavesOutSearch(t *testing.T) {
	for kind, want := range map[string]bool{"task": true, "fail": false, "succeed": false} {
		if got := slices.Contains(fieldsOf(kind), "search"); got != want {
			t.Errorf("%s steps take search: %v, want %v", kind, got, want)
		}
	}
}
