package e2e

import (
	"fmt"
	"testing"
	"time"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A new revision of a definition that counts a step's rate limit in longer
// periods (per: 1s -> per: 2s) goes on running that step: runs of the new
// revision get 2 tokens every 2 s. (They waited for ever: the period index
// the first revision stored, Unix time / 1s, read as a period of the
// second, Unix time / 2s, decades away.)
func TestARateLimitPerChangedByARevisionLetsStepsRun(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: tuned
steps:
  - id: call
    task: echo
    input: { n: "${ input.n }" }
    rate_limit: { limit: 2, per: 1s }
`)
	if w := e.waitClosed(e.start("tuned", "tuned-rev1", `{"n": 0}`), 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("revision 1's run: %v %v", w.Status, w.Error)
	}
	e.putDef(`
name: tuned
steps:
  - id: call
    task: echo
    input: { n: "${ input.n }" }
    rate_limit: { limit: 2, per: 2s }
`)
	var ids []string
	for n := range 4 {
		ids = append(ids, e.start("tuned", fmt.Sprintf("tuned-rev2-%d", n), fmt.Sprintf(`{"n": %d}`, n)))
	}
	// 4 runs at 2 every 2 s: done within about 4 s; 20 s is plenty.
	for _, id := range ids {
		if w := e.waitClosed(id, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("run %s: %v %v", id, w.Status, w.Error)
		}
	}
}
