package definition

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore/events"
)

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	idRE     = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_-]{0,63}$`)
	symbolRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+(\.[a-zA-Z0-9_-]+)*$`) // task types, signal names
)

// kindSpec describes one step kind: the step field that selects it (its key
// in stepKinds), the further step fields it owns, and its parser.
type kindSpec struct {
	kind   Kind
	fields []string
	parse  func(p *parser, s *Step, at where, kind *yaml.Node, fields map[string]*yaml.Node)
}

// stepKinds maps each kind field to its spec.
var stepKinds = map[string]*kindSpec{
	"task": {kind: KindTask, fields: []string{"input", "retry", "timeout"}, parse: (*parser).task},
	"wait": {kind: KindWait, parse: (*parser).wait},
}

// reservedKinds are step kinds of later versions of the language.
var reservedKinds = []string{"foreach", "parallel", "repeat", "set", "sleep", "switch"}

// stepFields lists every field a step may have, sorted.
var stepFields = func() []string {
	fields := append([]string{"id"}, reservedKinds...)
	for k, spec := range stepKinds {
		fields = append(fields, k)
		fields = append(fields, spec.fields...)
	}
	sort.Strings(fields)
	return slices.Compact(fields)
}()

// where locates a step: its label in problems and its position.
type where struct {
	label string
	pos   int
}

// Parse parses a definition in YAML or JSON and compiles it. On failure it
// returns an *Error listing every problem found.
func Parse(src []byte) (*Definition, error) {
	p := &parser{ids: map[string]int{}}
	d := p.definition(src)
	if len(p.problems) > 0 {
		return nil, &Error{Problems: p.problems}
	}
	return d, nil
}

// parser collects problems while it walks a definition.
type parser struct {
	problems []Problem
	// ids maps each valid, unique step id to its position.
	ids map[string]int
}

func (p *parser) add(step, field, format string, args ...any) {
	p.problems = append(p.problems, Problem{Step: step, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (p *parser) definition(src []byte) *Definition {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add("", "", "the definition is empty")
		} else {
			p.add("", "", "invalid YAML or JSON: %s", yamlError(err))
		}
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		p.add("", "", "unexpected content after the definition: put one definition per document")
		return nil
	}
	if len(doc.Content) == 0 {
		p.add("", "", "the definition is empty")
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.add("", "", "a definition must be a mapping with name and steps")
		return nil
	}
	d := &Definition{}
	fields := p.fields("", "", root, "name", "steps", "output")
	if n := fields["name"]; n == nil {
		p.add("", "name", "is required")
	} else if s, ok := p.str("", "name", n); ok {
		if !nameRE.MatchString(s) {
			p.add("", "name", "invalid name %q: use letters, digits, _ and - (at most 64)", s)
		}
		d.Name = s
	}
	if n := fields["steps"]; n == nil {
		p.add("", "steps", "is required: list at least one step")
	} else if n.Kind != yaml.SequenceNode {
		p.add("", "steps", "must be a list of steps")
	} else if len(n.Content) == 0 {
		p.add("", "steps", "must list at least one step")
	} else {
		d.Steps = p.steps(n.Content)
	}
	if n := fields["output"]; n != nil {
		d.Output = p.template("", "output", n, len(d.Steps))
	}
	return d
}

// steps parses the step list, after collecting the ids so that expressions
// can tell a missing step from a later one.
func (p *parser) steps(nodes []*yaml.Node) []*Step {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		n = resolve(n)
		if n.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := resolve(n.Content[j]), resolve(n.Content[j+1])
			if k.Value == "id" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && idRE.MatchString(v.Value) {
				if _, dup := p.ids[v.Value]; !dup {
					p.ids[v.Value] = i
					ids[i] = v.Value
				}
				break
			}
		}
	}
	steps := make([]*Step, len(nodes))
	for i, n := range nodes {
		steps[i] = p.step(i, ids[i], resolve(n))
	}
	return steps
}

