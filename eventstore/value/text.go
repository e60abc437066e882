package value

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// checkText finds a string in the typed value v (a struct, a named
// string type, a map or slice of them) that is not valid UTF-8, before
// Normalize's JSON round trip would write it as U+FFFD and take another
// string than the one given. at names v's place (".S", "[2]"); depth
// bounds the walk, as a value that contains itself is refused by the
// round trip. The error matches ErrInvalid, as Check's does.
func checkText(v reflect.Value, at string, depth int) error {
	if depth > maxNormalizeDepth || !v.IsValid() {
		return nil
	}
	if v.CanInterface() && v.Type().Implements(jsonMarshaler) {
		return nil // its JSON text is read as sent: FromJSON checks it
	}
	if v.CanInterface() && v.Type().Implements(textMarshaler) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return nil
		}
		if b, err := v.Interface().(encoding.TextMarshaler).MarshalText(); err == nil && !utf8.Valid(b) {
			return textError(at, string(b))
		}
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !utf8.ValidString(s) {
			return textError(at, s)
		}
	case reflect.Pointer, reflect.Interface:
		return checkText(v.Elem(), at, depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // bytes: written as base64
		}
		for i := range v.Len() {
			if err := checkText(v.Index(i), at+"["+strconv.Itoa(i)+"]", depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			ks := fmt.Sprint(k)
			if k.Kind() == reflect.String {
				if ks = k.String(); !utf8.ValidString(ks) {
					return textError(at+" (a key)", ks)
				}
			}
			if err := checkText(it.Value(), at+"["+strconv.Quote(strings.ToValidUTF8(ks, "\uFFFD"))+"]", depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if err := checkText(v.Field(i), at+"."+name, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// textError refuses the string s at at (".S", "[2]"; "" for the value
// itself), which is not valid UTF-8.
func textError(at, s string) error {
	if at = strings.TrimPrefix(at, "."); at != "" {
		at += ": "
	}
	return notText(at + notUTF8("string", s))
}

// notText is a typed value refused for a string that is not UTF-8; it
// matches ErrInvalid, as Check's refusals do.
type notText string

func (e notText) Error() string { return string(e) }
func (e notText) Unwrap() error { return ErrInvalid }
