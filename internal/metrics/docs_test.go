package metrics

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/weftworks/weft/orchestrator/definition"
)

// known are the series names Weft reports: each metric's, and a
// histogram's _bucket, _sum and _count.
func known() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{NameWorkflowsStarted, NameWorkflowsClosed, NameStepsSuspended, NameStepAttempts, NameTaskBacklog, NameConflicts, NameTriggerEvents, NameTaskHeld, NameCallsWaiting, NameReadsBehind, NameCachedStates, NameCachedBytes} {
		m[n] = true
	}
	for _, n := range []string{NameWorkflowDuration, NameStepDuration, NameScheduleToStart, NameDecision, NameReadWait} {
		m[n], m[n+"_bucket"], m[n+"_sum"], m[n+"_count"] = true, true, true, true
	}
	return m
}

var seriesName = regexp.MustCompile(`\bweft_[a-z_]+\b`)

// checkNames fails the test for each weft_ name in text that Weft does not
// report.
func checkNames(t *testing.T, file, text string) {
	t.Helper()
	k := known()
	for _, n := range seriesName.FindAllString(text, -1) {
		if !k[n] {
			t.Errorf("%s names %s, which Weft does not report", file, n)
		}
	}
}

// The operations guide, the alert rules and the dashboard name only the
// metrics Weft reports, and the rules and dashboard are well formed.
func TestDocsNameKnownMetrics(t *testing.T) {
	read := func(file string) string {
		b, err := os.ReadFile("../../docs/" + file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	guide := read("operations.md")
	checkNames(t, "operations.md", guide)
	for _, n := range []string{NameWorkflowsStarted, NameWorkflowsClosed, NameWorkflowDuration, NameStepsSuspended, NameStepAttempts, NameStepDuration,
		NameScheduleToStart, NameTaskBacklog, NameConflicts, NameDecision, NameTriggerEvents, NameTaskHeld, NameReadsBehind, NameCachedStates, NameCachedBytes} {
		if !regexp.MustCompile("`" + n + "`").MatchString(guide) {
			t.Errorf("operations.md does not describe %s", n)
		}
	}

	rules := read("weft-alerts.yml")
	checkNames(t, "weft-alerts.yml", rules)
	var rf struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				For         string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal([]byte(rules), &rf); err != nil {
		t.Fatalf("weft-alerts.yml: %v", err)
	}
	if len(rf.Groups) == 0 || len(rf.Groups[0].Rules) < 5 {
		t.Fatalf("weft-alerts.yml: %+v", rf)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("weft-alerts.yml: incomplete rule %+v", r)
			}
		}
	}

	dash := read("weft-dashboard.json")
	checkNames(t, "weft-dashboard.json", dash)
	var d struct {
		Title  string
		Panels []struct {
			Type    string
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(dash), &d); err != nil {
		t.Fatalf("weft-dashboard.json: %v", err)
	}
	exprs := 0
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("weft-dashboard.json: panel %q has no query", p.Title)
		}
		exprs += len(p.Targets)
	}
	if d.Title == "" || exprs < 10 {
		t.Fatalf("weft-dashboard.json: %q with %d queries", d.Title, exprs)
	}
}

// metric is what the code reports of one metric: its type, its labels and,
// for the labels whose values are a fixed set, that set.
type metric struct {
	typ    dto.MetricType
	help   string
	labels map[string]bool
	values map[string][]string
}

// reported registers every recorder on a registry, records through each,
// and returns what the registry then reports, by metric name.
func reported(t *testing.T) map[string]metric {
	t.Helper()
	reg := prometheus.NewRegistry()
	w := NewWorkflows(reg)
	w.Started("d")
	w.Closed("d", StatusCompleted, time.Second)
	w.Suspended("d")
	o := NewOrchestrator(reg)
	o.Conflict()
	o.Decided(time.Now())
	o.Cached(1, 1)
	s := NewSteps(reg)
	s.Attempt("t", AttemptCompleted)
	s.Ran("t", time.Second)
	s.Waited("t", time.Second)
	s.Held("t", HeldPaused)
	NewTriggers(reg).Event("d", "cron", TriggerStarted)
	r := NewReads(reg)
	r.Waited(0)
	r.Behind()
	NewWaiting(reg, func() (int, int) { return 0, 0 })
	reg.MustRegister(NewBacklog(func(context.Context) (map[string]uint64, error) { return map[string]uint64{"t": 0}, nil }))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, k := range []definition.TriggerKind{definition.TriggerSubject, definition.TriggerCron, definition.TriggerWebhook} {
		kinds = append(kinds, string(k))
	}
	values := map[string]map[string][]string{
		NameWorkflowsClosed:  {labelStatus: Statuses},
		NameWorkflowDuration: {labelStatus: Statuses},
		NameStepAttempts:     {labelOutcome: AttemptOutcomes},
		NameTaskHeld:         {labelReason: {HeldPaused, HeldConcurrency, HeldRateLimit}},
		NameTriggerEvents:    {labelKind: kinds, labelOutcome: TriggerOutcomes},
		NameCallsWaiting:     {"call": {"await", "watch"}},
	}
	out := map[string]metric{}
	for _, f := range fams {
		m := metric{typ: f.GetType(), help: f.GetHelp(), labels: map[string]bool{}, values: values[f.GetName()]}
		for _, l := range f.GetMetric()[0].GetLabel() {
			m.labels[l.GetName()] = true
		}
		out[f.GetName()] = m
	}
	for _, n := range []string{NameWorkflowsStarted, NameWorkflowsClosed, NameWorkflowDuration, NameStepsSuspended, NameStepAttempts, NameStepDuration,
		NameScheduleToStart, NameTaskBacklog, NameTaskHeld, NameConflicts, NameDecision, NameCachedStates, NameCachedBytes, NameTriggerEvents,
		NameReadWait, NameReadsBehind, NameCallsWaiting} {
		if _, ok := out[n]; !ok {
			t.Fatalf("%s is not reported", n)
		}
	}
	return out
}

