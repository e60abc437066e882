package definition

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const triggered = `
name: orders
steps:
  - id: handle
    task: t
    input: "${ input }"
triggers:
  - subject: orders.created
    filter: "${ event.total > 100 && headers.?source.orValue('') != 'test' }"
    id: "${ 'order-' + string(event.id) }"
    input: "${ {'order': event, 'subject': subject} }"
  - subject: orders.*.eu.>
  - cron: "0 9 * * MON-FRI"
    timezone: Europe/Paris
    catchup: true
    id: "report-${ tick }"
    input: { report: daily, at: "${ tick }", none: "${ event == null && size(headers) == 0 }", from: "${ subject }" }
  - cron: "*/10 * * * * *"
  - cron: "@every 1m"
  - cron: "@hourly"
  - webhook: new-signup
    secret_env: SIGNUP_SECRET
    filter: "event.plan == 'pro'"
    input: { email: "${ event.email }", sig: "${ headers['X-Signature'] }" }
  - webhook: other_hook
`

func TestParseTriggers(t *testing.T) {
	d := mustParse(t, triggered)
	if len(d.Triggers) != 8 {
		t.Fatalf("got %d triggers, want 8", len(d.Triggers))
	}
	type plan struct {
		Kind      TriggerKind
		Subject   string
		Cron      string
		Location  string
		Catchup   bool
		Webhook   string
		SecretEnv string
		Filter    string
		ID        bool
		Input     bool
		Schedule  bool
	}
	want := []plan{
		{Kind: TriggerSubject, Subject: "orders.created", Filter: "${ event.total > 100 && headers.?source.orValue('') != 'test' }", ID: true, Input: true},
		{Kind: TriggerSubject, Subject: "orders.*.eu.>"},
		{Kind: TriggerCron, Cron: "0 9 * * MON-FRI", Location: "Europe/Paris", Catchup: true, ID: true, Input: true, Schedule: true},
		{Kind: TriggerCron, Cron: "*/10 * * * * *", Location: "UTC", Schedule: true},
		{Kind: TriggerCron, Cron: "@every 1m", Location: "UTC", Schedule: true},
		{Kind: TriggerCron, Cron: "@hourly", Location: "UTC", Schedule: true},
		{Kind: TriggerWebhook, Webhook: "new-signup", SecretEnv: "SIGNUP_SECRET", Filter: "event.plan == 'pro'", Input: true},
		{Kind: TriggerWebhook, Webhook: "other_hook"},
	}
	keyRE := regexp.MustCompile(`^[0-9a-f]{12}$`)
	keys := map[string]bool{}
	for i, tr := range d.Triggers {
		got := plan{Kind: tr.Kind, Subject: tr.Subject, Cron: tr.Cron, Catchup: tr.Catchup, Webhook: tr.Webhook,
			SecretEnv: tr.SecretEnv, ID: tr.ID != nil, Input: tr.Input != nil, Schedule: tr.Schedule != nil}
		if tr.Location != nil {
			got.Location = tr.Location.String()
		}
		if tr.Filter != nil {
			got.Filter = tr.Filter.Source
		}
		if got != want[i] {
			t.Errorf("triggers[%d] = %+v\nwant %+v", i, got, want[i])
		}
		if !keyRE.MatchString(tr.Key) || keys[tr.Key] {
			t.Errorf("triggers[%d]: key %q is not 12 hex digits, or not unique", i, tr.Key)
		}
		keys[tr.Key] = true
	}

	// Schedules, in their time zones.
	tests := []struct {
		trigger  int
		from     time.Time
		wantNext time.Time
	}{
		// Friday noon in Paris: next is Monday 09:00 CET, 08:00 UTC.
		{2, time.Date(2025, 1, 3, 11, 0, 0, 0, time.UTC), time.Date(2025, 1, 6, 8, 0, 0, 0, time.UTC)},
		// Summer time: 09:00 CEST is 07:00 UTC.
		{2, time.Date(2025, 7, 1, 6, 0, 0, 0, time.UTC), time.Date(2025, 7, 1, 7, 0, 0, 0, time.UTC)},
		// Six fields, seconds first.
		{3, time.Date(2025, 1, 1, 12, 0, 3, 0, time.UTC), time.Date(2025, 1, 1, 12, 0, 10, 0, time.UTC)},
		{3, time.Date(2025, 1, 1, 12, 0, 59, 0, time.UTC), time.Date(2025, 1, 1, 12, 1, 0, 0, time.UTC)},
		{4, time.Date(2025, 1, 1, 12, 0, 3, 0, time.UTC), time.Date(2025, 1, 1, 12, 1, 3, 0, time.UTC)},
		// Default UTC, whatever the zone of the time given.
		{5, time.Date(2025, 1, 1, 12, 30, 0, 0, time.FixedZone("X", 90*60)), time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got := d.Triggers[tt.trigger].Schedule.Next(tt.from)
		if !got.Equal(tt.wantNext) {
			t.Errorf("triggers[%d].Schedule.Next(%v) = %v, want %v", tt.trigger, tt.from, got.UTC(), tt.wantNext)
		}
	}
}

func TestTriggerKeys(t *testing.T) {
	keys := func(src string) []string {
		t.Helper()
		var out []string
		for _, tr := range mustParse(t, "name: k\nsteps: [{id: a, task: t}]\ntriggers:\n"+src).Triggers {
			out = append(out, tr.Key)
		}
		return out
	}
	first := keys(triggered[strings.Index(triggered, "triggers:\n")+len("triggers:\n"):])
	// Stable across parses, independent of position, filter, id and input.
	if again := keys("  - webhook: other_hook\n  - subject: orders.created\n    input: 1\n  - cron: '0  9 * * MON-FRI'\n    timezone: Europe/Paris\n"); !reflect.DeepEqual(again, []string{first[7], first[0], first[2]}) {
		t.Errorf("keys = %v, want %v", again, []string{first[7], first[0], first[2]})
	}
	if got := keys("  - subject: orders.created\n"); got[0] != triggerKey("subject\x00orders.created") {
		t.Errorf("subject key = %s, want the hash of its kind and subject", got[0])
	}
	// The zone is part of a schedule; UTC is the default.
	k := []string{keys("  - cron: '@hourly'\n")[0], keys("  - cron: '@hourly'\n    timezone: UTC\n")[0], keys("  - cron: '@hourly'\n    timezone: Asia/Tokyo\n")[0]}
	if k[0] != k[1] || k[0] == k[2] {
		t.Errorf("cron keys = %v: want UTC to be the default zone, and another zone to differ", k)
	}
	// Triggers of the same spec get distinct keys, by their order.
	k = keys("  - subject: a.b\n    filter: event.x\n  - subject: a.b\n  - subject: a.c\n")
	if k[0] == k[1] || k[0] != keys("  - subject: a.b\n")[0] {
		t.Errorf("keys = %v: want the first a.b to keep its own key and the second to differ", k)
	}
}

func TestTriggerEval(t *testing.T) {
	d := mustParse(t, triggered)
	order, report, signup := d.Triggers[0], d.Triggers[2], d.Triggers[6]
	event := map[string]any{"id": int64(42), "total": 150.5}
	s := Scope{Trigger: map[string]any{"event": event, "subject": "orders.created", "headers": map[string]any{"source": "shop"}}}

	check := func(name string, got any, err error, want any) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	v, err := order.Filter.Eval(s)
	check("filter", v, err, true)
	v, err = order.ID.Eval(s)
	check("id", v, err, "order-42")
	v, err = order.Input.Eval(s)
	check("input", v, err, map[string]any{"order": map[string]any{"id": int64(42), "total": 150.5}, "subject": "orders.created"})

	// Headers in every accepted form; none at all is an empty map.
	for _, h := range []any{
		map[string]string{"source": "test"},
		map[string]any{"source": "test"},
		map[string]any{"source": []any{"test", "other"}},
		map[string][]string{"source": {"test"}},
		http.Header{"source": {"test", "other"}},
	} {
		s := s
		s.Trigger = map[string]any{"event": event, "headers": h}
		if v, err := order.Filter.Eval(s); err != nil || v != false {
			t.Errorf("headers %#v: filter = %v, %v; want false", h, v, err)
		}
	}
	s.Trigger = map[string]any{"event": map[string]any{"total": int64(101)}}
	v, err = order.Filter.Eval(s)
	check("filter without headers", v, err, true)

	tick := time.Date(2025, 1, 6, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	cs := Scope{Trigger: map[string]any{"tick": tick, "subject": "cron"}}
	v, err = report.ID.Eval(cs)
	check("cron id", v, err, "report-2025-01-06T08:00:00Z")
	v, err = report.Input.Eval(cs)
	check("cron input", v, err, map[string]any{"report": "daily", "at": "2025-01-06T08:00:00Z", "none": true, "from": "cron"})

	ws := Scope{Trigger: map[string]any{
		"event":   map[string]any{"plan": "pro", "email": "ann@example.com"},
		"subject": "webhook",
		"headers": http.Header{"X-Signature": {"sha256=abc"}},
	}}
	v, err = signup.Filter.Eval(ws)
	check("webhook filter", v, err, true)
	v, err = signup.Input.Eval(ws)
	check("webhook input", v, err, map[string]any{"email": "ann@example.com", "sig": "sha256=abc"})

	// Trigger expressions read only Trigger: the workflow's scope is not theirs.
	if _, err := order.ID.Eval(Scope{Input: event}); err == nil {
		t.Error("id evaluated from Input")
	}
	// Missing and mistyped values fail with an *EvalError.
	for name, tt := range map[string]struct {
		tmpl  *Template
		scope map[string]any
		want  string
	}{
		"no tick":       {report.ID, map[string]any{}, "evaluate id: no tick: only cron triggers have one"},
		"tick type":     {report.ID, map[string]any{"tick": "2025-01-01"}, "evaluate id: tick is a string, not a time.Time"},
		"subject type":  {report.Input, map[string]any{"tick": tick, "subject": 1}, "evaluate input.from: subject is a int, not a string"},
		"headers type":  {signup.Input, map[string]any{"event": map[string]any{"email": "x"}, "headers": []string{"x"}}, "evaluate input.sig: headers are a []string, not a map of strings"},
		"header value":  {signup.Input, map[string]any{"event": map[string]any{"email": "x"}, "headers": map[string]any{"X-Signature": 1}}, `evaluate input.sig: header "X-Signature" is a int, not a string`},
		"missing field": {order.ID, map[string]any{"event": map[string]any{}}, "evaluate id: no such key: id"},
	} {
		_, err := tt.tmpl.Eval(Scope{Trigger: tt.scope})
		var eerr *EvalError
		if !errors.As(err, &eerr) || err.Error() != tt.want {
			t.Errorf("%s: error = %v, want *EvalError %q", name, err, tt.want)
		}
	}

	// Workflow expressions do not see Trigger, even under its names.
	wf := mustParse(t, "name: w\nsteps:\n  - id: l\n    foreach: input.items\n    as: event\n    do: [{id: a, task: t, input: \"${ event }\"}]\n")
	v, err = wf.Step("a").Input.Eval(Scope{Locals: map[string]any{"event": "loop"}, Trigger: map[string]any{"event": "trigger"}})
	check("loop variable named event", v, err, "loop")
}

func TestTriggerExpressionsSeeOnlyTheEvent(t *testing.T) {
	for _, tt := range []struct {
		trigger string
		field   string
		want    string
	}{
		{"subject: a.b\n    filter: steps.handle.output", "filter", "undeclared reference to 'steps': a trigger runs before its workflow exists, so its expressions see only event, headers and subject"},
		{"webhook: h\n    input: \"${ input }\"", "input", "undeclared reference to 'input'"},
		{"subject: a.b\n    id: \"${ workflow.id }\"", "id", "undeclared reference to 'workflow'"},
		{"webhook: h\n    filter: \"vars.x\"", "filter", "undeclared reference to 'vars'"},
		{"subject: a.b\n    input: \"${ item }\"", "input", "undeclared reference to 'item'"},
		{"subject: a.b\n    filter: \"tick > timestamp('2020-01-01T00:00:00Z')\"", "filter", "only cron triggers have tick"},
		{"cron: '@daily'\n    input: \"${ steps }\"", "input", "see only event (null), headers, subject and tick"},
		{"subject: a.b\n    filter: \"event.n + 1\"", "filter", "must yield a bool, not"},
		{"subject: a.b\n    filter: \"subject\"", "filter", "must yield a bool, not string"},
		{"subject: a.b\n    id: \"${ size(headers) }\"", "id", "must yield a string, not int"},
		{"subject: a.b\n    id: [a]", "id", "must be a string"},
	} {
		src := "name: x\nsteps:\n  - id: handle\n    task: t\ntriggers:\n  - " + tt.trigger + "\n"
		_, err := Parse([]byte(src))
		var perr *Error
		if !errors.As(err, &perr) || len(perr.Problems) != 1 {
			t.Errorf("%s: Parse = %v, want one problem", tt.trigger, err)
			continue
		}
		if p := perr.Problems[0]; p.Step != "triggers[0]" || p.Field != tt.field || !strings.Contains(p.Message, tt.want) {
			t.Errorf("%s: problem = %+v, want triggers[0], field %s, %q", tt.trigger, p, tt.field, tt.want)
		}
	}
}

func TestSubjectProblem(t *testing.T) {
	for _, s := range []string{"a", "orders.created", "orders.*", "orders.>", "a.*.b.>", "a-b_c:d.é"} {
		if msg := subjectProblem(s); msg != "" {
			t.Errorf("subject %q: %s", s, msg)
		}
	}
	for s, want := range map[string]string{
		"":          "must not be empty",
		"weft.t.>":  "reserved",
		"$SYS.x":    "reserved",
		".a":        "empty token",
		"a.":        "empty token",
		"a..b":      "empty token",
		"a\tb":      "whitespace",
		"a.b*":      "whole tokens",
		"a.>>":      "whole tokens",
		"a.>.b":     "last token",
		"*.created": "literal token",
		">":         "literal token",
	} {
		if msg := subjectProblem(s); !strings.Contains(msg, want) {
			t.Errorf("subject %q: problem %q, want %q", s, msg, want)
		}
	}
}

// TestDefect13_CronAcrossDaylightSavingChanges checks the ticks of cron
// schedules over days when the clock jumps: a time of day the clock skips
// fires once, at the instant of the jump; a time of day the clock repeats
// fires once, at its first occurrence; schedules that fire every hour keep
// firing every real hour.
func TestDefect13_CronAcrossDaylightSavingChanges(t *testing.T) {
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	tests := []struct {
		name, cron, zone, from string
		want                   []string // the next ticks, in UTC
	}{
		// 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
		{"skipped time fires at the jump", "30 2 * * *", "Europe/Paris", "2026-03-27T12:00:00Z",
			[]string{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		{"skipped time, from just before the jump", "30 2 * * *", "Europe/Paris", "2026-03-29T00:59:59Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"skipped times fire once at the jump", "0,30 2 * * *", "Europe/Paris", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T00:30:00Z"}},
		{"skipped and the jump's own time fire once", "0 2,3 * * *", "Europe/Paris", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z", "2026-03-30T01:00:00Z"}},
		{"six fields", "0 30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		// 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET (01:00 UTC).
		{"repeated time fires once", "30 2 * * *", "Europe/Paris", "2026-10-23T12:00:00Z",
			[]string{"2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"}},
		{"repeated time, from the second pass", "30 2 * * *", "Europe/Paris", "2026-10-25T01:10:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"repeated time, from the first pass", "30 2 * * *", "Europe/Paris", "2026-10-25T00:10:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"repeated times fire once", "*/20 2 * * *", "Europe/Paris", "2026-10-25T00:30:00Z",
			[]string{"2026-10-25T00:40:00Z", "2026-10-26T01:00:00Z"}},
		// Every hour: each real hour fires, so the repeated hour too, and
		// the skipped hour is not made up.
		{"hourly through the repeated hour", "0 * * * *", "Europe/Paris", "2026-10-24T23:30:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"}},
		{"hourly through the skipped hour", "30 * * * *", "Europe/Paris", "2026-03-29T00:00:00Z",
			[]string{"2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"}},
		// Santiago skips midnight on 2026-09-06 (00:00 -04 becomes 01:00 -03)
		// and repeats 23:00-23:59 on 2026-04-04.
		{"skipped midnight", "0 0 * * *", "America/Santiago", "2026-09-05T12:00:00Z",
			[]string{"2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"}},
		{"skipped midnight on its day only", "0 0 6 9 *", "America/Santiago", "2026-09-01T12:00:00Z",
			[]string{"2026-09-06T04:00:00Z", "2027-09-06T03:00:00Z"}},
		{"repeated hour before midnight", "30 23 * * *", "America/Santiago", "2026-04-04T12:00:00Z",
			[]string{"2026-04-05T02:30:00Z", "2026-04-06T03:30:00Z"}},
		// Lord Howe Island moves its clock by 30 minutes: 02:00 becomes 02:30.
		{"half-hour jump", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T00:00:00Z",
			[]string{"2026-10-03T15:30:00Z", "2026-10-04T15:15:00Z"}},
		// No change in UTC.
		{"UTC", "30 2 * * *", "UTC", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T02:30:00Z", "2026-03-30T02:30:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := mustParse(t, "name: c\nsteps: [{id: a, task: t}]\ntriggers:\n  - cron: '"+tt.cron+"'\n    timezone: "+tt.zone+"\n").Triggers[0]
			var got []string
			at := utc(tt.from)
			for range tt.want {
				// As the trigger engine computes each next tick.
				at = tr.Schedule.Next(at.In(tr.Location)).UTC()
				got = append(got, at.Format(time.RFC3339))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s in %s from %s: ticks\n%v\nwant\n%v", tt.cron, tt.zone, tt.from, got, tt.want)
			}
		})
	}

	// Through a whole year, a daily schedule fires once every local day, at
	// its time unless the clock skipped it.
	for _, zone := range []string{"Europe/Paris", "America/New_York", "America/Santiago", "Australia/Lord_Howe", "Asia/Kathmandu"} {
		for _, hm := range [][2]int{{2, 30}, {0, 0}, {23, 45}, {1, 15}} {
			spec := fmt.Sprintf("%d %d * * *", hm[1], hm[0])
			tr := mustParse(t, "name: c\nsteps: [{id: a, task: t}]\ntriggers:\n  - cron: '"+spec+"'\n    timezone: "+zone+"\n").Triggers[0]
			days := map[string]int{}
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, tr.Location).Add(-time.Second)
			for {
				next := tr.Schedule.Next(at.In(tr.Location))
				if !next.After(at) {
					t.Fatalf("%s in %s: Next(%v) = %v, not after it", spec, zone, at, next)
				}
				if at = next; at.Year() > 2026 {
					break
				}
				local := at.In(tr.Location)
				days[local.Format(time.DateOnly)]++
				_, before := local.Add(-time.Second).Zone()
				if _, off := local.Zone(); (local.Hour() != hm[0] || local.Minute() != hm[1]) && off <= before {
					t.Errorf("%s in %s: tick %v is off its time, and not at a jump", spec, zone, local)
				}
			}
			if len(days) != 365 {
				t.Errorf("%s in %s: ticks on %d days of 2026, want 365", spec, zone, len(days))
			}
			for day, n := range days {
				if n != 1 {
					t.Errorf("%s in %s: %d ticks on %s", spec, zone, n, day)
				}
			}
		}
	}
}

// A definition's subject triggers are read from its source without
// compiling the rest (a newer version's definition); triggers that cannot
// be read so say so.
func TestDeclaredSubjects(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want []string
		ok   bool
	}{
		{"name: a\ntriggers:\n  - subject: orders.>\n  - cron: '* * * * *'\n  - webhook: hook\n  - subject: pay.new\nsteps: [ {id: a, frobnicate: yes} ]\n", []string{"orders.>", "pay.new"}, true},
		{`{"name": "a", "triggers": [{"subject": "x.y"}], "steps": []}`, []string{"x.y"}, true},
		{"name: a\nsteps: [ {id: a, task: t} ]\n", nil, true},
		{"name: a\ntriggers:\n  - stream: orders\n", nil, false},
		{"name: a\ntriggers:\n  - subject: a.b\n    also: c.d\n", nil, false},
		{"name: a\ntriggers:\n  - subject: [a, b]\n", nil, false},
		{"name: a\ntriggers: {subject: x}\n", nil, false},
		{"name: [\n", nil, false},
	} {
		got, ok := DeclaredSubjects([]byte(tc.src))
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("DeclaredSubjects(%q) = %q, %v; want %q, %v", tc.src, got, ok, tc.want, tc.ok)
		}
	}
}
