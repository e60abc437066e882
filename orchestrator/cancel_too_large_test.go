package orchestrator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// A child started with an input whose start record fits, but not with a
// cancel in the same record: when its parent is canceled, the child must
// still be canceled (tryStartChild's ErrTooLarge is reported before it
// learns the child exists).
func TestACanceledParentCancelsItsChildNearTheLimit(t *testing.T) {
	r := newRig(t)
	r.putDef("kid", "name: kid\nsteps:\n  - { id: gate, wait: { signal: go } }\n")
	r.putDef("mum", "name: mum\nsteps:\n  - { id: k, workflow: kid, input: \"${ input }\" }\n")
	r.run()
	max := int(r.store.MaxPayload())
	left := 0
	for n := max - 1100; n < max; n += 40 {
		wf := fmt.Sprintf("mum-%d", n)
		if _, ok := r.startWith(wf, "mum", strings.Repeat("x", n), nil); !ok {
			continue
		}
		kid := workflow.ChildID(wf, "k", 1)
		started := false
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := r.store.LastSeq(r.ctx, kid); err == nil {
				started = true
				break
			}
			if n, _ := r.count(wf, func(ev events.Event) bool { return ev.Terminal() }); n > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !started {
			continue
		}
		r.requestCancel(wf, "stop")
		eventually(t, 10*time.Second, wf+" to close", func() bool {
			n, _ := r.count(wf, func(ev events.Event) bool { return ev.Terminal() })
			return n > 0
		})
		canceled := false
		deadline = time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) && !canceled {
			n, _ := r.count(kid, func(ev events.Event) bool { return ev.CancelRequested != nil || ev.Terminal() })
			canceled = n > 0
			time.Sleep(20 * time.Millisecond)
		}
		if !canceled {
			left++
			t.Errorf("input of %d bytes: parent %s canceled, child %s left running", n, wf, kid)
		}
	}
	_ = errors.Is
	_ = eventstore.ErrTooLarge
	if left > 0 {
		t.Errorf("%d children left running", left)
	}
}
