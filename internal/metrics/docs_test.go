package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"
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
