package value_test

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/value"
)

type (
	name   string
	record struct {
		ID    string `json:"id"`
		Note  *name  `json:"note,omitempty"`
		Skip  string `json:"-"`
		Bytes []byte
		inner string
	}
)

// A typed value (a struct, a named string type) holding a string that is
// not UTF-8 is refused, naming where, as a plain string is: the JSON
// round trip Normalize takes for it would write U+FFFD in its place, and
// the step would record another string than its handler gave. Bytes are
// taken (as base64), and so are fields JSON leaves out.
func TestNormalizeRefusesATypedStringThatIsNotText(t *testing.T) {
	bad := name("a\xffb")
	for _, c := range []struct {
		v    any
		want string
	}{
		{record{ID: "\xff"}, "id: string is not valid UTF-8 (byte 0xff at offset 0)"},
		{&record{ID: "ok", Note: &bad}, "note: string is not valid UTF-8 (byte 0xff at offset 1)"},
		{name("\xfe"), "string is not valid UTF-8 (byte 0xfe"},
		{[]name{"a", "\xff"}, "[1]: string"},
		{map[string]any{"list": []record{{}, {ID: "\xc3"}}}, `list: [1].id: string`},
		{map[name]int{"\xff": 1}, "(a key): string is not valid UTF-8"},
		{map[string][]name{"k": {"\xff"}}, `["k"][0]: string`},
	} {
		_, err := value.Normalize(c.v)
		if err == nil || !errors.Is(err, value.ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "base64") {
			t.Errorf("Normalize(%#v) = %v; want it refused saying %q", c.v, err, c.want)
		}
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, v := range []any{
		record{ID: "é", Skip: "\xff", Bytes: []byte{0xff}, inner: "\xff"},
		struct{ At time.Time }{at}, net.ParseIP("::1"), []name{"a"},
	} {
		if _, err := value.Normalize(v); err != nil {
			t.Errorf("Normalize(%#v): %v", v, err)
		}
	}
}
