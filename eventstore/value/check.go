package value

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is how deeply lists and maps may nest in a value that enters
// Weft (inputs, signal payloads, trigger events, task outputs): [1] is one
// level, {"a": [1]} two. No real document comes near it, and it leaves
// ample room below the 256 levels a history record decodes
// (eventstore/events), which the event around a value uses a few of.
const MaxDepth = 64

// MaxBuiltDepth is how deeply the values a workflow builds may nest (the
// results of its templates and expressions), so that they can wrap values
// that entered at MaxDepth. Container steps' outputs wrap values once more
// per level of steps (at most 32), still well within what a record decodes.
const MaxBuiltDepth = 2 * MaxDepth

// MaxStoredDepth is the deepest value Weft records: what backstops check
// where values of any origin meet (a result from any executor, a child
// workflow's output). It leaves room for values built at MaxBuiltDepth
// inside container outputs, and stays below the 256 levels a record
// decodes, counting the few the event around the value takes.
const MaxStoredDepth = 200

// ErrInvalid is wrapped by every error Check returns.
var ErrInvalid = errors.New("invalid value")

// Limits bound the values Check accepts.
type Limits struct {
	// MaxDepth bounds nesting (see the MaxDepth constant). Zero means
	// MaxDepth.
	MaxDepth int
	// MaxBytes bounds the value's size: string and key bytes plus 9 bytes
	// for every other element, an upper bound of its stored encoding.
	// Zero means no bound.
	MaxBytes int
}

// InvalidError says what makes a value unacceptable, and where.
type InvalidError struct {
	// Field names the value ("input", "payload", "output").
	Field string
	// Path leads from the value to the offending element, as in
	// ".items[3].name" or `["odd key"]`; empty for the value itself.
	Path string
	// Reason says what is wrong and what to do about it.
	Reason string
}

// Error implements error.
func (e *InvalidError) Error() string { return e.Field + e.Path + ": " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Check reports whether v, a normalized value, can be recorded and read
// back: it nests at most lim.MaxDepth levels, fits lim.MaxBytes, its
// strings and map keys are valid UTF-8, its numbers are finite, its
// whole numbers within ±2^53 (the API carries numbers as float64s: a
// whole number beyond, kept exact in the run, would be shown rounded by
// every reader, 9007199254740993 as 9007199254740992), and it
// holds only the normalized types (nil, bool, int64, float64, string,
// []any, map[string]any). The error is an *InvalidError that names the
// offending element under field.
func Check(field string, v any, lim Limits) error {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = MaxDepth
	}
	c := checker{lim: lim}
	if c.walk(v, 0) {
		return nil
	}
	// Say the same whatever the maps' order: find the first problem in
	// key order.
	c = checker{lim: lim, sorted: true}
	c.walk(v, 0)
	path := shortPath(c.path)
	if c.whole {
		path = ""
	}
	return &InvalidError{Field: field, Path: path, Reason: c.reason}
}

type checker struct {
	lim    Limits
	size   int
	path   []string // reversed: the offending element's segment first
	reason string
	whole  bool // the reason is about the whole value (its size)
	sorted bool // walk maps in key order
}

// walk checks v at depth (the levels around it), and on failure records
// why and, as it returns, the path.
func (c *checker) walk(v any, depth int) bool {
	c.size += 9
	switch x := v.(type) {
	case nil, bool:
	case int64:
		if x > maxExactFloat || x < -maxExactFloat {
			return c.fail(beyondExact(strconv.FormatInt(x, 10), strconv.FormatFloat(float64(x), 'g', -1, 64)))
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return c.fail(fmt.Sprintf("number %v is not finite: numbers must be finite", x))
		}
	case string:
		c.size += len(x)
		if !utf8.ValidString(x) {
			return c.fail(notUTF8("string", x))
		}
	case []any:
		if depth >= c.lim.MaxDepth {
			return c.fail(c.tooDeep())
		}
		for i, e := range x {
			if !c.walk(e, depth+1) {
				c.path = append(c.path, "["+strconv.Itoa(i)+"]")
				return false
			}
		}
	case map[string]any:
		if depth >= c.lim.MaxDepth {
			return c.fail(c.tooDeep())
		}
		if c.sorted {
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if !c.entry(k, x[k], depth) {
					return false
				}
			}
			break
		}
		for k, e := range x {
			if !c.entry(k, e, depth) {
				return false
			}
		}
	default:
		return c.fail(fmt.Sprintf("a %T is not a JSON value", v))
	}
	if c.lim.MaxBytes > 0 && c.size > c.lim.MaxBytes {
		c.whole = true
		return c.fail(fmt.Sprintf("is over %d bytes: make it smaller", c.lim.MaxBytes))
	}
	return true
}

// entry checks a map's entry k: e, the map being at depth.
func (c *checker) entry(k string, e any, depth int) bool {
	c.size += len(k) + 9
	if !utf8.ValidString(k) {
		c.path = append(c.path, keySegment(k))
		return c.fail(notUTF8("map key", k))
	}
	if !c.walk(e, depth+1) {
		c.path = append(c.path, keySegment(k))
		return false
	}
	return true
}

func (c *checker) fail(reason string) bool {
	if c.reason == "" {
		c.reason = reason
	}
	return false
}

func (c *checker) tooDeep() string {
	return fmt.Sprintf("lists and maps nest deeper than %d levels: flatten the value", c.lim.MaxDepth)
}

func notUTF8(what, s string) string {
	at := 0
	for at < len(s) {
		r, n := utf8.DecodeRuneInString(s[at:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		at += n
	}
	return fmt.Sprintf("%s is not valid UTF-8 (byte 0x%02x at offset %d): send text as UTF-8, and binary data base64-encoded", what, s[at], at)
}

// keySegment is k as a path segment: .k for an identifier, else ["k"]
// quoted in ASCII (and shortened), so paths are always valid text.
func keySegment(k string) string {
	ident := k != ""
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			ident = false
			break
		}
	}
	if ident && len(k) <= 40 {
		return "." + k
	}
	if len(k) > 40 {
		k = k[:40] + "..."
	}
	return "[" + strconv.QuoteToASCII(k) + "]"
}

// shortPath joins the reversed segments, eliding whole segments from the
// middle of a long path.
func shortPath(rev []string) string {
	n := 0
	for _, seg := range rev {
		n += len(seg)
	}
	var b strings.Builder
	if n <= 160 {
		for i := len(rev) - 1; i >= 0; i-- {
			b.WriteString(rev[i])
		}
		return b.String()
	}
	head, i := 0, len(rev)-1
	for ; i >= 0 && head+len(rev[i]) <= 80; i-- {
		head += len(rev[i])
		b.WriteString(rev[i])
	}
	tail, j := 0, 0
	for ; j < i && tail+len(rev[j]) <= 60; j++ {
		tail += len(rev[j])
	}
	b.WriteString("...")
	for j--; j >= 0; j-- {
		b.WriteString(rev[j])
	}
	return b.String()
}
