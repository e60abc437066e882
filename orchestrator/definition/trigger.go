package definition

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve the same on every host
	"unicode"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/eventstore"
)

// maxTriggers bounds the triggers of a definition.
const maxTriggers = 1000

// envNameRE matches the names of environment variables (secret_env).
var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)

// triggerKindNames lists the fields that select a trigger's kind, in the
// order messages name them.
var triggerKindNames = []string{"subject", "cron", "webhook"}

// triggerFields maps each kind field to the further fields of its kind.
var triggerFields = map[string][]string{
	"subject": {"filter", "id", "input"},
	"cron":    {"catchup", "id", "input", "timezone"},
	"webhook": {"filter", "id", "input", "secret_env"},
}

// allTriggerFields lists every field a trigger may have, sorted.
var allTriggerFields = func() []string {
	fields := slices.Clone(triggerKindNames)
	for _, fs := range triggerFields {
		fields = append(fields, fs...)
	}
	sort.Strings(fields)
	return slices.Compact(fields)
}()

// cronParser reads 5-field schedules, 6-field ones with seconds first and
// descriptors such as @hourly and @every 1m.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronHelp says how to write a schedule.
const cronHelp = `write 5 fields ("0 9 * * MON-FRI"), 6 with seconds first ("*/10 * * * * *") or a descriptor (@hourly, @every 1m)`

// triggerKindList renders the kind fields as "subject, cron or webhook".
func triggerKindList() string {
	return strings.Join(triggerKindNames[:len(triggerKindNames)-1], ", ") + " or " + triggerKindNames[len(triggerKindNames)-1]
}

// triggers parses the definition's triggers list.
func (p *parser) triggers(n *yaml.Node) []*Trigger {
	switch {
	case n.Kind != yaml.SequenceNode:
		p.add("", "triggers", "must be a list of triggers, e.g. [{ subject: orders.created }]")
		return nil
	case len(n.Content) > maxTriggers:
		p.add("", "triggers", "too many triggers: a definition holds at most %d", maxTriggers)
		return nil
	}
	var out []*Trigger
	webhooks := map[string]string{} // webhook name → the trigger using it first
	specs := map[string]int{}       // spec → how many triggers had it so far
	for i, c := range n.Content {
		t := p.trigger("triggers["+strconv.Itoa(i)+"]", resolve(c), webhooks)
		if t == nil {
			continue
		}
		// Triggers of the same spec get distinct keys by their order.
		spec := t.spec()
		if k := specs[spec]; k > 0 {
			t.Key = triggerKey(spec + "\x00" + strconv.Itoa(k))
		} else {
			t.Key = triggerKey(spec)
		}
		specs[spec]++
		out = append(out, t)
	}
	return out
}

// spec is what a trigger's key hashes: its kind and what it listens to.
func (t *Trigger) spec() string {
	switch t.Kind {
	case TriggerSubject:
		return "subject\x00" + t.Subject
	case TriggerCron:
		loc := "UTC"
		if t.Location != nil {
			loc = t.Location.String()
		}
		return "cron\x00" + strings.Join(strings.Fields(t.Cron), " ") + "\x00" + loc
	}
	return "webhook\x00" + t.Webhook
}

// triggerKey returns the first 12 hex digits of the SHA-256 of spec.
func triggerKey(spec string) string {
	sum := sha256.Sum256([]byte(spec))
	return hex.EncodeToString(sum[:6])
}

