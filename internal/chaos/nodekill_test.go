package chaos

import (
	"context"
	"testing"
	"time"
)

// maxPause bounds the time from killing the history stream's leader until
// a workflow started after the kill completes.
const maxPause = 15 * time.Second

// Killing one of three NATS nodes under load: the node that leads the
// history stream is killed with SIGKILL while workflows are started at a
// steady rate, kept down for 10s under that load, restarted, and the load
// goes on. No workflow may be lost or decided twice, and workflows started
// after the kill must complete within maxPause of it.
func TestNATSNodeKillResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS cluster and Weft's parts as processes for about a minute")
	}
	h := newHarness(t, "weft-nodekill-", Config{Seed: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := h.RunNodeKill(ctx, NodeKillConfig{Rate: 20, Warmup: 20, Down: 10 * time.Second, After: 5 * time.Second})
	if res != nil && res.Result != nil {
		logResult(t, res.Result)
		t.Logf("killed nats-%s (leader of the history stream; meta leader %s; stream leaders %v)", res.Killed, res.MetaLeader, res.Leaders)
		t.Logf("new history leader %s after %s; node down %s, healthy %s after its restart",
			res.NewLeader, res.Elected.Round(time.Millisecond), res.DownFor.Round(time.Millisecond), res.Healthy.Round(time.Millisecond))
		t.Logf("pause: first completion after the kill at +%s; first completion of a workflow started after the kill at +%s; "+
			"rate back to half of %.1f/s at +%s, and stays there from +%s; the client, awaiting them, saw one at +%s; %d of %d workflows started after the kill; load ran %s",
			res.FirstClose.Round(time.Millisecond), res.Resume.Round(time.Millisecond), res.PreRate,
			res.RateBack.Round(time.Millisecond), res.Steady.Round(time.Millisecond), res.Seen.Round(time.Millisecond), res.StartedAfterKill, res.Workflows, res.Elapsed.Round(time.Second))
		t.Logf("new leaders: %s", res.ElectionsString())
		t.Logf("the follower of the histories through the kill: given each of the %d records stored while it ran; failed: %v",
			res.FollowerCompared, res.FollowerFailed)
		t.Log(res.Timeline())
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != res.Workflows {
		t.Errorf("completed %d of %d", res.Completed, res.Workflows)
	}
	if res.DuplicateDecisions != 0 {
		t.Errorf("%d duplicate decisions", res.DuplicateDecisions)
	}
	if res.StartedAfterKill == 0 {
		t.Fatal("no workflow was started after the kill")
	}
	if res.Resume < 0 || res.Resume > maxPause {
		t.Errorf("workflows started after the kill first completed %s after it, want at most %s", res.Resume, maxPause)
	}
}
