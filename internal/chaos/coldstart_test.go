package chaos

import (
	"context"
	"testing"
	"time"
)

// maxColdStart bounds the time from starting every part of a deployment
// at once on a fresh NATS cluster until a workflow started through the
// API has completed.
const maxColdStart = 15 * time.Second

// Starting two orchestrators, an executor and the API at once against a
// fresh 3-node NATS cluster (streams and buckets R3), as a deployment tool
// starts them: the parts must agree on who creates what without waiting
// out long timeouts, and a workflow must complete within maxColdStart. A
// part started afterwards then finds everything as it must be and
// changes nothing.
func TestColdStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS cluster and Weft's parts as processes")
	}
	h := newHarness(t, "weft-coldstart-", Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := h.RunColdStart(ctx)
	if res != nil {
		t.Logf("cold start: parts ready after %s, workflow completed after %s; %d \"JetStream not ready\" retries; a store opened afterwards made %d changes",
			res.Ready.Round(time.Millisecond), res.Completed.Round(time.Millisecond), res.Retries, res.LateChanges)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed > maxColdStart {
		t.Errorf("a workflow completed %s after the parts started, want at most %s", res.Completed.Round(time.Millisecond), maxColdStart)
	}
	if res.LateChanges != 0 {
		t.Errorf("a store opened after the parts started created or changed streams or consumers %d times, want none", res.LateChanges)
	}
}
