package value

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// nest wraps leaf in depth lists.
func nest(depth int, leaf any) any {
	v := leaf
	for range depth {
		v = []any{v}
	}
	return v
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    any
		lim  Limits
		want string // "" accepts; else the whole message
	}{
		{"scalars", []any{nil, true, int64(-3), 2.5, "café", map[string]any{"ключ": "значение"}}, Limits{}, ""},
		{"at the depth limit", nest(MaxDepth, int64(1)), Limits{}, ""},
		{"empty containers at the limit", nest(MaxDepth-1, map[string]any{}), Limits{}, ""},
		{"one level too deep", map[string]any{"a": nest(MaxDepth, int64(1))}, Limits{},
			"v.a" + strings.Repeat("[0]", 26) + "..." + strings.Repeat("[0]", 20) + ": lists and maps nest deeper than 64 levels: flatten the value"},
		{"own depth limit", map[string]any{"a": []any{[]any{}}}, Limits{MaxDepth: 2}, "v.a[0]: lists and maps nest deeper than 2 levels: flatten the value"},
		{"string not UTF-8", map[string]any{"list": []any{"ok", "caf\xe9"}}, Limits{},
			"v.list[1]: string is not valid UTF-8 (byte 0xe9 at offset 3): send text as UTF-8, and binary data base64-encoded"},
		{"key not UTF-8", map[string]any{"a": map[string]any{"k\xff": int64(1)}}, Limits{},
			`v.a["k\xff"]: map key is not valid UTF-8 (byte 0xff at offset 1): send text as UTF-8, and binary data base64-encoded`},
		{"odd key named quoted", map[string]any{"a b": math.NaN()}, Limits{}, `v["a b"]: number NaN is not finite: numbers must be finite`},
		{"infinity", []any{math.Inf(-1)}, Limits{}, "v[0]: number -Inf is not finite: numbers must be finite"},
		{"not normalized", map[string]any{"n": 3}, Limits{}, "v.n: a int is not a JSON value"},
		{"size", []any{strings.Repeat("x", 100)}, Limits{MaxBytes: 100}, "v: is over 100 bytes: make it smaller"},
		{"size fits", []any{strings.Repeat("x", 80)}, Limits{MaxBytes: 100}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("v", tc.v, tc.lim)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v does not wrap ErrInvalid", err)
			}
		})
	}
}

// A value nested far too deeply is refused without walking all of it.
func TestCheckStopsAtTheLimit(t *testing.T) {
	if err := Check("v", nest(1_000_000, nil), Limits{}); err == nil {
		t.Fatal("accepted")
	}
}
