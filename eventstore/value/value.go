package value

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// maxExactFloat is the largest float64 below which every whole number is exact.
const maxExactFloat = 1 << 53

// Normalize converts v into the normalized form. It returns an error for
// values that have no JSON form (channels, functions, non-string map keys).
func Normalize(v any) (any, error) { return normalize(v, false, 0) }

// NormalizeOwned is Normalize for a value its caller owns and shares with
// no one, such as one just decoded: its maps with string keys and its
// lists are normalized in place instead of copied. On an error the value
// may be left half normalized.
func NormalizeOwned(v any) (any, error) { return normalize(v, true, 0) }

// maxNormalizeDepth bounds the nesting Normalize walks: far deeper than
// anything Check lets through (MaxStoredDepth), so Check still names the
// limit, but a value that contains itself fails rather than recursing
// until the stack overflows, which would end the process.
const maxNormalizeDepth = 10 * MaxStoredDepth

// normalize is Normalize, in place for maps and lists when owned; depth
// counts the lists and maps around v.
func normalize(v any, owned bool, depth int) (any, error) {
	if n, ok, err := scalar(v); ok {
		return n, err
	}
	if depth >= maxNormalizeDepth {
		return nil, fmt.Errorf("value nests deeper than %d levels (does it contain itself?)", maxNormalizeDepth)
	}
	switch x := v.(type) {
	case json.Number:
		return number(x)
	case []any:
		return normalizeList(x, owned, depth+1)
	case map[string]any:
		return normalizeMap(x, owned, depth+1)
	case map[any]any:
		return normalizeAnyMap(x, owned, depth+1)
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out, nil
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = e
		}
		return out, nil
	}
	// Fall back to a JSON round trip for structs and other typed values,
	// which would write a string that is not UTF-8 as another.
	if err := checkText(reflect.ValueOf(v), "", depth); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("value of type %T has no JSON form: %w", v, err)
	}
	return FromJSON(b)
}

// scalar normalizes nil, booleans, strings and Go's numeric types; ok is
// false for anything else.
func scalar(v any) (n any, ok bool, err error) {
	switch x := v.(type) {
	case nil, bool, string, int64:
		return x, true, nil
	case int:
		return int64(x), true, nil
	case int8:
		return int64(x), true, nil
	case int16:
		return int64(x), true, nil
	case int32:
		return int64(x), true, nil
	case uint:
		n, err := uintValue(uint64(x))
		return n, true, err
	case uint8:
		return int64(x), true, nil
	case uint16:
		return int64(x), true, nil
	case uint32:
		return int64(x), true, nil
	case uint64:
		n, err := uintValue(x)
		return n, true, err
	case float32:
		return floatValue(float64(x)), true, nil
	case float64:
		return floatValue(x), true, nil
	}
	return nil, false, nil
}

// number normalizes a JSON number: an int64 when it is one, else a float.
// A whole number must come back as itself, as Check holds int64s to
// ±2^53: one written as one (no fraction, no exponent) must fit an int64,
// and one written otherwise must be the number its float is written back
// as (9007199254740993.0 and 1.2345678901234567891e19 would come back as
// other whole numbers; 1e20 comes back as 1e+20). A fraction comes back
// to the float64's precision, as any JSON reader takes it.
func number(x json.Number) (any, error) {
	if i, err := x.Int64(); err == nil {
		return i, nil
	}
	text := string(x)
	if !strings.ContainsAny(text, ".eE") {
		return nil, numberError(beyondExact(text, ""))
	}
	f, err := x.Float64()
	if errors.Is(err, strconv.ErrRange) {
		return nil, numberError(fmt.Sprintf("number %s is beyond the range of the API's numbers (float64); send it as a string", text))
	}
	if err != nil {
		return nil, fmt.Errorf("number %q: %w", x, err)
	}
	if math.Abs(f) >= maxExactFloat {
		// Every float64 this large is whole: the text's number must be
		// the one it is written back as, or be no whole number.
		if back := strconv.FormatFloat(f, 'g', -1, 64); !sameNumber(text, back) && !notWhole(text) {
			return nil, numberError(beyondExact(text, back))
		}
	}
	return floatValue(f), nil
}