// series returns the metric a series name belongs to (a histogram's
// _bucket, _sum and _count belong to it), and the labels the series has.
func series(ms map[string]metric, name string) (metric, map[string]bool, bool) {
	if m, ok := ms[name]; ok {
		return m, m.labels, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if m, ok := ms[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && m.typ == dto.MetricType_HISTOGRAM {
			labels := maps.Clone(m.labels)
			if suffix == "_bucket" {
				labels["le"] = true
			}
			return m, labels, true
		}
	}
	return metric{}, nil, false
}

var (
	// overTime are the functions of a counter's range.
	overTime = regexp.MustCompile(`\b(rate|irate|increase|resets)\(\s*(weft_[a-z_]+)`)
	// selector is a series name with its label matchers.
	selector = regexp.MustCompile(`(weft_[a-z_]+)\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	grouping = regexp.MustCompile(`\b(by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelRef = regexp.MustCompile(`\$labels\.(\w+)`)
	literal  = regexp.MustCompile(`^[a-z_]*$`)
	// targetLabels are the labels Prometheus adds to every scraped series.
	targetLabels = map[string]bool{"job": true, "instance": true}
)

// checkExpr fails the test for what expr (a PromQL expression of file,
// where) asks of Weft's metrics that they do not have: a rate of a gauge,
// a quantile of what is not a histogram's buckets, a label a metric does
// not have, a label value never reported; it returns the labels of the
// metrics expr reads.
func checkExpr(t *testing.T, ms map[string]metric, where, expr string) map[string]bool {
	t.Helper()
	all := maps.Clone(targetLabels)
	for _, n := range seriesName.FindAllString(expr, -1) {
		if _, labels, ok := series(ms, n); ok {
			maps.Copy(all, labels)
		}
	}
	for _, g := range overTime.FindAllStringSubmatch(expr, -1) {
		if m, _, ok := series(ms, g[2]); ok && m.typ != dto.MetricType_COUNTER && m.typ != dto.MetricType_HISTOGRAM {
			t.Errorf("%s: %s of %s, a %s: %s", where, g[1], g[2], m.typ, expr)
		}
	}
	for rest := expr; ; {
		i := strings.Index(rest, "histogram_quantile(")
		if i < 0 {
			break
		}
		rest = rest[i+len("histogram_quantile("):]
		if n := seriesName.FindString(rest); n != "" {
			if m, _, ok := series(ms, n); ok && (m.typ != dto.MetricType_HISTOGRAM || !strings.HasSuffix(n, "_bucket")) {
				t.Errorf("%s: histogram_quantile of %s, not a histogram's buckets: %s", where, n, expr)
			}
		}
	}
	for _, s := range selector.FindAllStringSubmatch(expr, -1) {
		m, labels, ok := series(ms, s[1])
		if !ok {
			continue
		}
		for _, l := range matcher.FindAllStringSubmatch(s[2], -1) {
			name, op, value := l[1], l[2], l[3]
			if !labels[name] && !targetLabels[name] {
				t.Errorf("%s: %s has no label %s: %s", where, s[1], name, expr)
				continue
			}
			set := m.values[name]
			if set == nil || strings.Contains(value, "$") {
				continue
			}
			alternatives := []string{value}
			if op == "=~" || op == "!~" {
				alternatives = strings.Split(value, "|")
			}
			for _, v := range alternatives {
				if literal.MatchString(v) && !slices.Contains(set, v) {
					t.Errorf("%s: %s{%s} is never reported (%s is one of %v): %s", where, s[1], name, v, set, expr)
				}
			}
		}
	}
	for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[2], ",") {
			if l = strings.TrimSpace(l); l != "" && !all[l] {
				t.Errorf("%s: %s (%s): no metric of the expression has the label %s: %s", where, g[1], g[2], l, expr)
			}
		}
	}
	return all
}

var (
	// countsNew is an alert on any increase of a labelled counter.
	countsNew   = regexp.MustCompile(`\bincrease\(\s*(weft_[a-z_]+)[^\n]*\)\)\s*>\s*0\b`)
	promqlBlock = regexp.MustCompile("(?s)```promql\n(.*?)```")
	tableRow    = regexp.MustCompile("(?m)^\\| `(weft_[a-z_]+)` \\| (\\w+) \\|([^|]*)\\|")
	docLabel    = regexp.MustCompile("`(\\w+)`(?:\\s*\\(([^)]*)\\))?")
	backticked  = regexp.MustCompile("`(\\w+)`")
	labelValues = regexp.MustCompile(`^label_values\((.*),\s*(\w+)\)$`)
	alertRow    = regexp.MustCompile("(?m)^\\| `(Weft\\w+)` \\|")
)

// The alert rules, the dashboard's queries and the guide's queries ask of
// each metric only what it is (no rate of a gauge, no quantile of what is
// not a histogram's buckets), with labels it has and label values it
// reports; the guide's table of metrics gives each metric's type, labels
// and label values as the code reports them, and lists every alert.
func TestDocsAskWhatMetricsAre(t *testing.T) {
	ms := reported(t)
	read := func(file string) string {
		b, err := os.ReadFile("../../docs/" + file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Expr        string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal([]byte(read("weft-alerts.yml")), &rf); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			where := "weft-alerts.yml " + r.Alert
			labels := checkExpr(t, ms, where, r.Expr)
			for _, a := range r.Annotations {
				for _, l := range labelRef.FindAllStringSubmatch(a, -1) {
					if !labels[l[1]] {
						t.Errorf("%s: an annotation names $labels.%s, which no metric of the expression has", where, l[1])
					}
				}
			}
			// A labelled counter's series appears at its first count, and
			// increase sees no increase in a series' first sample: an alert
			// on any increase must also take the series that appeared
			// within its range.
			for _, c := range countsNew.FindAllStringSubmatch(r.Expr, -1) {
				if m, _, ok := series(ms, c[1]); ok && len(m.labels) > 0 && !(strings.Contains(r.Expr, "unless") && strings.Contains(r.Expr, "offset")) {
					t.Errorf("%s: misses the first count of a new series of %s (a series appearing at 1 is no increase): %s", where, c[1], r.Expr)
				}
			}
		}
	}

	var d struct {
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(read("weft-dashboard.json")), &d); err != nil {
		t.Fatal(err)
	}
	for _, v := range d.Templating.List {
		if lv := labelValues.FindStringSubmatch(v.Definition); lv != nil {
			// label_values(series, label) asks for a label of series.
			checkExpr(t, ms, "weft-dashboard.json variable "+v.Name, "max by ("+lv[2]+") ("+lv[1]+")")
		} else if v.Definition != "" {
			checkExpr(t, ms, "weft-dashboard.json variable "+v.Name, v.Definition)
		}
	}
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			checkExpr(t, ms, "weft-dashboard.json panel "+p.Title, q.Expr)
		}
	}

	guide := read("operations.md")
	for _, b := range promqlBlock.FindAllStringSubmatch(guide, -1) {
		checkExpr(t, ms, "operations.md", b[1])
	}
	types := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE, "histogram": dto.MetricType_HISTOGRAM}
	rows := map[string]bool{}
	for _, row := range tableRow.FindAllStringSubmatch(guide, -1) {
		name, typ, cell := row[1], row[2], row[3]
		rows[name] = true
		m, ok := ms[name]
		if !ok {
			t.Errorf("operations.md's table lists %s, which Weft does not report", name)
			continue
		}
		if want, ok := types[typ]; !ok || want != m.typ {
			t.Errorf("operations.md's table gives %s as a %s; it is a %s", name, typ, m.typ)
		}
		labels := map[string]bool{}
		for _, l := range docLabel.FindAllStringSubmatch(cell, -1) {
			labels[l[1]] = true
			var values []string
			for _, v := range backticked.FindAllStringSubmatch(l[2], -1) {
				values = append(values, v[1])
			}
			if values != nil && !equalSets(values, m.values[l[1]]) {
				t.Errorf("operations.md's table gives %s{%s} the values %v; the code reports %v", name, l[1], values, m.values[l[1]])
			}
		}
		if !maps.Equal(labels, m.labels) {
			t.Errorf("operations.md's table gives %s the labels %v; the code reports %v", name, slices.Sorted(maps.Keys(labels)), slices.Sorted(maps.Keys(m.labels)))
		}
	}
	for name := range ms {
		if strings.HasPrefix(name, "weft_") && !rows[name] {
			t.Errorf("operations.md's table does not list %s", name)
		}
	}
	// A help text that names the values of a label names them all.
	for name, m := range ms {
		for label, set := range m.values {
			if name == NameWorkflowDuration {
				continue
			}
			for _, v := range set {
				if !strings.Contains(m.help, v) {
					t.Errorf("the help of %s does not name %s=%q", name, label, v)
				}
			}
		}
	}

	var documented []string
	for _, a := range alertRow.FindAllStringSubmatch(guide, -1) {
		documented = append(documented, a[1])
	}
	if !equalSets(alerts, documented) {
		t.Errorf("operations.md's table of alerts lists %v; weft-alerts.yml has %v", documented, alerts)
	}
}

func equalSets(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}
