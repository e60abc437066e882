package value_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/weftworks/weft/eventstore/value"
)

// raw draws a value as a decoder or a Go caller hands it over: nested
// maps and lists of every numeric type, strings, booleans and nil.
func raw(depth int) *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		kind := rapid.IntRange(0, 12).Draw(t, "kind")
		if depth == 0 && kind >= 10 {
			kind = 0
		}
		switch kind {
		case 0:
			return nil
		case 1:
			return rapid.Bool().Draw(t, "bool")
		case 2:
			return rapid.String().Draw(t, "string")
		case 3:
			return rapid.Int8().Draw(t, "int8")
		case 4:
			return rapid.Uint16().Draw(t, "uint16")
		case 5:
			return rapid.Int64().Draw(t, "int64")
		case 6:
			return rapid.Uint64Range(0, math.MaxInt64).Draw(t, "uint64")
		case 7:
			return rapid.Float32().Draw(t, "float32")
		case 8:
			return rapid.Float64Range(-1e6, 1e6).Draw(t, "float64")
		case 9:
			return json.Number(strconv.Itoa(rapid.Int().Draw(t, "number")))
		case 10:
			return rapid.SliceOfN(raw(depth-1), 0, 4).Draw(t, "list")
		case 11:
			return rapid.MapOfN(rapid.StringN(0, 3, 3), raw(depth-1), 0, 4).Draw(t, "map")
		default:
			m := map[any]any{}
			for k, v := range rapid.MapOfN(rapid.StringN(0, 3, 3), raw(depth-1), 0, 3).Draw(t, "anymap") {
				m[k] = v
			}
			return m
		}
	})
}

// deepCopy copies v's maps and lists.
func deepCopy(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case map[any]any:
		out := make(map[any]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	}
	return v
}

// NormalizeOwned gives what Normalize gives, and Normalize leaves its
// argument as it was (it copies; NormalizeOwned may not).
func TestNormalizeOwnedIsNormalize(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := raw(3).Draw(t, "v")
		before := deepCopy(v)
		want, err := value.Normalize(v)
		if err != nil {
			t.Fatalf("Normalize: %v", err)
		}
		if !reflect.DeepEqual(v, before) {
			t.Fatalf("Normalize changed its argument: %#v, was %#v", v, before)
		}
		got, err := value.NormalizeOwned(deepCopy(v))
		if err != nil {
			t.Fatalf("NormalizeOwned: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("NormalizeOwned: %#v, Normalize: %#v", got, want)
		}
	})
}

// A value with no JSON form is refused either way, naming where it is.
func TestNormalizeOwnedRefuses(t *testing.T) {
	v := map[string]any{"a": []any{1, map[any]any{2: "x"}}}
	_, err1 := value.Normalize(deepCopy(v))
	_, err2 := value.NormalizeOwned(deepCopy(v))
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Fatalf("Normalize: %v; NormalizeOwned: %v", err1, err2)
	}
}

// A value that contains itself is refused, with a short message, rather
// than recursed into until the stack overflows (which ends the process;
// the stack is bounded here so that it does so quickly).
func TestNormalizeRefusesAValueThatContainsItself(t *testing.T) {
	defer debug.SetMaxStack(debug.SetMaxStack(64 << 20))
	m := map[string]any{}
	m["self"] = []any{m}
	for name, normalize := range map[string]func(any) (any, error){"Normalize": value.Normalize, "NormalizeOwned": value.NormalizeOwned} {
		_, err := normalize(m)
		if err == nil || !strings.Contains(err.Error(), "does it contain itself?") || len(err.Error()) > 512 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestFromJSONRefusesAKeyTwice(t *testing.T) {
	for _, in := range []string{`{"a":1,"a":2}`, `{"x":{"a":[1,{"b":1,"b":2}]}}`, `[{"k":1},{"k":2,"k":3}]`} {
		if _, err := value.FromJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), "appears twice") {
			t.Errorf("FromJSON(%s) = %v, want a key twice refused", in, err)
		}
	}
	for _, in := range []string{`{"a":1,"b":{"a":2}}`, `[{"k":1},{"k":2}]`, `{"a":"a","b":["a","a"]}`, `{}`, `"a"`} {
		if _, err := value.FromJSON([]byte(in)); err != nil {
			t.Errorf("FromJSON(%s) = %v", in, err)
		}
	}
}

