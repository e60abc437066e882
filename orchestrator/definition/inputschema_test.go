package definition

import (
	"strings"
	"testing"
)

// schemaDef is a definition with input_schema s (YAML or JSON flow).
func schemaDef(s string) string {
	return "name: typed\ninput_schema: " + s + "\nsteps:\n  - { id: a, task: echo }\n"
}

// An input_schema compiles when the definition does: a schema that is not
// valid JSON Schema, or that refers outside itself, is refused, naming
// the problem.
func TestInputSchemaRefused(t *testing.T) {
	for _, tc := range []struct{ schema, says string }{
		{`{type: objekt}`, `"input_schema": not a valid JSON Schema: /type: value must be one of`},
		{`{properties: {a: {minLength: -1}}}`, "/properties/a/minLength"},
		{`{$ref: "https://example.com/customer.json"}`, `$ref "https://example.com/customer.json" is outside the schema: references outside input_schema are not followed`},
		{`{$ref: "file:///etc/passwd"}`, `"file:///etc/passwd" is outside the schema`},
		{`{properties: {a: {$ref: "other.json#/x"}}}`, `"weft:///other.json" is outside the schema`},
		{`{$schema: "https://example.com/my-meta", type: object}`, "is outside the schema"},
		{`{$ref: "#/$defs/missing"}`, "input_schema"},
		{`{$ref: "#"}`, `$ref cycle: both /$ref and  resolve to "weft:///input_schema.json#"`},
		{`{$defs: {x: {$ref: "#/$defs/y"}, y: {$ref: "#/$defs/x"}}, properties: {a: {$ref: "#/$defs/x"}}, $ref: "#/$defs/x"}`, "$ref cycle"},
		{`[1, 2]`, "must be a mapping"},
		{`true`, "must be a mapping"},
	} {
		_, err := Parse([]byte(schemaDef(tc.schema)))
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("schema %s: %v; want it refused saying %q", tc.schema, err, tc.says)
		}
	}
}

// CheckInput takes inputs the schema accepts and names the failing place
// of one it does not; a definition without a schema takes any input.
func TestCheckInput(t *testing.T) {
	d, err := Parse([]byte(schemaDef(`
  type: object
  required: [customer]
  properties:
    customer:
      type: object
      required: [id]
      properties: { id: { type: string }, tier: { $ref: "#/$defs/tier" } }
    items: { type: array, items: { type: integer, minimum: 1 } }
  $defs:
    tier: { enum: [gold, silver] }`)))
	if err != nil {
		t.Fatal(err)
	}
	if d.InputSchema["type"] != "object" {
		t.Fatalf("InputSchema %v", d.InputSchema)
	}
	ok := map[string]any{"customer": map[string]any{"id": "c-1", "tier": "gold"}, "items": []any{int64(1), 2.0}}
	if err := d.CheckInput(ok); err != nil {
		t.Fatalf("a good input: %v", err)
	}
	for _, tc := range []struct {
		input any
		want  string
	}{
		{map[string]any{"customer": map[string]any{}}, `input_schema: /customer: missing property 'id'`},
		{map[string]any{"customer": map[string]any{"id": "c", "tier": "bronze"}}, `input_schema: /customer/tier: value must be one of 'gold', 'silver'`},
		{map[string]any{"customer": map[string]any{"id": "c"}, "items": []any{int64(1), int64(0)}}, `input_schema: /items/1: minimum: got 0, want 1`},
		{"text", `input_schema: /: got string, want object`},
		{nil, `input_schema: /: got null, want object`},
	} {
		err := d.CheckInput(tc.input)
		if _, ok := err.(*InputError); !ok || err.Error() != tc.want {
			t.Errorf("input %v: %v; want %s", tc.input, err, tc.want)
		}
	}
	// References within the schema work under its own $id, and to the
	// schema itself (a tree); a $schema naming a known draft is read from
	// the library, not fetched.
	for _, src := range []string{
		`{$id: "https://example.com/order", $defs: {n: {type: integer}}, properties: {n: {$ref: "#/$defs/n"}}}`,
		`{$schema: "http://json-schema.org/draft-07/schema#", definitions: {n: {type: integer}}, properties: {n: {$ref: "#/definitions/n"}}}`,
		`{properties: {n: {type: integer}, kids: {type: array, items: {$ref: "#"}}}}`,
	} {
		d, err := Parse([]byte(schemaDef(src)))
		if err != nil {
			t.Fatalf("schema %s: %v", src, err)
		}
		if err := d.CheckInput(map[string]any{"n": "x"}); err == nil || !strings.Contains(err.Error(), "/n: got string, want integer") {
			t.Errorf("schema %s: %v", src, err)
		}
	}
	plain, err := Parse([]byte("name: plain\nsteps: [{ id: a, task: echo }]"))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.CheckInput("anything"); err != nil || plain.InputSchema != nil {
		t.Fatalf("no schema: %v %v", err, plain.InputSchema)
	}
}
