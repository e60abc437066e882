package definition

import (
	"errors"
	"testing"
)

// An expression that reads a key of a null fails saying which value is
// null: for the run's input, that the run was started without one.
func TestEvalErrorSaysWhatIsNull(t *testing.T) {
	const noInput = ": the run was started without input (give it with weft start --input, or the start request's input)"
	tests := []struct {
		name  string
		src   string // YAML
		scope Scope
		want  string
	}{
		{"no input", `{who: "${ input.name }"}`, Scope{},
			`evaluate input.who: expression "input.name": input is null, so it has no key "name"` + noInput},
		{"no input, in text", `"hi ${ input.name }"`, Scope{},
			`evaluate input: expression "input.name": input is null, so it has no key "name"` + noInput},
		{"no input, deeper", `"${ input.user.email == '' }"`, Scope{},
			`evaluate input: expression "input.user.email == ''": input is null, so it has no key "user"` + noInput},
		{"null field", `"${ input.user['e-mail'] }"`, Scope{Input: map[string]any{"user": nil}},
			`evaluate input: expression "input.user['e-mail']": input.user is null, so it has no key "e-mail"`},
		{"null output", `"${ steps.fetch.output.status }"`, Scope{Steps: map[string]any{"fetch": nil}},
			`evaluate input: expression "steps.fetch.output.status": steps.fetch.output is null, so it has no key "status"`},
		// A missing key of a map that is there stays CEL's complaint.
		{"missing key", `"${ input.name }"`, Scope{Input: map[string]any{}}, `evaluate input: no such key: name`},
		// A comprehension's variable is not the run's input.
		{"comprehension variable", `"${ [{'a': 1}].map(input, input.b) }"`, Scope{}, `evaluate input: no such key: b`},
		// A null the evaluation did not read, or did not fail on, is not
		// blamed for a key another map lacks.
		{"null guarded", `"${ input.b != null && input.b.id == 1 || input.a.id == 2 }"`,
			Scope{Input: map[string]any{"a": map[string]any{}, "b": nil}}, `evaluate input: no such key: id`},
		{"null in the branch not taken", `"${ input.kind == 'b' ? input.b.id : input.a.id }"`,
			Scope{Input: map[string]any{"kind": "a", "a": map[string]any{}, "b": nil}}, `evaluate input: no such key: id`},
		{"null and a missing key", `"${ input.a.id + input.b.id }"`,
			Scope{Input: map[string]any{"a": map[string]any{}, "b": nil}}, `evaluate input: no such key: id`},
		{"null in the branch taken", `"${ input.kind == 'b' ? input.b.id : input.a.id }"`,
			Scope{Input: map[string]any{"kind": "b", "a": map[string]any{}, "b": nil}},
			`evaluate input: expression "input.kind == 'b' ? input.b.id : input.a.id": input.b is null, so it has no key "id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := compileTemplate(t, tt.src, 1, "fetch")
			v, err := tmpl.Eval(tt.scope)
			var eerr *EvalError
			if !errors.As(err, &eerr) {
				t.Fatalf("Eval = %#v, %v; want *EvalError", v, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err.Error(), tt.want)
			}
		})
	}

	// A trigger's null event is not the run's input.
	d := mustParse(t, "name: w\nsteps: [{id: a, task: t}]\ntriggers:\n  - subject: orders\n    filter: \"event.user.name == 'ann'\"\n")
	_, err := d.Triggers[0].Filter.Eval(Scope{Trigger: map[string]any{"event": map[string]any{"user": nil}}})
	if want := `evaluate filter: expression "event.user.name == 'ann'": event.user is null, so it has no key "name"`; err == nil || err.Error() != want {
		t.Errorf("trigger filter: got %v\nwant %s", err, want)
	}
}

// An operator or function applied to operands of types it does not take
// fails naming the types, and how to convert them when that is plain.
func TestEvalErrorNamesTheTypesOfAnOverload(t *testing.T) {
	in := Scope{Input: map[string]any{"n": int64(1), "count": int64(3), "price": 2.5, "s": "x", "nil": nil}}
	tests := []struct {
		name string
		src  string // YAML
		want string
	}{
		{"int > string", `"${ input.count > '3' }"`,
			`evaluate input: expression "input.count > '3'": no such overload: int > string (convert one side: input.count > int("3") compares numbers, string(input.count) > "3" compares text)`},
		{"int + string", `"${ input.n + 'x' }"`,
			`evaluate input: expression "input.n + 'x'": no such overload: int + string (convert one side: string(input.n) + "x" joins text, input.n + int("x") adds numbers)`},
		{"double - string", `"${ input.price - input.s }"`,
			`evaluate input: expression "input.price - input.s": no such overload: double - string (convert the string: input.price - double(input.s))`},
		{"double * int", `"${ (input.n + 1) * input.price }"`,
			`evaluate input: expression "(input.n + 1) * input.price": no such overload: int * double (convert one side: double(input.n + 1) * input.price)`},
		{"null + int", `"${ input.nil + 1 }"`,
			`evaluate input: expression "input.nil + 1": no such overload: null + int (input.nil is null)`},
		{"function", `"${ size(input.count) }"`,
			`evaluate input: expression "size(input.count)": no such overload: size(int)`},
		{"in a loop", `"${ [1, 2].map(x, input.s + x) }"`,
			`evaluate input: expression "[1, 2].map(x, input.s + x)": no such overload: string + int (convert one side: input.s + string(x) joins text, int(input.s) + x adds numbers)`},
		{"condition", `"${ input.s ? 1 : 2 }"`,
			`evaluate input: expression "input.s ? 1 : 2": the condition input.s is a string, not a bool`},
		{"int condition", `"${ input.n ? 1 : 2 }"`,
			`evaluate input: expression "input.n ? 1 : 2": the condition input.n is an int, not a bool`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := compileTemplate(t, tt.src, 1, "fetch")
			v, err := tmpl.Eval(in)
			var eerr *EvalError
			if !errors.As(err, &eerr) {
				t.Fatalf("Eval = %#v, %v; want *EvalError", v, err)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %q\nwant %q", err.Error(), tt.want)
			}
		})
	}

	// A trigger's filter, and the checker's complaint when the types are
	// known before the run.
	d := mustParse(t, "name: w\nsteps: [{id: a, task: t}]\ntriggers:\n  - subject: orders\n    filter: 'event.count > \"3\"'\n")
	_, err := d.Triggers[0].Filter.Eval(Scope{Trigger: map[string]any{"event": map[string]any{"count": int64(4)}}})
	if want := `evaluate filter: expression "event.count > \"3\"": no such overload: int > string (convert one side: event.count > int("3") compares numbers, string(event.count) > "3" compares text)`; err == nil || err.Error() != want {
		t.Errorf("trigger filter: got %v\nwant %s", err, want)
	}
	_, err = Parse([]byte("name: w\nsteps: [{id: a, task: t, input: '${ 2 * \"3\" }'}]\n"))
	if want := `invalid definition: step "a": field "input": expression "2 * \"3\"": found no matching overload for '_*_' applied to '(int, string)' (convert the string: 2 * int("3"))`; err == nil || err.Error() != want {
		t.Errorf("check: got %v\nwant %s", err, want)
	}
}