func (p *parser) step(i int, id string, n *yaml.Node) *Step {
	label := id
	if label == "" {
		label = fmt.Sprintf("steps[%d]", i)
	}
	s := &Step{ID: id}
	if n.Kind != yaml.MappingNode {
		p.add(label, "", "a step must be a mapping with id and task or wait")
		return s
	}
	fields := p.fields(label, "", n, stepFields...)

	if idNode := fields["id"]; idNode == nil {
		p.add(label, "id", "is required")
	} else if v, ok := p.str(label, "id", idNode); ok && id == "" {
		if idRE.MatchString(v) {
			p.add(label, "id", "duplicate id %q: step ids must be unique", v)
		} else {
			p.add(label, "id", "invalid id %q: use letters, digits, _ and -, starting with a letter or _ (at most 64)", v)
		}
	}

	var kinds []string
	for _, k := range sortedKeys(fields) {
		if stepKinds[k] != nil || slices.Contains(reservedKinds, k) {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) == 0 {
		p.add(label, "", "a step needs task or wait")
		return s
	}
	if len(kinds) > 1 {
		p.add(label, "", "a step has exactly one kind, found %s: remove all but one", strings.Join(kinds, " and "))
		return s
	}
	spec := stepKinds[kinds[0]]
	if spec == nil {
		p.add(label, kinds[0], "step kind %q is not supported yet", kinds[0])
		return s
	}
	s.Kind = spec.kind
	own := map[string]*yaml.Node{}
	for _, k := range sortedKeys(fields) {
		switch {
		case k == "id" || k == kinds[0]:
		case slices.Contains(spec.fields, k):
			own[k] = fields[k]
		default:
			p.add(label, k, "only valid on %s", kindsOwning(k))
		}
	}
	spec.parse(p, s, where{label, i}, fields[kinds[0]], own)
	return s
}

// kindsOwning names the step kinds that own a field, e.g. "task steps".
func kindsOwning(field string) string {
	var ks []string
	for k, spec := range stepKinds {
		if slices.Contains(spec.fields, field) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, " and ") + " steps"
}

func (p *parser) task(s *Step, at where, kind *yaml.Node, fields map[string]*yaml.Node) {
	label := at.label
	if t, ok := p.str(label, "task", kind); ok {
		if symbolRE.MatchString(t) {
			s.Task = t
		} else {
			p.add(label, "task", "invalid task type %q: use letters, digits, _ and -, in parts separated by single dots", t)
		}
	}
	if n := fields["input"]; n != nil {
		s.Input = p.template(label, "input", n, at.pos)
	}
	s.Timeout = DefaultTimeout
	if n := fields["timeout"]; n != nil {
		if d, ok := p.duration(label, "timeout", n); ok {
			if d <= 0 {
				p.add(label, "timeout", "must be positive")
			}
			s.Timeout = d
		}
	}
	s.Retry = events.RetryPolicy{
		MaxAttempts:        DefaultMaxAttempts,
		InitialInterval:    DefaultInitialInterval,
		BackoffCoefficient: DefaultBackoffCoefficient,
		MaxInterval:        DefaultMaxInterval,
	}
	if n := fields["retry"]; n != nil {
		p.retry(&s.Retry, label, n)
	}
}

func (p *parser) retry(r *events.RetryPolicy, label string, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		p.add(label, "retry", "must be a mapping, e.g. { max_attempts: 5 }")
		return
	}
	fields := p.fields(label, "retry.", n, "max_attempts", "initial_interval", "backoff_coefficient", "max_interval", "non_retryable")
	intervalsOK := true
	if n := fields["max_attempts"]; n != nil {
		var v int
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
			p.add(label, "retry.max_attempts", "must be a whole number")
		} else if v < 1 {
			p.add(label, "retry.max_attempts", "must be at least 1")
		} else {
			r.MaxAttempts = v
		}
	}
	for _, f := range []struct {
		name string
		d    *time.Duration
	}{{"initial_interval", &r.InitialInterval}, {"max_interval", &r.MaxInterval}} {
		if n := fields[f.name]; n != nil {
			d, ok := p.duration(label, "retry."+f.name, n)
			if ok && d <= 0 {
				p.add(label, "retry."+f.name, "must be positive")
				ok = false
			}
			if ok {
				*f.d = d
			}
			intervalsOK = intervalsOK && ok
		}
	}
	if intervalsOK && r.MaxInterval < r.InitialInterval {
		p.add(label, "retry.max_interval", "must be at least retry.initial_interval (%s, max_interval is %s)", r.InitialInterval, r.MaxInterval)
	}
	if n := fields["backoff_coefficient"]; n != nil {
		var v float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			p.add(label, "retry.backoff_coefficient", "must be a number")
		} else if v < 1 {
			p.add(label, "retry.backoff_coefficient", "must be at least 1")
		} else {
			r.BackoffCoefficient = v
		}
	}
	if n := fields["non_retryable"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			p.add(label, "retry.non_retryable", "must be a list of error types")
			return
		}
		for i, e := range n.Content {
			field := "retry.non_retryable[" + strconv.Itoa(i) + "]"
			if t, ok := p.str(label, field, resolve(e)); ok {
				if t == "" {
					p.add(label, field, "must not be empty")
				}
				r.NonRetryable = append(r.NonRetryable, t)
			}
		}
	}
}

