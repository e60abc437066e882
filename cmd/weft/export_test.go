package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// export reads runs' histories ahead of the one it writes, and still
// writes each run whole, its events in order, the runs in the order the
// listing gives them (newest first), a run of more than one page of
// history among them; --resume-after goes on after a run in the middle.
func TestExportWritesEveryRunWholeInListingOrder(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr}, []string{server})
	file := filepath.Join(t.TempDir(), "ex.yaml")
	if err := os.WriteFile(file, []byte(`
name: ex
steps:
  - id: each
    foreach: input.items
    do:
      - { id: say, task: echo, input: "${ item }" }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	const runs = 30
	for i := range runs {
		items := "[1]"
		if i == 7 {
			// More events than a page of history (500).
			items = "[" + strings.Repeat("1,", 299) + "1]"
		}
		if out, err := runCLI(t, "start", "ex", "--id", fmt.Sprintf("ex-%02d", i), "--input", `{"items":`+items+`}`, "--wait", server); err != nil {
			t.Fatalf("start %d: %v\n%s", i, err, out)
		}
	}
	export := func(args ...string) (order []string, events map[string]int) {
		t.Helper()
		out, err := runCLI(t, append([]string{"export", "--query", "definition == 'ex'", server}, args...)...)
		if err != nil {
			t.Fatalf("export %v: %v\n%s", args, err, out)
		}
		events = map[string]int{}
		for _, line := range strings.Split(out, "\n") {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var ev struct {
				WorkflowID string `json:"workflowId"`
				Seq        string `json:"seq"`
				Type       string `json:"type"`
			}
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("export line %q: %v", line, err)
			}
			if len(order) == 0 || order[len(order)-1] != ev.WorkflowID {
				if events[ev.WorkflowID] > 0 {
					t.Fatalf("run %s written in two parts", ev.WorkflowID)
				}
				if ev.Type != "WorkflowStarted" {
					t.Fatalf("run %s begins with %s", ev.WorkflowID, ev.Type)
				}
				order = append(order, ev.WorkflowID)
			}
			events[ev.WorkflowID]++
		}
		return order, events
	}
	order, events := export()
	if len(order) != runs {
		t.Fatalf("exported %d runs, want %d: %v", len(order), runs, order)
	}
	for i, id := range order {
		if want := fmt.Sprintf("ex-%02d", runs-1-i); id != want {
			t.Fatalf("run %d exported is %s, want %s (newest first): %v", i, id, want, order)
		}
	}
	if events["ex-07"] <= 500 || events["ex-06"] != events["ex-08"] {
		t.Fatalf("events exported: %v", events)
	}
	after, _ := export("--resume-after", "ex-20")
	if len(after) != 20 || after[0] != "ex-19" || after[19] != "ex-00" {
		t.Fatalf("export --resume-after ex-20: %v", after)
	}
}
