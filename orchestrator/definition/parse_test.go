package definition

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden")

var defaultRetry = events.RetryPolicy{
	MaxAttempts:        DefaultMaxAttempts,
	InitialInterval:    DefaultInitialInterval,
	BackoffCoefficient: DefaultBackoffCoefficient,
	MaxInterval:        DefaultMaxInterval,
}

const onboarding = `
name: onboarding
steps:
  - id: welcome
    task: http
    input: { method: POST, url: "${ input.mail_url }", body: { to: "${ input.email }" } }
    retry: { max_attempts: 5, initial_interval: 1s, backoff_coefficient: 2, max_interval: 1m, non_retryable: [bad_request] }
    timeout: 30s
  - id: approval
    wait: { signal: approve, timeout: 72h }
  - id: done
    task: echo
    input: "${ steps.welcome.output }"
output: "${ {'approved': steps.approval.output} }"
`

// shape describes a parsed definition without its compiled templates.
type shape struct {
	Name      string
	Steps     []Step
	HasInput  []bool
	HasOutput bool
}

func shapeOf(d *Definition) shape {
	s := shape{Name: d.Name, HasOutput: d.Output != nil}
	for _, st := range d.Steps {
		c := *st
		c.Input = nil
		s.Steps = append(s.Steps, c)
		s.HasInput = append(s.HasInput, st.Input != nil)
	}
	return s
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want shape
	}{
		{
			name: "onboarding",
			src:  onboarding,
			want: shape{
				Name: "onboarding",
				Steps: []Step{
					{ID: "welcome", Kind: KindTask, Task: "http", Timeout: 30 * time.Second, Retry: events.RetryPolicy{
						MaxAttempts: 5, InitialInterval: time.Second, BackoffCoefficient: 2, MaxInterval: time.Minute,
						NonRetryable: []string{"bad_request"},
					}},
					{ID: "approval", Kind: KindWait, Wait: &Wait{Signal: "approve", Timeout: 72 * time.Hour}},
					{ID: "done", Kind: KindTask, Task: "echo", Timeout: DefaultTimeout, Retry: defaultRetry},
				},
				HasInput:  []bool{true, false, true},
				HasOutput: true,
			},
		},
		{
			name: "defaults",
			src:  "name: d\nsteps:\n  - id: a\n    task: nats.publish\n  - id: w\n    wait: { signal: go.now }\n",
			want: shape{
				Name: "d",
				Steps: []Step{
					{ID: "a", Kind: KindTask, Task: "nats.publish", Timeout: DefaultTimeout, Retry: defaultRetry},
					{ID: "w", Kind: KindWait, Wait: &Wait{Signal: "go.now"}},
				},
				HasInput: []bool{false, false},
			},
		},
		{
			name: "partial retry and days",
			src:  "name: d\nsteps:\n  - id: a\n    task: t\n    timeout: 1d12h\n    retry: { max_attempts: 1, max_interval: 2d }\n  - id: w\n    wait: { signal: s, timeout: 3d }\n",
			want: shape{
				Name: "d",
				Steps: []Step{
					{ID: "a", Kind: KindTask, Task: "t", Timeout: 36 * time.Hour, Retry: events.RetryPolicy{
						MaxAttempts: 1, InitialInterval: DefaultInitialInterval, BackoffCoefficient: DefaultBackoffCoefficient, MaxInterval: 48 * time.Hour,
					}},
					{ID: "w", Kind: KindWait, Wait: &Wait{Signal: "s", Timeout: 72 * time.Hour}},
				},
				HasInput: []bool{false, false},
			},
		},
		{
			name: "json",
			src: `{
	"name": "j",
	"steps": [
		{"id": "a", "task": "echo", "input": {"n": 1, "who": "${ input.who }"}, "retry": {"backoff_coefficient": 1.5}},
		{"id": "b", "wait": {"signal": "ok", "timeout": "90s"}}
	],
	"output": null
}`,
			want: shape{
				Name: "j",
				Steps: []Step{
					{ID: "a", Kind: KindTask, Task: "echo", Timeout: DefaultTimeout, Retry: events.RetryPolicy{
						MaxAttempts: DefaultMaxAttempts, InitialInterval: DefaultInitialInterval, BackoffCoefficient: 1.5, MaxInterval: DefaultMaxInterval,
					}},
					{ID: "b", Kind: KindWait, Wait: &Wait{Signal: "ok", Timeout: 90 * time.Second}},
				},
				HasInput:  []bool{true, false},
				HasOutput: true, // an explicit null output is a template
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := shapeOf(d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseOnboardingEvaluates(t *testing.T) {
	d, err := Parse([]byte(onboarding))
	if err != nil {
		t.Fatal(err)
	}
	scope := Scope{
		Input: map[string]any{"mail_url": "https://mail.example/send", "email": "ann@example.com"},
		Steps: map[string]any{"welcome": map[string]any{"id": int64(7)}, "approval": true},
	}
	in, err := d.Step("welcome").Input.Eval(scope)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"method": "POST", "url": "https://mail.example/send", "body": map[string]any{"to": "ann@example.com"}}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("welcome input = %#v, want %#v", in, want)
	}
	in, err = d.Steps[d.Index("done")].Input.Eval(scope)
	if err != nil || !reflect.DeepEqual(in, map[string]any{"id": int64(7)}) {
		t.Errorf("done input = %#v, %v", in, err)
	}
	out, err := d.Output.Eval(scope)
	if err != nil || !reflect.DeepEqual(out, map[string]any{"approved": true}) {
		t.Errorf("output = %#v, %v", out, err)
	}
	if d.Step("nope") != nil || d.Index("nope") != -1 {
		t.Error("lookup of a missing step found something")
	}
}

func TestParseKeepsDateStrings(t *testing.T) {
	d, err := Parse([]byte("name: d\nsteps:\n  - id: a\n    task: t\n    input: { day: 2024-01-02, n: 3, f: 1.5, none: null }\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Steps[0].Input.Eval(Scope{})
	want := map[string]any{"day": "2024-01-02", "n": int64(3), "f": 1.5, "none": nil}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, %v; want %#v", got, err, want)
	}
}

// TestParseInvalid checks the complete error for each testdata/invalid/*.yaml
// against its .golden file; run with -update to rewrite them.
func TestParseInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(src)
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse returned %v, want *Error", err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// A line indented out of its block is named, not the line the block
// began on (which the YAML parser names, counting from 0).
func TestParseIndentationErrorNamesItsLine(t *testing.T) {
	const head = "name: x\nsteps:\n  - id: a\n    task: t\n"
	const (
		dash = "did not find expected '-' indicator (check this line's indentation)"
		key  = "did not find expected key (check this line's indentation)"
	)
	for _, tt := range []struct {
		name, src, want string
	}{
		{"under a list", head + "   input: 1\n", "line 5: " + dash},
		{"out of a list", head + "  input: 1\n", "line 5: " + dash},
		{"in a mapping", head + "    input:\n      a: 1\n     b: 2\n", "line 7: " + key},
		{"after a flow mapping", head + "  - id: b\n    task: t\n    input: {a: 1,\n      b: 2}\n   if: true\n", "line 9: " + dash},
		{"no final newline", head + "  - id: b\n   task: t", "line 6: " + dash},
	} {
		want := "invalid definition: invalid YAML or JSON: " + tt.want
		if _, err := Parse([]byte(tt.src)); err == nil || err.Error() != want {
			t.Errorf("%s: got %v\nwant %s", tt.name, err, want)
		}
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := `
name: x
steps:
  - id: welcome
    task: http
    retry: { max_attempts: 0 }
  - id: approval
    wait: { signal: approve, timeout: 7x }
`
	_, err := Parse([]byte(src))
	want := `invalid definition: step "welcome": field "retry.max_attempts": must be at least 1; ` +
		`step "approval": field "wait.timeout": invalid duration "7x" (use Go syntax like 90s, 1h30m, or days like 3d)`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != 2 || perr.Problems[1].Step != "approval" || perr.Problems[1].Field != "wait.timeout" {
		t.Errorf("problems = %+v", perr)
	}
}

func TestParseForwardReference(t *testing.T) {
	src := `
name: x
steps:
  - id: a
    task: t
    input: "${ steps.b.output }"
  - id: b
    task: t
output: "${ steps.b.output }"
`
	_, err := Parse([]byte(src))
	var perr *Error
	if !errors.As(err, &perr) || len(perr.Problems) != 1 {
		t.Fatalf("Parse = %v, want one problem", err)
	}
	p := perr.Problems[0]
	if p.Step != "a" || p.Field != "input" || !strings.Contains(p.Message, "comes later") {
		t.Errorf("problem = %+v", p)
	}
}

func TestParseConcurrent(t *testing.T) {
	t.Parallel()
	done := make(chan error)
	for range 8 {
		go func() {
			d, err := Parse([]byte(onboarding))
			if err == nil {
				_, err = d.Output.Eval(Scope{Steps: map[string]any{"approval": true}})
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// describe renders what Parse produced, for comparing two parses.
func describe(d *Definition, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var triggers []string
	for _, t := range d.Triggers {
		triggers = append(triggers, string(t.Kind)+":"+t.Key)
	}
	b, _ := json.Marshal(struct {
		shape
		Triggers []string
	}{shapeOf(d), triggers})
	return string(b)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(onboarding))
	f.Add([]byte(`{"name":"j","steps":[{"id":"a","task":"echo","input":"${ input }"}]}`))
	f.Add([]byte("name: x\nsteps:\n  - id: a\n    wait: { signal: s, timeout: 1d }\noutput: 'n=${ 1 + 2 } ${ {\"a\": \"}\"} }'\n"))
	f.Add([]byte("name: x\nsteps: [{id: a, task: t, retry: {max_attempts: 0}}, {id: a, switch: {}}]\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte(`
name: all
timeout: 2d
retry: { max_attempts: 4 }
steps:
  - id: init
    set: { total: "0", tags: "${ input.tags }" }
  - id: each
    foreach: vars.tags
    as: tag
    concurrency: 2
    filter: "index < 10"
    on_error: continue
    do:
      - id: charge
        if: "${ tag != '' }"
        task: pay
        input: { tag: "${ tag }", i: "${ index }" }
        catch: [{ errors: [declined], do: [{ id: note, set: { declined: "tag" } }] }]
  - id: route
    switch:
      - if: "vars.total > 10"
        then: [{ id: big, sleep: 1d }]
      - if: true
        then: []
    default: [{ id: later, sleep: { until: "workflow.now + duration('1h')" } }]
  - id: fan
    parallel: { branches: { b: [{ id: b1, workflow: child, input: "${ vars.total }" }], a: [{ id: a1, fail: { message: "no ${ input.x }", type: bad } }] } }
    on_error: fail
  - id: poll
    repeat: { do: [{ id: check, task: t, input: "${ iteration }" }], until: "steps.check.output.done", max_iterations: 5 }
  - id: approve
    wait: { signal: ok, timeout: 1h }
    timeout_steps: [{ id: give_up, succeed: { output: "${ steps.charge.output }" } }]
output: "${ steps.poll.output }"
`))
	f.Add([]byte(`{"name":"j","steps":[{"id":"l","foreach":"[1,2]","do":[{"id":"r","repeat":{"do":[{"id":"x","task":"t"}],"until":"iteration > item","max_iterations":3}}]}]}`))
	f.Add([]byte("name: x\nsteps: &s [{id: a, foreach: \"[1]\", do: *s}, {switch: [{if: 1, then: *s}], default: {}}]\n"))
	f.Add([]byte(triggered))
	f.Add([]byte("name: x\nsteps: [{id: a, task: t}]\ntriggers:\n  - {subject: \">\", filter: \"steps.a.output\", id: 1}\n  - {cron: \"TZ=\", timezone: Nowhere, catchup: 1}\n  - {webhook: w, secret_env: lower}\n  - {webhook: w, subject: a, cron: \"@every 0s\"}\n  - {cron: \"0 0 30 2 *\", input: \"${ tick }\"}\n  - [subject]\n"))
	f.Add([]byte("name: x\nsteps:\n  - {id: a, sleep: {until: 2030-01-01}, catch: [{do: []}, {errors: [x], do: []}]}\n  - {id: b, set: {in: \"1 +\"}, concurrency: 2, until: x}\n  - {id: c, parallel: {branches: {\"bad name\": []}}}\n  - {id: d, wait: {signal: s}, timeout_steps: [{id: a, task: t}]}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse(src)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("error %v is not an *Error with problems", err)
			}
		}
		first := describe(d, err)
		if again := describe(Parse(src)); again != first {
			t.Fatalf("second parse differs:\n%s\n%s", first, again)
		}
	})
}

func ExampleParse() {
	_, err := Parse([]byte("name: x\nsteps:\n  - id: a\n    task: t\n    timout: 30s\n"))
	fmt.Println(err)
	// Output: invalid definition: step "a": field "timout": unknown field (did you mean "timeout"?)
}

// A task step's concurrency and rate limit parse with their keys; a rate
// limit needs its period.
func TestParseStepFlowControl(t *testing.T) {
	d := mustParse(t, `
name: flow
steps:
  - id: call
    task: http
    concurrency: { key: "${ input.region }", limit: 5 }
    rate_limit: { limit: 10, per: 1s }
`)
	s := d.Step("call")
	if s.Concurrency == nil || s.Concurrency.Limit != 5 || s.Concurrency.Key == nil {
		t.Fatalf("concurrency: %+v", s.Concurrency)
	}
	if s.RateLimit == nil || s.RateLimit.Limit != 10 || s.RateLimit.Per != time.Second || s.RateLimit.Key != nil {
		t.Fatalf("rate_limit: %+v", s.RateLimit)
	}
	_, err := Parse([]byte("name: flow\nsteps: [ { id: call, task: http, rate_limit: { limit: 10 } } ]\n"))
	if err == nil || !strings.Contains(err.Error(), `field "rate_limit.per": is required`) {
		t.Fatalf("a rate limit without per: %v", err)
	}
}

// A swap of two neighbouring letters counts as one edit: "taks" is
// "task", not "as".
func TestAFieldWithTwoLettersSwappedIsSuggestedRight(t *testing.T) {
	_, err := Parse([]byte("name: s\nsteps:\n  - { id: a, taks: echo }\n"))
	if err == nil || !strings.Contains(err.Error(), `field "taks": unknown field (did you mean "task"?)`) {
		t.Fatalf("Parse: %v; want task suggested", err)
	}
}

// A step's expression that reads a trigger's variable is told where it
// is seen, and how its data reaches the run.
func TestAStepReadingATriggersVariableIsToldWhereItIsSeen(t *testing.T) {
	_, err := Parse([]byte("name: s\nsteps:\n  - { id: a, task: echo, input: \"${ event.id }\" }\n"))
	if err == nil || !strings.Contains(err.Error(), "undeclared reference to 'event': only a trigger's expressions see it; what its input: computes reaches the run as input") {
		t.Fatalf("Parse: %v", err)
	}
}