// A whole number is taken only as what it reads back as: written as one,
// it is held to an int64 (and Check to ±2^53); written otherwise, to what
// its float64 is written back as. Fractions come back to a float64's
// precision, as any JSON reader takes them.
func TestWholeNumbersThatWouldReadBackAsOthersAreRefused(t *testing.T) {
	for _, text := range []string{
		`12345678901234567891`, `-9223372036854775809`, `9007199254740993.0`, `9.007199254740993e15`,
		`1.2345678901234567891e19`, `1e400`, `1` + strings.Repeat("0", 300) + `1.0`,
	} {
		if v, err := value.FromJSON([]byte(text)); err == nil {
			t.Errorf("%s accepted, as %v", text, v)
		} else if !errors.Is(err, value.ErrInvalid) || !strings.Contains(err.Error(), "send it as a string") {
			t.Errorf("%s: %v; want it to say to send it as a string", text, err)
		}
	}
	for text, want := range map[string]any{
		`0.1`: 0.1, `1e20`: 1e20, `6.02e23`: 6.02e23, `1e23`: 1e23, `12.50`: 12.5, `1.0`: int64(1), `-0.0`: int64(0),
		`9007199254740992`: int64(9007199254740992), `1E+2`: int64(100), `2.5e-3`: 0.0025,
		`0.30000000000000001`: 0.3, `0.1234567890123456789`: 0.12345678901234568, `9007199254740993.5`: 9007199254740994.0,
	} {
		if v, err := value.FromJSON([]byte(text)); err != nil || v != want {
			t.Errorf("%s: %#v, %v; want %#v", text, v, err, want)
		}
	}
	if _, err := value.Normalize(uint64(math.MaxUint64)); err == nil {
		t.Errorf("a uint64 beyond int64 normalized")
	}
}

// Text after the value is refused, a closing bracket among it: it is not
// JSON, and taken it would be dropped.
func TestFromJSONRefusesDataAfterTheValue(t *testing.T) {
	for _, in := range []string{`{"a":1}}`, `1]`, `{"a":1} ] junk`, `[1]]`, `"x"}`, `{"a":1} {"b":2}`, `1 2`} {
		if v, err := value.FromJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), "after the value") {
			t.Errorf("FromJSON(%s) = %v, %v; want the data after the value refused", in, v, err)
		}
	}
	for _, in := range []string{`{"a":1}` + " \t\r\n", " [1] ", `"x"`} {
		if _, err := value.FromJSON([]byte(in)); err != nil {
			t.Errorf("FromJSON(%q) = %v", in, err)
		}
	}
}

// A string escape that is half a surrogate pair names no character: a
// decoder reads it as U+FFFD, so it is refused, saying where, rather than
// taken as another string. A pair, an escaped backslash before "ud800" and
// a character sent as UTF-8 are taken as written.
func TestFromJSONRefusesHalfASurrogatePair(t *testing.T) {
	for in, at := range map[string]string{
		`"\ud800"`:                 `\ud800 at byte 1`,
		`{"\uDC00":1}`:             `\uDC00 at byte 2`,
		`["a","\ud800\u0041"]`:     `\ud800 at byte 6`,
		`["\\\ud83d"]`:             `\ud83d at byte 4`,
		`{"x":"\ude00\ud83d"}`:     `\ude00 at byte 6`,
		`"\ud83d\ude00\ud83d"`:     `\ud83d at byte 13`,
		`"ok \ud83d\ude00 \udfff"`: `\udfff at byte 17`,
	} {
		if _, err := value.FromJSON([]byte(in)); err == nil || !strings.Contains(err.Error(), at) || !strings.Contains(err.Error(), "surrogate pair") {
			t.Errorf("FromJSON(%s) = %v, want it refused naming %s", in, err, at)
		}
	}
	for in, want := range map[string]any{
		`"\ud83d\ude00"`: "😀", `"\\ud800"`: `\ud800`, `"😀"`: "😀", `"\u00e9\uFFFD"`: "é\uFFFD", `{"\\":"\\\\u"}`: map[string]any{`\`: `\\u`},
	} {
		if v, err := value.FromJSON([]byte(in)); err != nil || fmt.Sprint(v) != fmt.Sprint(want) {
			t.Errorf("FromJSON(%s) = %q, %v; want %q", in, v, err, want)
		}
	}
}

// Text that is not JSON is refused saying where, and what to send where
// that is plain: a byte order mark, white space alone, text cut short.
func TestFromJSONSaysWhereTheTextIsNotJSON(t *testing.T) {
	for in, want := range map[string]string{
		"\ufeff{\"a\": 1}": "begins with a byte order mark (EF BB BF): send the JSON without it",
		" \n":              "holds no value, only white space: send a JSON value (null for none)",
		`{"a": [1, 2`:      "ends inside a value, at byte 11",
		`{"a": NaN}`:       "invalid character 'N' looking for beginning of value, at byte 6",
		`{"a": "\x41"}`:    "in string escape code, at byte 8",
	} {
		if _, err := value.FromJSON([]byte(in)); err == nil || !strings.HasPrefix(err.Error(), "invalid JSON: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("FromJSON(%q) = %v; want it refused saying %q", in, err, want)
		}
	}
}
