package doctor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Histories written by hand, with no orchestrator to move them: what the
// doctor makes of runs and entries an orchestrator would never leave so.
func TestCheckHandMadeHistories(t *testing.T) {
	ns := natstest.Start(t)
	nc := ns.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{
		"parent": "name: parent\nsteps:\n  - { id: kid, workflow: gate }\n",
		"gate":   "name: gate\nsteps:\n  - { id: gate, wait: { signal: go } }\n",
	} {
		if _, _, err := store.PutDefinition(ctx, name, src, "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().UTC().Add(-time.Minute)
	start := func(id, def string, parent *events.ParentRef) events.Event {
		return events.Event{Type: events.TypeWorkflowStarted, Time: t0, WorkflowStarted: &events.WorkflowStarted{
			WorkflowID: id, Definition: def, Revision: 1, Parent: parent}}
	}
	appendAll := func(id string, evs ...events.Event) {
		t.Helper()
		if _, err := store.Append(ctx, id, 0, evs...); err != nil {
			t.Fatal(err)
		}
	}
	index := func(id, status string) {
		t.Helper()
		if errs := store.PutSummaries(ctx, []eventstore.Summary{{ID: id, Status: status, Created: t0, Seq: 1}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}

	// A child the index lists as closed, whose parent it does not list and
	// which still waits for it.
	kid := workflow.ChildID("unlisted", "kid", 1)
	appendAll("unlisted", start("unlisted", "parent", nil), events.Event{Type: events.TypeChildStarted, Time: t0,
		ChildStarted: &events.ChildStarted{Path: "kid", Gen: 1, WorkflowID: kid, Definition: "gate"}})
	appendAll(kid, start(kid, "gate", &events.ParentRef{WorkflowID: "unlisted", Path: "kid", Gen: 1}),
		events.Event{Type: events.TypeWorkflowCanceled, Time: t0, WorkflowCanceled: &events.WorkflowCanceled{Reason: "by hand"}})
	index(kid, "CANCELED")
	// An entry with no history.
	index("ghost", "RUNNING")
	// A run of a definition that is not stored.
	appendAll("nodef", start("nodef", "missing", nil))
	index("nodef", "RUNNING")
	// A run whose history holds a record that does not decode.
	appendAll("torn", start("torn", "gate", nil))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "weft.h.torn.ev", []byte("not a record")); err != nil {
		t.Fatal(err)
	}
	index("torn", "RUNNING")

	// The check runs as if a minute later, past its grace period.
	later := func() time.Time { return time.Now().Add(time.Minute) }
	rep, err := doctor.Check(ctx, store, doctor.Options{Grace: time.Second, All: true, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"unlisted": {"drifted: history says RUNNING, but the index does not list it",
			"stuck: step kid: child workflow " + kid + " is CANCELED since", "but the parent was not told"},
		"ghost": {"drifted: index says RUNNING, but there is no history"},
		"nodef": {"stuck: its definition missing revision 1 cannot be loaded"},
		"torn":  {"stuck: its history cannot be read"},
	}
	if rep.Entries != 4 || rep.Stuck != 3 || rep.Drifted != 2 || len(rep.Problems) != len(want) {
		t.Fatalf("%d entries, %s; want 4 entries, 3 stuck, 2 drifted\n%+v", rep.Entries, rep.Summary(), rep.Problems)
	}
	for _, p := range rep.Problems {
		var got []string
		for _, f := range p.Findings {
			got = append(got, string(f.Kind)+": "+f.Reason)
		}
		all := strings.Join(got, "\n")
		for _, part := range want[p.ID] {
			if !strings.Contains(all, part) {
				t.Errorf("%s: %q, want it to say %q", p.ID, all, part)
			}
		}
	}
	for _, r := range rep.Runs {
		if r.ID == kid && (r.Verdict != doctor.Closed || len(r.Findings) != 0) {
			t.Errorf("the child: %s %v", r.Verdict, r.Findings)
		}
		if r.ID == "ghost" && r.Verdict != doctor.Missing {
			t.Errorf("the entry without history: %s", r.Verdict)
		}
	}

	// Within the grace period nothing is judged.
	rep, err = doctor.Check(ctx, store, doctor.Options{Grace: time.Hour, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].ID != "ghost" {
		t.Fatalf("with an hour's grace: %+v", rep.Problems)
	}
}

func TestReportSummary(t *testing.T) {
	rep := &doctor.Report{Running: 5, Moving: 3, Waiting: 1, Stuck: 1, Drifted: 2}
	if got, want := rep.Summary(), "5 running: 3 moving, 1 waiting for a signal, 1 stuck, 2 drifted"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if rep.OK() {
		t.Error("OK with problems")
	}
	rep = &doctor.Report{Running: 6, Moving: 1, Waiting: 5, Queued: 3, Suspended: 1}
	if got, want := rep.Summary(), "6 running: 1 moving, 1 waiting for a signal, 3 queued for a slot, 1 suspended until resumed, 0 stuck, 0 drifted"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if !(&doctor.Report{Running: 2, Moving: 2}).OK() {
		t.Error("not OK without problems")
	}
}
