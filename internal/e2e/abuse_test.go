package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// The abuse suite: one server, every door tried with hostile values at
// once, while a bystander run waits. Each door answers with a clear error
// (or fails only the hostile run), the server's heap stays bounded, and
// the bystander is untouched: its history does not move until it is
// signalled, and then it completes.
func TestAbuseSuite(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(approvalDef("72h"))
	e.putDef(`
name: bomb
steps:
  - { id: blow, task: echo, input: "${ input.s.replace('x', input.s) }" }
`)
	e.putDef(`
name: hook-owner
triggers:
  - webhook: abuse-hook
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
	bystander := e.start("approval", "bystander", `{"amount": 5}`)
	eventually(t, 20*time.Second, "the bystander to wait", func() bool {
		return stepStatus(e.get(bystander), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	before := len(e.history(bystander))
	victim := e.start("approval", "victim", `{"amount": 5}`)
	eventually(t, 20*time.Second, "the victim to wait", func() bool {
		return stepStatus(e.get(victim), "approve") == weftv1.StepStatus_STEP_STATUS_WAITING
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapBefore := ms.HeapInuse

	deep := nestedJSON(100)
	c := ctx(t)
	t.Run("deep start", func(t *testing.T) {
		_, err := e.wf.StartWorkflow(c, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "approval", Input: jsonValue(t, deep)}))
		wantCode(t, "deep start", err, connect.CodeInvalidArgument, "deeper")
	})
	t.Run("deep signal", func(t *testing.T) {
		wantCode(t, "deep signal", e.signal(victim, "approve", deep), connect.CodeInvalidArgument, "deeper")
	})
	t.Run("huge signal", func(t *testing.T) {
		err := e.signal(victim, "approve", `"`+strings.Repeat("x", 1100<<10)+`"`)
		wantCode(t, "huge signal", err, connect.CodeInvalidArgument, "limit is")
	})
	t.Run("forbidden subject", func(t *testing.T) {
		err := e.putDefErr(`
name: purge
steps:
  - { id: p, task: nats.publish, input: { subject: "$JS.API.STREAM.PURGE.WEFT_HISTORY", data: "x" } }
`)
		wantCode(t, "forbidden subject", err, connect.CodeInvalidArgument, "$JS.API.STREAM.PURGE.WEFT_HISTORY")
	})
	t.Run("history of another run", func(t *testing.T) {
		err := e.putDefErr(`
name: forge
steps:
  - { id: p, task: nats.publish, input: { subject: "weft.h.bystander.ext", data: "x", jetstream: true } }
`)
		wantCode(t, "another run's history", err, connect.CodeInvalidArgument, "weft.h.bystander.ext")
	})
	t.Run("duplicate webhook", func(t *testing.T) {
		err := e.putDefErr(`
name: hook-thief
triggers:
  - webhook: abuse-hook
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
		wantCode(t, "duplicate webhook", err, connect.CodeFailedPrecondition, "hook-owner")
	})
	t.Run("webhook bodies", func(t *testing.T) {
		for name, body := range map[string][]byte{
			"invalid UTF-8": []byte("{\"name\": \"caf\xe9\"}"),
			"deep":          []byte(deep),
			"not JSON":      []byte("{not json"),
			"a key twice":   []byte(`{"name": "a", "name": "b"}`),
		} {
			resp, err := http.Post(e.node.APIURL+"/hooks/abuse-hook", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode/100 != 4 {
				t.Errorf("%s body: status %d, want a 4xx", name, resp.StatusCode)
			}
		}
	})
	t.Run("expression bomb", func(t *testing.T) {
		id := e.start("bomb", "", `{"s": "`+strings.Repeat("x", 30<<10)+`"}`)
		w := e.waitClosed(id, 30*time.Second)
		if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || w.Error.Type != "limit" {
			t.Fatalf("status %v error %v", w.Status, w.Error)
		}
	})
	t.Run("signal flood", func(t *testing.T) {
		// 400 signals from 16 clients at once, each sending as fast as it
		// is answered.
		var wg sync.WaitGroup
		errs := make(chan error, 400)
		for c := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 25 {
					if err := e.signal(victim, "noise", fmt.Sprintf(`{"client": %d, "i": %d}`, c, i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("a signal of the flood was refused: %v", err)
		}
		if err := e.signal(victim, "approve", `{"by": "ann"}`); err != nil {
			t.Fatal(err)
		}
		if w := e.waitClosed(victim, 30*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
			t.Fatalf("victim: %v %v", w.Status, w.Error)
		}
	})

	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grown := int64(ms.HeapInuse) - int64(heapBefore); grown > 256<<20 {
		t.Errorf("the heap grew by %d MiB", grown>>20)
	}
	if after := len(e.history(bystander)); after != before {
		t.Fatalf("the bystander's history grew from %d to %d events", before, after)
	}
	if err := e.signal(bystander, "approve", `{"by": "ann"}`); err != nil {
		t.Fatal(err)
	}
	if w := e.waitClosed(bystander, 20*time.Second); w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		t.Fatalf("bystander: %v %v", w.Status, w.Error)
	}
	e.healthy()
}
