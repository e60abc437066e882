package definition

import (
	"strings"
	"testing"
)

// A constant that breaks the rule for values is refused when the
// definition is put, as NaN is: a whole number beyond ±2^53 was stored,
// every run of it then failed at its step (`expression`), and as a search
// attribute's constant it was recorded and shown rounded. One an earlier
// version stored still loads, as it did, so its runs go on.
func TestAConstantBeyond2p53IsRefusedWhenPut(t *testing.T) {
	for _, src := range []string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: 9007199254740993 } }\n",
		"name: p\nsteps:\n  - { id: a, succeed: { output: 9007199254740993 } }\n",
		"name: p\nsearch: { n: 9007199254740993 }\nsteps:\n  - { id: a, task: echo }\n",
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: 18446744073709551615 } }\n",
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q no longer loads: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), "beyond ±2^53") || !strings.Contains(err.Error(), "string") {
			t.Errorf("%q: %v; want it refused when put, saying to write the number as a string", src, err)
		}
	}
	d, err := Parse([]byte("name: p\nsearch: { n: 9007199254740992 }\nsteps:\n  - { id: a, task: echo, input: { x: 9007199254740992 } }\n"))
	if err != nil || d.CheckNew() != nil {
		t.Errorf("2^53 refused: %v", err)
	}
}

// An input_schema's bound beyond an int64 (a uint64's maximum) is taken,
// as before, and checks inputs.
func TestAnInputSchemaBoundBeyondInt64IsTaken(t *testing.T) {
	d, err := Parse([]byte("name: p\ninput_schema: { type: object, properties: { id: { type: integer, minimum: 0, maximum: 18446744073709551615 } } }\nsteps:\n  - { id: a, task: echo }\n"))
	if err != nil || d.CheckNew() != nil {
		t.Fatalf("%v", err)
	}
	if err := d.CheckInput(map[string]any{"id": int64(-1)}); err == nil {
		t.Error("an input below the schema's minimum passed")
	}
	if err := d.CheckInput(map[string]any{"id": int64(7)}); err != nil {
		t.Errorf("an input within the schema: %v", err)
	}
}