// CheckNumber reports whether the JSON number n, as written, is one a
// value may hold and every reader reads back as itself: the rule FromJSON
// and Check apply together (a whole number within ±2^53; a number written
// with a fraction or exponent that is the one its float64 is written back
// as, or no whole number). A door whose decoder reads numbers as float64s
// before Weft sees them (the API's JSON) checks the text with it first, so
// 9007199254740993 is refused rather than taken as 9007199254740992. The
// error matches ErrInvalid.
func CheckNumber(n json.Number) error {
	v, err := number(n)
	if err != nil {
		return err
	}
	if i, ok := v.(int64); ok && (i > maxExactFloat || i < -maxExactFloat) {
		return numberError(beyondExact(string(n), strconv.FormatFloat(float64(i), 'g', -1, 64)))
	}
	return nil
}

// beyondExact says why the whole number n (as written) is refused, and
// what it would read back as when that is known (back, else "").
func beyondExact(n, back string) string {
	if back != "" {
		back = ": it would read back as " + back
	}
	return "whole number " + n + " is beyond ±2^53 (9007199254740992), what the API's numbers (float64) carry exactly" + back + "; send it as a string"
}

// numberError is a number refused for what it would read back as; it
// matches ErrInvalid, as Check's refusals do.
type numberError string

func (e numberError) Error() string { return string(e) }
func (e numberError) Unwrap() error { return ErrInvalid }

// maxNumberText bounds the length of a number sameNumber and notWhole
// read exactly; longer text counts as a whole number not carried.
const maxNumberText = 400

// exact returns the JSON number s as an exact rational, or false when it
// is too long to read so.
func exact(s string) (*big.Rat, bool) {
	if e := exponent(s); len(s) > maxNumberText || e > maxNumberText || e < -maxNumberText {
		return nil, false
	}
	return new(big.Rat).SetString(s)
}

// sameNumber reports whether the JSON numbers a and b, b written back
// from a float64, are the same number.
func sameNumber(a, b string) bool {
	if a == b {
		return true
	}
	x, ok := exact(a)
	y, ok2 := exact(b)
	return ok && ok2 && x.Cmp(y) == 0
}

// notWhole reports whether the JSON number s has a fraction.
func notWhole(s string) bool {
	x, ok := exact(s)
	return ok && !x.IsInt()
}

// exponent returns the exponent written in the JSON number s (0 if none;
// beyond the int range, a large one of its sign).
func exponent(s string) int {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return 0
	}
	e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	if err != nil {
		if strings.HasPrefix(s[i+1:], "-") {
			return math.MinInt
		}
		return math.MaxInt
	}
	return e
}

// errorAt names where err was found, at a list index or map key at depth:
// the first levels of the path, so a value nested thousands deep gets an
// error message of a few lines.
func errorAt(at string, depth int, err error) error {
	if depth > 16 {
		return err
	}
	return fmt.Errorf("%s: %w", at, err)
}

func normalizeList(x []any, owned bool, depth int) (any, error) {
	out := x
	if !owned {
		out = make([]any, len(x))
	}
	for i, e := range x {
		n, err := normalize(e, owned, depth)
		if err != nil {
			return nil, errorAt(fmt.Sprintf("[%d]", i), depth, err)
		}
		out[i] = n
	}
	return out, nil
}

func normalizeMap(x map[string]any, owned bool, depth int) (any, error) {
	out := x
	if !owned {
		out = make(map[string]any, len(x))
	}
	for k, e := range x {
		n, err := normalize(e, owned, depth)
		if err != nil {
			return nil, errorAt(k, depth, err)
		}
		out[k] = n
	}
	return out, nil
}

// normalizeAnyMap normalizes a map whose keys must all be strings into a
// new map with string keys.
func normalizeAnyMap(x map[any]any, owned bool, depth int) (any, error) {
	out := make(map[string]any, len(x))
	for k, e := range x {
		ks, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("map key %v is not a string", k)
		}
		n, err := normalize(e, owned, depth)
		if err != nil {
			return nil, errorAt(ks, depth, err)
		}
		out[ks] = n
	}
	return out, nil
}

// uintValue is u as an int64; one beyond is refused, as the whole
// numbers beyond ±2^53 are (Check).
func uintValue(u uint64) (any, error) {
	if u <= math.MaxInt64 {
		return int64(u), nil
	}
	return nil, numberError(beyondExact(strconv.FormatUint(u, 10), ""))
}

func floatValue(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < maxExactFloat {
		return int64(f)
	}
	return f
}