// trigger parses the trigger at label; it returns nil when it has no single
// kind. webhooks maps the webhook names used so far to their triggers.
func (p *parser) trigger(label string, n *yaml.Node, webhooks map[string]string) *Trigger {
	if n.Kind != yaml.MappingNode {
		p.add(label, "", "a trigger must be a mapping with one of %s, e.g. { subject: orders.created }", triggerKindList())
		return nil
	}
	kinds := triggerKinds(n)
	kind := ""
	if len(kinds) == 1 {
		kind = kinds[0]
	}
	fields := p.triggerFieldNodes(label, n, kind)
	switch len(kinds) {
	case 0:
		p.add(label, "", "a trigger needs one of %s", triggerKindList())
		return nil
	case 1:
	default:
		p.add(label, "", "a trigger has exactly one of %s, found %s: make one trigger of each", triggerKindList(), strings.Join(kinds, " and "))
		return nil
	}
	for _, k := range sortedKeys(fields) {
		if k != kind && !slices.Contains(triggerFields[kind], k) {
			p.add(label, k, "only valid on %s; %s triggers take %s", triggersOwning(k), kind, strings.Join(triggerFieldsOf(kind), ", "))
		}
	}

	t := &Trigger{Kind: TriggerKind(kind)}
	at := exprAt{sc: &scope{trigger: t.Kind}}
	switch t.Kind {
	case TriggerSubject:
		p.subjectTrigger(label, t, fields)
	case TriggerCron:
		p.cronTrigger(label, t, fields)
	case TriggerWebhook:
		p.webhookTrigger(label, t, fields, webhooks)
	}
	if n := fields["filter"]; n != nil && t.Kind != TriggerCron {
		t.Filter = p.expr(label, "filter", n, at, wantBool)
	}
	if n := fields["id"]; n != nil {
		t.ID = p.templateOf(label, "id", n, at, wantString)
	}
	if n := fields["input"]; n != nil {
		t.Input = p.template(label, "input", n, at)
	}
	return t
}

// triggerKinds returns the trigger kinds named among n's keys, once each,
// in the order of triggerKindNames.
func triggerKinds(n *yaml.Node) []string {
	var kinds []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Kind == yaml.ScalarNode && triggerFields[k.Value] != nil && !slices.Contains(kinds, k.Value) {
			kinds = append(kinds, k.Value)
		}
	}
	slices.SortFunc(kinds, func(a, b string) int {
		return slices.Index(triggerKindNames, a) - slices.Index(triggerKindNames, b)
	})
	return kinds
}

// triggerFieldNodes returns the fields of the trigger n, reporting unknown
// ones with the fields that kind (when it is known) takes.
func (p *parser) triggerFieldNodes(label string, n *yaml.Node, kind string) map[string]*yaml.Node {
	return p.fieldsFunc(label, "", n, func(k string) string {
		switch {
		case slices.Contains(allTriggerFields, k):
			return ""
		case suggestOnly(k, allTriggerFields) != "":
			return "unknown field" + suggestOnly(k, allTriggerFields)
		case kind != "":
			return fmt.Sprintf("unknown field; %s triggers take %s", kind, strings.Join(triggerFieldsOf(kind), ", "))
		}
		return fmt.Sprintf("unknown field; a trigger takes one of %s, and the fields of its kind", triggerKindList())
	})
}

// subjectTrigger parses the subject of a subject trigger into t.
func (p *parser) subjectTrigger(label string, t *Trigger, fields map[string]*yaml.Node) {
	if s, ok := p.str(label, "subject", fields["subject"]); ok {
		if msg := subjectProblem(s); msg != "" {
			p.add(label, "subject", "%s", msg)
		}
		t.Subject = s
	}
}

// webhookTrigger parses the fields of a webhook trigger into t and records
// its name in webhooks.
func (p *parser) webhookTrigger(label string, t *Trigger, fields map[string]*yaml.Node, webhooks map[string]string) {
	if name, ok := p.str(label, "webhook", fields["webhook"]); ok {
		switch first, dup := webhooks[name]; {
		case !nameRE.MatchString(name):
			p.add(label, "webhook", "invalid webhook name %q: use letters, digits, _ and - (at most 64)", name)
		case dup:
			p.add(label, "webhook", "duplicate webhook %q: %s already uses it; webhook names must be unique", name, first)
		default:
			webhooks[name] = label
		}
		t.Webhook = name
	}
	if n := fields["secret_env"]; n != nil {
		if v, ok := p.str(label, "secret_env", n); ok {
			if !envNameRE.MatchString(v) {
				p.add(label, "secret_env", "invalid environment variable name %q: use upper-case letters, digits and _, not starting with a digit (name the variable that holds the secret, not the secret)", v)
			}
			t.SecretEnv = v
		}
	}
}