func (p *parser) wait(s *Step, at where, kind *yaml.Node, _ map[string]*yaml.Node) {
	label := at.label
	if kind.Kind != yaml.MappingNode {
		p.add(label, "wait", "must be a mapping, e.g. { signal: approve, timeout: 72h }")
		return
	}
	w := &Wait{}
	s.Wait = w
	fields := p.fields(label, "wait.", kind, "signal", "timeout")
	if n := fields["signal"]; n == nil {
		p.add(label, "wait.signal", "is required")
	} else if sig, ok := p.str(label, "wait.signal", n); ok {
		if symbolRE.MatchString(sig) {
			w.Signal = sig
		} else {
			p.add(label, "wait.signal", "invalid signal name %q: use letters, digits, _ and -, in parts separated by single dots", sig)
		}
	}
	if n := fields["timeout"]; n != nil {
		if d, ok := p.duration(label, "wait.timeout", n); ok {
			if d < 0 {
				p.add(label, "wait.timeout", "must not be negative (leave it out to wait forever)")
			}
			w.Timeout = d
		}
	}
}

// fields returns the mapping n's values by key, reporting unknown and
// duplicate keys. prefix is prepended to keys in problems ("retry.").
func (p *parser) fields(label, prefix string, n *yaml.Node, known ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			p.add(label, strings.TrimSuffix(prefix, "."), "keys must be strings")
			continue
		}
		switch {
		case !slices.Contains(known, k.Value):
			p.add(label, prefix+k.Value, "unknown field%s", suggest(k.Value, known))
		case out[k.Value] != nil:
			p.add(label, prefix+k.Value, "appears more than once")
		default:
			out[k.Value] = v
		}
	}
	return out
}

// str returns n's value if it is a string, reporting a problem otherwise.
func (p *parser) str(label, field string, n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			p.add(label, field, "must be a string (quote %s)", n.Value)
		} else {
			p.add(label, field, "must be a string")
		}
		return "", false
	}
	return n.Value, true
}

// duration parses a duration field, which must be a string.
func (p *parser) duration(label, field string, n *yaml.Node) (time.Duration, bool) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		p.add(label, field, "must be a duration string like \"30s\", not a number")
		return 0, false
	}
	s, ok := p.str(label, field, n)
	if !ok {
		return 0, false
	}
	d, err := ParseDuration(s)
	if err != nil {
		p.add(label, field, "%v", err)
		return 0, false
	}
	return d, true
}

// suggest returns ` (did you mean "x"?)` for a known name close to s, or a
// list of the known names.
func suggest(s string, known []string) string {
	known = slices.DeleteFunc(slices.Clone(known), func(k string) bool {
		return slices.Contains(reservedKinds, k) // not offered until supported
	})
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	sort.Strings(known)
	return "; known fields: " + strings.Join(known, ", ")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// resolve follows YAML aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func sortedKeys(m map[string]*yaml.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// yamlError renders a YAML error on one line.
func yamlError(err error) string {
	return strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
}
