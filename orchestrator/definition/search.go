package definition

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore/value"
)

// Limits on search attributes.
const (
	// MaxSearchAttributes bounds the distinct search attribute names a
	// definition sets, on itself and its steps together.
	MaxSearchAttributes = 32
	// MaxSearchString bounds a search attribute's string value, in bytes.
	MaxSearchString = 256
)

// searchNameRE matches search attribute names.
var searchNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ErrSearchValue is matched by the error of a search attribute whose value
// cannot be recorded: not a string, number, bool or timestamp, or a string
// longer than MaxSearchString.
var ErrSearchValue = errors.New("invalid search attribute value")

// SearchAttr is one search attribute a definition or a step sets.
type SearchAttr struct {
	// Name is the attribute's name: letters, digits and _, not starting
	// with a digit, at most 64.
	Name string
	// Source is the value as written: an expression in ${ }, a string
	// with expressions in it, or a constant.
	Source string

	field string
	value *Template
}

// Eval computes the attribute's value in scope s: a string, an int64 or
// float64, a bool, or for a timestamp a time.Time in UTC. Failures are
// *EvalError; a value of another type or a string longer than
// MaxSearchString or not valid UTF-8 also matches ErrSearchValue.
func (a *SearchAttr) Eval(s Scope) (any, error) {
	act := &activation{scope: &s}
	var v any
	if n, ok := a.value.root.(*exprNode); ok {
		out, _, err := n.prg.Eval(act)
		if err != nil {
			return nil, &EvalError{Field: a.field, Err: n.prg.explain(err, act, n.src)}
		}
		if v, err = searchValue(out); err != nil {
			return nil, &EvalError{Field: a.field, Err: err}
		}
	} else {
		var err error
		if v, err = a.value.root.eval(act); err != nil {
			return nil, err
		}
	}
	var inv *value.InvalidError
	switch x := v.(type) {
	case int64, float64:
		// A whole number beyond ±2^53 the API would show rounded.
		if errors.As(value.Check("", x, value.Limits{}), &inv) {
			return nil, &EvalError{Field: a.field, Err: fmt.Errorf("%w: %s", ErrSearchValue, inv.Reason)}
		}
	}
	if str, ok := v.(string); ok && len(str) > MaxSearchString {
		return nil, &EvalError{Field: a.field, Err: fmt.Errorf("%w: a string of %d bytes, longer than %d", ErrSearchValue, len(str), MaxSearchString)}
	} else if ok && !utf8.ValidString(str) {
		return nil, &EvalError{Field: a.field, Err: fmt.Errorf("%w: a string that is not valid UTF-8", ErrSearchValue)}
	}
	return v, nil
}

// EvalSearch evaluates attrs in scope s into a map of their values by
// name; it stops at the first that fails (see SearchAttr.Eval).
func EvalSearch(attrs []*SearchAttr, s Scope) (map[string]any, error) {
	out := make(map[string]any, len(attrs))
	for _, a := range attrs {
		v, err := a.Eval(s)
		if err != nil {
			return nil, err
		}
		out[a.Name] = v
	}
	return out, nil
}

// searchValue converts the CEL result of a search attribute's expression.
func searchValue(v ref.Val) (any, error) {
	if out, ok, err := celPrimitive(v); ok {
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSearchValue, err)
		}
		return out, nil
	}
	switch x := v.(type) {
	case types.Timestamp:
		return x.Time.UTC(), nil
	case *types.Optional:
		if x.HasValue() {
			return searchValue(x.GetValue())
		}
		return nil, fmt.Errorf("%w: an empty optional; give a default with .orValue()", ErrSearchValue)
	case *types.Err:
		return nil, x
	}
	return nil, fmt.Errorf("%w: it is %s, not a string, number, bool or timestamp", ErrSearchValue, celTypeName(v))
}

// celTypeName names the type of a CEL value for people.
func celTypeName(v ref.Val) string {
	switch v.Type() {
	case types.NullType:
		return "null"
	case types.ListType:
		return "a list"
	case types.MapType:
		return "a map"
	case types.BytesType:
		return "bytes"
	case types.DurationType:
		return "a duration"
	}
	return "a " + v.Type().TypeName()
}

// search parses a search mapping of the definition (label "") or of a
// step; its expressions compile at at.
func (p *parser) search(label string, n *yaml.Node, at exprAt) []*SearchAttr {
	if n.Kind != yaml.MappingNode {
		p.add(label, "search", "must be a mapping of attribute names to values, e.g. { customer: \"${ input.customer }\" }")
		return nil
	}
	names, vals := p.mapping(label, "search", n)
	if len(names) == 0 {
		p.add(label, "search", "must set at least one attribute (or leave search out)")
		return nil
	}
	sort.Strings(names)
	var out []*SearchAttr
	for _, name := range names {
		field := joinField("search", name)
		if !searchNameRE.MatchString(name) {
			p.add(label, field, "invalid name %q: use letters, digits and _, starting with a letter or _ (at most 64)", name)
			continue
		}
		p.searchNames[name] = true
		v := vals[name]
		switch {
		case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
			p.add(label, field, "must not be null: give a string, number, bool or timestamp, e.g. \"${ %s }\"", wantSearch.example())
			continue
		case v.Kind != yaml.ScalarNode:
			p.add(label, field, "must be a string, number, bool or timestamp, e.g. \"${ %s }\", not a list or map", wantSearch.example())
			continue
		}
		t := p.templateOf(label, field, v, at, wantSearch)
		if t == nil {
			continue
		}
		if lit, ok := t.root.(litNode); ok {
			if s, ok := lit.v.(string); ok && len(s) > MaxSearchString {
				p.add(label, field, "is %d bytes long: a search attribute's string is at most %d", len(s), MaxSearchString)
				continue
			}
		}
		out = append(out, &SearchAttr{Name: name, Source: v.Value, field: field, value: t})
	}
	return out
}