// cronTrigger parses the fields of a cron trigger into t.
func (p *parser) cronTrigger(label string, t *Trigger, fields map[string]*yaml.Node) {
	t.Location = time.UTC
	if n := fields["timezone"]; n != nil {
		if name, ok := p.str(label, "timezone", n); ok {
			switch loc, err := time.LoadLocation(name); {
			case name == "":
				p.add(label, "timezone", "must not be empty (leave it out for UTC)")
			case name == "Local":
				p.add(label, "timezone", "must name a zone, like Europe/Paris or UTC: Local depends on the host")
			case err != nil:
				p.add(label, "timezone", "unknown time zone %q: use an IANA name like Europe/Paris or UTC", name)
			default:
				t.Location = loc
			}
		}
	}
	if n := fields["catchup"]; n != nil {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&t.Catchup) != nil {
			p.add(label, "catchup", "must be true or false")
		}
	}
	spec, ok := p.str(label, "cron", fields["cron"])
	if !ok {
		return
	}
	t.Cron = spec
	trimmed := strings.TrimSpace(spec)
	switch {
	case trimmed == "":
		p.add(label, "cron", "must not be empty: %s", cronHelp)
		return
	case strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ="):
		p.add(label, "cron", "set the time zone with timezone:, not in the schedule")
		return
	}
	sched, err := parseCron(trimmed)
	if err != nil {
		p.add(label, "cron", "invalid schedule %q: %v; %s", spec, err, cronHelp)
		return
	}
	switch s := sched.(type) {
	case *cron.SpecSchedule:
		sched = zoned(s, t.Location)
		// Next searches five years ahead, which holds every date there is.
		if s.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
			p.add(label, "cron", "schedule %q never fires: no date matches it", spec)
			return
		}
	case cron.ConstantDelaySchedule:
		if d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(trimmed, "@every"))); err == nil && d < time.Second {
			p.add(label, "cron", "@every needs an interval of at least 1s")
			return
		}
	}
	t.Schedule = sched
}

// parseCron parses a schedule, turning a panic of the parser into an error.
func parseCron(spec string) (s cron.Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return cronParser.Parse(spec)
}

// subjectProblem says what is wrong with a trigger's NATS subject, or
// returns "".
func subjectProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty: give a NATS subject like orders.created"
	case strings.ContainsFunc(s, unicode.IsSpace):
		return fmt.Sprintf("invalid subject %q: subjects have no whitespace", s)
	case eventstore.ReservedSubject(s):
		return fmt.Sprintf("subject %q is reserved: subjects starting with %s belong to NATS and Weft", s, eventstore.ReservedPrefixes())
	}
	tokens := strings.Split(s, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return fmt.Sprintf("invalid subject %q: it has an empty token; separate tokens with single dots, none at either end", s)
		case len(tok) > 1 && strings.ContainsAny(tok, "*>"):
			return fmt.Sprintf("invalid subject %q: the wildcards * and > must be whole tokens", s)
		case tok == ">" && i < len(tokens)-1:
			return fmt.Sprintf("invalid subject %q: > must be the last token", s)
		case i == 0 && (tok == "*" || tok == ">"):
			return fmt.Sprintf("invalid subject %q: start with a literal token; a leading wildcard would also match Weft's own weft. subjects", s)
		}
	}
	return ""
}

// triggerFieldsOf lists the fields a trigger of the given kind takes, sorted.
func triggerFieldsOf(kind string) []string {
	fields := append([]string{kind}, triggerFields[kind]...)
	sort.Strings(fields)
	return fields
}

// triggersOwning names the trigger kinds that take a field, e.g. "cron triggers".
func triggersOwning(field string) string {
	var ks []string
	for _, k := range triggerKindNames {
		if k == field || slices.Contains(triggerFields[k], field) {
			ks = append(ks, k)
		}
	}
	return strings.Join(ks, " and ") + " triggers"
}

// DeclaredSubjects returns the subjects of the subject triggers a
// definition's source declares, read leniently: nothing else of it is
// checked, so a definition this build cannot compile (a newer version's)
// still says which subjects it may take. ok is false when the triggers
// cannot be read so (not a list of triggers, a subject that is not text,
// a trigger of a kind or with a field this build does not know): it may
// take any.
func DeclaredSubjects(src []byte) (subjects []string, ok bool) {
	var doc struct {
		Triggers []map[string]any `yaml:"triggers"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, false
	}
	for _, t := range doc.Triggers {
		for k := range t {
			if !slices.Contains(allTriggerFields, k) {
				return nil, false
			}
		}
		switch s, has := t["subject"]; {
		case has:
			text, isText := s.(string)
			if !isText {
				return nil, false
			}
			subjects = append(subjects, text)
		case t["cron"] != nil, t["webhook"] != nil:
		default:
			return nil, false
		}
	}
	return subjects, true
}
