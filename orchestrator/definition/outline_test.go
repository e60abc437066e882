package definition

import (
	"encoding/json"
	"testing"
)

// The outline holds every step, nested ones in their places, with the
// fields its kind has.
func TestOutline(t *testing.T) {
	d, err := Parse([]byte(`
name: every-kind
steps:
  - id: fetch
    task: http
    if: "${ input.go }"
    catch:
      - errors: [timeout, network]
        do: [{ id: note, set: { late: "${ true }" } }]
      - do: []
  - id: approve
    wait: { signal: approved }
  - id: route
    switch:
      - if: "${ input.n > 1 }"
        then: [{ id: many, task: echo }]
      - if: true
        then: []
    default: [{ id: none, sleep: 1s }]
  - id: each
    foreach: "${ input.items }"
    do: [{ id: one, task: echo }]
  - id: both
    parallel:
      branches:
        left: [{ id: l, task: echo }]
        right: [{ id: r, workflow: child }]
  - id: again
    repeat: { do: [{ id: tick, task: echo }], until: "${ iteration > 2 }", max_iterations: 5 }
  - id: stop
    if: "${ input.bad }"
    fail: { message: bad }
  - id: done
    succeed: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(d.Outline())
	if err != nil {
		t.Fatal(err)
	}
	want := `[` +
		`{"catch":[{"errors":["timeout","network"],"steps":[{"id":"note","kind":"set"}]},{"errors":[],"steps":[]}],"id":"fetch","if":"${ input.go }","kind":"task","task":"http"},` +
		`{"id":"approve","kind":"wait","signal":"approved"},` +
		`{"cases":[{"steps":[{"id":"many","kind":"task","task":"echo"}],"when":"${ input.n \u003e 1 }"},{"steps":[],"when":"true"}],"default":[{"id":"none","kind":"sleep"}],"id":"route","kind":"switch"},` +
		`{"id":"each","kind":"foreach","steps":[{"id":"one","kind":"task","task":"echo"}]},` +
		`{"branches":[{"id":"left","steps":[{"id":"l","kind":"task","task":"echo"}]},{"id":"right","steps":[{"id":"r","kind":"workflow","workflow":"child"}]}],"id":"both","kind":"parallel"},` +
		`{"id":"again","kind":"repeat","steps":[{"id":"tick","kind":"task","task":"echo"}]},` +
		`{"id":"stop","if":"${ input.bad }","kind":"fail"},` +
		`{"id":"done","kind":"succeed"}]`
	if string(got) != want {
		t.Fatalf("outline\n%s\nwant\n%s", got, want)
	}
}