// FromJSON parses JSON text into a normalized value. Text that is not
// valid UTF-8 is refused (a decoder would replace what it cannot read), and
// so is a string escape that is half a surrogate pair (CheckSurrogates)
// and an object with a key twice (a decoder would keep one of the values,
// and the API's refuses it).
func FromJSON(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("invalid JSON: the text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, syntaxError(b, err)
	}
	// Only white space may follow the value. (dec.More would take a
	// closing ']' or '}' for the end, and drop whatever came after it.)
	if rest := bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("invalid JSON: unexpected data after the value, at byte %d: send one JSON value", len(b)-len(rest))
	}
	if err := CheckSurrogates(b); err != nil {
		return nil, err
	}
	if err := uniqueKeys(b); err != nil {
		return nil, err
	}
	return Normalize(v)
}

// syntaxError says where the JSON text b that the decoder refused with
// err went wrong, and what to send instead where that is plain.
func syntaxError(b []byte, err error) error {
	var se *json.SyntaxError
	switch {
	case bytes.HasPrefix(b, []byte("\xef\xbb\xbf")):
		return errors.New("invalid JSON: the text begins with a byte order mark (EF BB BF): send the JSON without it")
	case errors.Is(err, io.EOF):
		return errors.New("invalid JSON: the text holds no value, only white space: send a JSON value (null for none)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("invalid JSON: the text ends inside a value, at byte %d: send the whole value", len(b))
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON: %w, at byte %d", err, max(se.Offset-1, 0))
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// CheckSurrogates refuses JSON text b whose strings hold an escape of
// half a UTF-16 surrogate pair ("\ud800" alone): it names no character, so
// a decoder reads it as U+FFFD, and the text would not read back as sent.
// A pair ("\ud83d\ude00") is one character and is taken.
func CheckSurrogates(b []byte) error {
	if !bytes.Contains(b, []byte(`\u`)) {
		return nil
	}
	// hex returns the code unit of the \uXXXX escape at b[i:], or -1.
	hex := func(i int) rune {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return -1
		}
		r, err := strconv.ParseUint(string(b[i+2:i+6]), 16, 16)
		if err != nil {
			return -1
		}
		return rune(r)
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		r := hex(i)
		switch {
		case r < 0xd800 || r > 0xdfff:
			i++ // past the escaped character (or the u)
			continue
		case r <= 0xdbff:
			if lo := hex(i + 6); lo >= 0xdc00 && lo <= 0xdfff {
				i += 11
				continue
			}
		}
		return fmt.Errorf("invalid JSON: the string escape %s at byte %d is half a UTF-16 surrogate pair, no character: escape a character beyond U+FFFF as a pair (\\ud83d\\ude00), or send it as UTF-8", b[i:i+6], i)
	}
	return nil
}

// uniqueKeys reports an object of b, valid JSON, with a key twice.
func uniqueKeys(b []byte) error {
	type object struct {
		keys    map[string]bool
		wantKey bool
	}
	var open []*object // nil for an array
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	valueDone := func() {
		if n := len(open); n > 0 && open[n-1] != nil {
			open[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end: b was decoded already
		}
		top := (*object)(nil)
		if n := len(open); n > 0 {
			top = open[n-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				open = append(open, &object{keys: map[string]bool{}, wantKey: true})
			case '[':
				open = append(open, nil)
			default:
				open = open[:len(open)-1]
				valueDone()
			}
		case string:
			if top != nil && top.wantKey {
				if top.keys[t] {
					return fmt.Errorf("invalid JSON: the key %q appears twice in one object", t)
				}
				top.keys[t], top.wantKey = true, false
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// ToJSON returns the JSON text of a value.
func ToJSON(v any) ([]byte, error) {
	return json.Marshal(v)
}

// FromProto converts a protobuf Value (nil means JSON null) into a normalized value.
func FromProto(v *structpb.Value) (any, error) {
	if v == nil {
		return nil, nil
	}
	return Normalize(v.AsInterface())
}

// ToProto converts a value into a protobuf Value.
func ToProto(v any) (*structpb.Value, error) {
	n, err := Normalize(v)
	if err != nil {
		return nil, err
	}
	return structpb.NewValue(toProtoable(n))
}

// toProtoable turns int64 into float64 (protobuf Values have one number type).
func toProtoable(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toProtoable(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toProtoable(e)
		}
		return out
	}
	return v
}

// SortedKeys returns m's keys in order.
func SortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
