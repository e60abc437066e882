package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore/value"
)

// jsonCodec is connect-go's JSON codec (protojson) with a check before it
// and without its leniency: a number it would read as a float64 other
// than the one written (9007199254740993 as 9007199254740992) is refused,
// naming where it is, rather than taken rounded; and a field or enum
// value it does not know is refused, saying what there is, rather than
// dropped (connect-go's discards them, for clients newer than the
// server: such a client is told which field this server does not know). The request's values (a start's input, a signal's payload)
// arrive as google.protobuf.Value, whose numbers are float64s; no request
// has a 64-bit integer field, so any such number is one of theirs.
type jsonCodec struct{ name string }

// jsonCodecs are the codecs for the JSON content types connect-go serves.
func jsonCodecs() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithCodec(jsonCodec{"json"}),
		connect.WithCodec(jsonCodec{"json; charset=utf-8"}),
	}
}

// Name returns the codec's content-type name.
func (c jsonCodec) Name() string { return c.name }

// Marshal writes message as protojson.
func (jsonCodec) Marshal(message any) ([]byte, error) {
	m, ok := message.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", message)
	}
	return protojson.MarshalOptions{}.Marshal(m)
}

// Unmarshal reads binary into message, refusing a number it would round.
func (jsonCodec) Unmarshal(binary []byte, message any) error {
	m, ok := message.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", message)
	}
	if len(binary) == 0 {
		return errors.New("zero-length payload is not a valid JSON object")
	}
	if err := checkNumbers(binary); err != nil {
		return err
	}
	// protojson refuses half a surrogate pair too, saying "unexpected
	// EOF": say what it is.
	if err := value.CheckSurrogates(binary); err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(binary, m); err != nil {
		// (protojson's errors begin "proto:" and a space of either kind.)
		msg := strings.TrimLeft(strings.TrimPrefix(err.Error(), "proto:"), " \u00a0")
		return fmt.Errorf("%s%s", msg, hint(err, m.ProtoReflect().Descriptor()))
	}
	return nil
}

var (
	unknownField = regexp.MustCompile(`unknown field "([^"]*)"`)
	badEnum      = regexp.MustCompile(`invalid value for enum field (\w+)`)
)

// hint says what to send instead, for an error protojson gave reading a
// request of type md: a field it does not know is refused (it would
// otherwise be dropped, and a misspelt workflowId start a run under a
// generated id), with the one meant, if any, and the fields there are; an
// enum value it does not know, with the values there are.
func hint(err error, md protoreflect.MessageDescriptor) string {
	fields := md.Fields()
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		var names []string
		meant, also := "", ""
		for i := range fields.Len() {
			f := fields.Get(i)
			names = append(names, f.JSONName())
			if fold(f.JSONName()) == fold(m[1]) {
				meant = fmt.Sprintf(" (did you mean %q?)", f.JSONName())
			}
			if also == "" && f.TextName() != f.JSONName() {
				also = fmt.Sprintf(" (or their proto names, as %s)", f.TextName())
			}
		}
		if len(names) == 0 {
			return meant + fmt.Sprintf("; %s takes no fields", md.Name())
		}
		return meant + fmt.Sprintf("; the fields of %s are %s%s", md.Name(), strings.Join(names, ", "), also)
	}
	if m := badEnum.FindStringSubmatch(err.Error()); m != nil {
		f := fields.ByName(protoreflect.Name(m[1]))
		if f == nil {
			f = fields.ByJSONName(m[1])
		}
		if f == nil || f.Enum() == nil {
			return ""
		}
		var names []string
		for i := range f.Enum().Values().Len() {
			names = append(names, string(f.Enum().Values().Get(i).Name()))
		}
		return fmt.Sprintf("; %s is one of %s (or its number)", f.JSONName(), strings.Join(names, ", "))
	}
	return ""
}

// fold is a field name as compared for a hint: lower case, without '_'.
func fold(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "") }

// checkNumbers refuses the first number of the JSON text b that
// value.CheckNumber refuses, naming its place (input.ids[2], say). Text
// with no run of 16 digits holds none (a number of at most 15 significant
// digits reads back as itself) and is not parsed; invalid JSON is left to
// protojson to report.
func checkNumbers(b []byte) error {
	if !longDigits(b) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var path []step
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or not JSON: protojson says so
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				path = append(path, step{object: d == '{', wantKey: d == '{'})
				continue
			}
			path = path[:max(len(path)-1, 0)]
		} else if len(path) > 0 && path[len(path)-1].wantKey {
			path[len(path)-1].key, _ = tok.(string)
			path[len(path)-1].wantKey = false
			continue
		} else if n, ok := tok.(json.Number); ok {
			if err := value.CheckNumber(n); err != nil && !exactWhole(n) {
				return fmt.Errorf("%s: %w", where(path), err)
			}
		}
		// A value ended: its object wants a key next, its list counts it.
		if len(path) > 0 {
			if top := &path[len(path)-1]; top.object {
				top.wantKey = true
			} else {
				top.index++
			}
		}
	}
}

// ValueFromJSON reads JSON text b as the API's JSON reads a value in a
// request (a start's input, a signal's payload): a number it would round
// is refused, a whole number a float64 holds exactly is taken. The CLI
// reads its --input and --payload with it, so it sends what the API's
// JSON would take.
func ValueFromJSON(b []byte) (*structpb.Value, error) {
	v := &structpb.Value{}
	if err := (jsonCodec{"json"}).Unmarshal(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

// exactWhole reports whether n is a whole number written in plain digits
// that a float64 holds exactly (2^53+2, 1e20 as JSON.stringify writes
// it): protojson reads it as itself, and the binary API takes it as a
// float64 all the same.
func exactWhole(n json.Number) bool {
	s := string(n)
	if len(s) > 400 || strings.ContainsAny(s, ".eE") {
		return false
	}
	i, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return false
	}
	_, acc := new(big.Float).SetInt(i).Float64()
	return acc == big.Exact
}

// step is one level of checkNumbers' place in the text.
type step struct {
	object, wantKey bool
	key             string
	index           int
}

// where names the place path is at: keys joined by dots, list indexes in
// brackets.
func where(path []step) string {
	var b strings.Builder
	for _, s := range path {
		switch {
		case s.object && b.Len() > 0:
			b.WriteString("." + s.key)
		case s.object:
			b.WriteString(s.key)
		default:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		}
	}
	if b.Len() == 0 {
		return "the request"
	}
	return b.String()
}

// longDigits reports whether b has 16 digits in a row, a '.' between them
// allowed.
func longDigits(b []byte) bool {
	n := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if n++; n >= 16 {
				return true
			}
		case c == '.':
		default:
			n = 0
		}
	}
	return false
}
