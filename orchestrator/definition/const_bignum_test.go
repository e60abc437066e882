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

// A number YAML reads as other than the one written is refused when put,
// naming its field, not taken changed: a whole number beyond a uint64 (or
// written with a fraction or exponent) that YAML reads as a rounded
// float64, and one beyond a float64's range, which YAML reads as text.
// The same written quoted, or as the float it is, is taken.
func TestANumberConstantYAMLWouldChangeIsRefusedWhenPut(t *testing.T) {
	for src, want := range map[string]string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: 12345678901234567890123 } }\n":               `field "input.x": whole number 12345678901234567890123 is beyond ±2^53`,
		`{"name": "p", "steps": [{"id": "a", "task": "echo", "input": {"x": [-12345678901234567890123]}}]}`: `field "input.x[0]": whole number -12345678901234567890123`,
		"name: p\nsteps:\n  - { id: a, succeed: { output: 9007199254740993.0 } }\n":                         "9007199254740993.0 is beyond ±2^53",
		"name: p\nsearch: { n: 1.2345678901234567891e19 }\nsteps:\n  - { id: a, task: echo }\n":             "it would read back as 1.2345678901234567e+19",
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: 1e400 } }\n":                                 `field "input.x": number 1e400 is beyond the range`,
		`{"name": "p", "steps": [{"id": "a", "task": "echo", "input": -1.5E+999}]}`:                         "number -1.5E+999 is beyond the range",
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q does not load: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "string") {
			t.Errorf("%q: %v; want it refused when put, saying %q and to write it as a string", src, err, want)
		}
	}
	for _, src := range []string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: \"12345678901234567890123\", y: '1e400', z: !!str 1e400 } }\n",
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: 1e20, y: 1.5e300, z: 9007199254740992.0, w: 0.1000000000000000055511151231257827 } }\n",
	} {
		if d, err := Parse([]byte(src)); err != nil || d.CheckNew() != nil {
			t.Errorf("%q refused: %v %v", src, err, d.CheckNew())
		}
	}
}

// A !!binary constant that decodes to bytes that are not UTF-8 is
// refused when put, naming its field: every run would fail on it. One that
// decodes to text is taken.
func TestABinaryConstantThatIsNotTextIsRefusedWhenPut(t *testing.T) {
	for _, src := range []string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: !!binary gIGC } }\n",
		"name: p\nsteps:\n  - { id: a, task: echo, input: { !!binary gIGC : 1 } }\n",
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q does not load: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || !strings.Contains(err.Error(), "base64") {
			t.Errorf("%q: %v; want it refused when put, saying it is not UTF-8", src, err)
		}
	}
	if d, err := Parse([]byte("name: p\nsteps:\n  - { id: a, task: echo, input: !!binary aGVsbG8= }\n")); err != nil || d.CheckNew() != nil {
		t.Errorf("a !!binary constant that is text refused: %v %v", err, d.CheckNew())
	}
}

// A constant with a YAML tag Weft does not read (a local tag, !!set,
// !!omap) is refused when put, naming its field and the tag: YAML reads it
// as if untagged, so what the tag meant would be lost. The standard tags
// are read as YAML says.
func TestATagWeftDoesNotReadIsRefusedWhenPut(t *testing.T) {
	for src, want := range map[string]string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { x: !money 12 } }\n":  `field "input.x": tag !money is not one Weft reads`,
		"name: p\nsteps:\n  - { id: a, task: echo, input: !!set { a, b } }\n":    `field "input": tag !!set`,
		"name: p\nsteps:\n  - { id: a, succeed: { output: !!omap [ a: 1 ] } }\n": `field "succeed.output": tag !!omap`,
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q does not load: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "remove it") {
			t.Errorf("%q: %v; want it refused when put, saying %q", src, err, want)
		}
	}
	src := "name: p\nsteps:\n  - { id: a, task: echo, input: { s: !!str 12, i: !!int '7', f: !!float 1, b: !!bool 'true', n: !!null '', m: !!map {}, l: !!seq [], t: !!timestamp 2026-01-02 } }\n"
	if d, err := Parse([]byte(src)); err != nil || d.CheckNew() != nil {
		t.Errorf("the standard tags refused: %v %v", err, d.CheckNew())
	}
}

// A number written as YAML 1.1 wrote it, which YAML 1.2 reads as another
// number or as text, is refused when put, saying both readings: 0755
// (octal 493 here, 755 in 1.2) and 1_000 (text in 1.2). Numbers both
// read alike are taken.
func TestAYAML11NumberIsRefusedWhenPut(t *testing.T) {
	for src, want := range map[string]string{
		"name: p\nsteps:\n  - { id: a, task: echo, input: { mode: 0755 } }\n":   `field "input.mode": 0755 reads as the octal number 493 here and as 755 in YAML 1.2: write 755 (or 0o755 for octal)`,
		"name: p\nsteps:\n  - { id: a, task: echo, input: [ -010 ] }\n":         `field "input[0]": -010 reads as the octal number -8 here and as -10 in YAML 1.2: write -10 (or -0o10 for octal)`,
		"name: p\nsteps:\n  - { id: a, task: echo, input: { n: 1_000_000 } }\n": `field "input.n": 1_000_000 reads as a number here and as text in YAML 1.2`,
		"name: p\nsteps:\n  - { id: a, succeed: { output: { x: 3_000.5 } } }\n": `field "succeed.output.x": 3_000.5 reads as a number`,
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q does not load: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "quote it for text") {
			t.Errorf("%q: %v; want it refused when put, saying %q", src, err, want)
		}
	}
	// Settings too: max_attempts: 010 was 8 attempts.
	for src, want := range map[string]string{
		"name: p\nretry: { max_attempts: 010 }\nsteps:\n  - { id: a, task: echo }\n":                                         `field "retry.max_attempts": 010 reads as the octal number 8 here and as 10 in YAML 1.2`,
		"name: p\nconcurrency: { limit: 1_0 }\nsteps:\n  - { id: a, task: echo }\n":                                          `field "concurrency.limit": 1_0 reads as a number`,
		"name: p\nsteps:\n  - { id: a, repeat: { until: \"true\", max_iterations: 0100, do: [ { id: b, task: echo } ] } }\n": `field "repeat.max_iterations": 0100 reads as the octal number 64`,
	} {
		d, err := Parse([]byte(src))
		if err != nil {
			t.Errorf("%q does not load: %v", src, err)
			continue
		}
		if err := d.CheckNew(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want it refused when put, saying %q", src, err, want)
		}
	}
	src := "name: p\nsteps:\n  - { id: a, task: echo, input: { a: 0, b: 00, c: 08, d: 007.5, e: 0o755, f: 0x1F, g: '0755', h: \"1_000\", i: 10 } }\n"
	if d, err := Parse([]byte(src)); err != nil || d.CheckNew() != nil {
		t.Errorf("numbers read alike refused: %v %v", err, d.CheckNew())
	}
}
