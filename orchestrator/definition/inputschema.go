package definition

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/weftworks/weft/eventstore/value"
)

// schemaURL is the location an input_schema is compiled at: references
// inside it resolve against it (or against its own $id).
const schemaURL = "weft:///input_schema.json"

// maxInputProblems bounds the problems an InputError lists.
const maxInputProblems = 5

// printer renders the schema library's messages.
var printer = message.NewPrinter(language.English)

// InputError says why an input does not match its definition's
// input_schema: one problem per failing place in the input.
type InputError struct {
	// Problems are the failures found, in the order the schema found them.
	Problems []InputProblem
}

// InputProblem is one place where the input fails the schema.
type InputProblem struct {
	// Path is the place in the input, a JSON Pointer ("/customer/id");
	// "/" for the input itself.
	Path string
	// Reason says what is wrong there.
	Reason string
}

// Error renders the problems as `input_schema: /customer: missing
// property 'id'`, several separated by "; ".
func (e *InputError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Path + ": " + p.Reason
	}
	return "input_schema: " + strings.Join(parts, "; ")
}

// CheckInput checks a run's input (a normalized value) against the
// definition's input_schema; a definition without one takes any input.
// The error is an *InputError.
func (d *Definition) CheckInput(input any) error {
	if d.inputSchema == nil {
		return nil
	}
	err := d.inputSchema.Validate(input)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &InputError{Problems: []InputProblem{{Path: "/", Reason: err.Error()}}}
	}
	return &InputError{Problems: schemaProblems(ve)}
}

// schemaProblems lists the failures at the leaves of ve, where the
// schema says what it wanted, at most maxInputProblems.
func schemaProblems(ve *jsonschema.ValidationError) []InputProblem {
	var out []InputProblem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(out) == maxInputProblems {
			return
		}
		if len(e.Causes) == 0 {
			path := "/" + strings.Join(escapePointer(e.InstanceLocation), "/")
			out = append(out, InputProblem{Path: path, Reason: e.ErrorKind.LocalizedString(printer)})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// escapePointer escapes the tokens of a JSON Pointer.
func escapePointer(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
	}
	return out
}

// noLoader refuses every schema outside the one being compiled: an
// input_schema reads no file and no URL.
type noLoader struct{}

// errExternalRef is noLoader's answer.
var errExternalRef = errors.New("references outside input_schema are not followed")

func (noLoader) Load(string) (any, error) { return nil, errExternalRef }

// inputSchema parses and compiles the definition's input_schema n: a JSON
// Schema object, draft 2020-12 unless its $schema names another.
// uintsAsFloats makes the whole numbers of v beyond an int64 (a schema's
// maximum: 18446744073709551615) the floats they were before values
// refused them: a schema's bounds are compared, never shown back as data.
func uintsAsFloats(v any) any {
	switch x := v.(type) {
	case uint64:
		if x > math.MaxInt64 {
			return float64(x)
		}
	case []any:
		for i, e := range x {
			x[i] = uintsAsFloats(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = uintsAsFloats(e)
		}
	case map[any]any:
		for k, e := range x {
			x[k] = uintsAsFloats(e)
		}
	}
	return v
}

func (p *parser) inputSchema(n *yaml.Node) (map[string]any, *jsonschema.Schema) {
	if resolve(n).Kind != yaml.MappingNode {
		p.add("", "input_schema", "must be a mapping: a JSON Schema object, e.g. {type: object, required: [id]}")
		return nil, nil
	}
	untagTimestamps(n, 0)
	var raw any
	if err := n.Decode(&raw); err != nil {
		p.add("", "input_schema", "invalid value: %s", yamlError(err))
		return nil, nil
	}
	v, err := value.Normalize(uintsAsFloats(raw))
	if err == nil {
		err = value.Check("input_schema", v, value.Limits{})
	}
	if err != nil {
		p.add("", "input_schema", "invalid value: %v", err)
		return nil, nil
	}
	doc, _ := v.(map[string]any)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		p.add("", "input_schema", "%v", err)
		return nil, nil
	}
	sch, err := c.Compile(schemaURL)
	if err != nil {
		p.add("", "input_schema", "%s", schemaError(err))
		return nil, nil
	}
	// References that lead back to where they started, whatever the input,
	// would refuse every input: try one value of each JSON type.
	for _, probe := range []any{nil, false, int64(0), "", []any{}, map[string]any{}} {
		if cycle := refCycle(sch.Validate(probe)); cycle != nil {
			p.add("", "input_schema", "$ref cycle: %s", cycle.LocalizedString(printer))
			return nil, nil
		}
	}
	return doc, sch
}

// refCycle returns the reference cycle err found, if any.
func refCycle(err error) *kind.RefCycle {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	if c, ok := ve.ErrorKind.(*kind.RefCycle); ok {
		return c
	}
	for _, cause := range ve.Causes {
		if c := refCycle(cause); c != nil {
			return c
		}
	}
	return nil
}

// schemaError says why an input_schema does not compile.
func schemaError(err error) string {
	var load *jsonschema.LoadURLError
	var invalid *jsonschema.SchemaValidationError
	switch {
	case errors.As(err, &load):
		return fmt.Sprintf("$ref %q is outside the schema: %v; use references within input_schema only (\"#/$defs/...\")", load.URL, errExternalRef)
	case errors.As(err, &invalid):
		var ve *jsonschema.ValidationError
		if errors.As(invalid.Err, &ve) {
			var parts []string
			for _, p := range schemaProblems(ve) {
				parts = append(parts, p.Path+": "+p.Reason)
			}
			return "not a valid JSON Schema: " + strings.Join(parts, "; ")
		}
		return "not a valid JSON Schema: " + invalid.Err.Error()
	}
	return "cannot be compiled: " + err.Error()
}
