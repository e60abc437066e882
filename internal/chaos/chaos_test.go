package chaos

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	bins      Binaries
	binDir    string
	buildErr  error
)

// binaries builds weft and nats-server once per test run.
func binaries(t *testing.T) Binaries {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "weft-chaos-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		bins, buildErr = Build(ctx, binDir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return bins
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shortShapes are the shapes of the short run: all of them.
var shortShapes = []string{"seq", "fanout", "wait", "child", "branches", "each", "control", "waits", "cancel",
	"redrive", "trigger", "cron", "sharedsignal", "redrivecaught", "retention", "searched", "suspended", "queued", "paused", "limited", "ratelimited",
	"deadline", "tasktimeout", "beat", "chain"}

// A short chaos run: 60 workflows of the short shapes started over 40s
// (with their children, and those trigger events and a cron schedule start)
// while a part (NATS node, orchestrator, executor or API) is killed with
// SIGKILL every ~4s. Every workflow must end as its definition must, every
// effect must reach the ledger, no decision may be recorded twice, no
// signal may be lost and nothing may be left running.
func TestShortChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS cluster and Weft's parts as processes for about 2 minutes")
	}
	h := newHarness(t, "weft-chaos-run-", Config{
		Workflows: 60,
		Duration:  40 * time.Second,
		KillEvery: 4 * time.Second,
		Seed:      1,
		Settle:    2 * time.Minute,
		Shapes:    shortShapes,
	})
	res, err := h.Run(context.Background())
	if res != nil {
		logResult(t, res)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Kills.NATS == 0 {
		t.Errorf("no NATS node was killed: %+v", res.Kills)
	}
	if res.Kills.Total() < 5 {
		t.Errorf("only %d kills", res.Kills.Total())
	}
	if res.Workflows < 60 || res.Lost() != 0 {
		t.Errorf("%d of %d workflows ended as expected; want all of at least 60", res.AsExpected, res.Workflows)
	}
}

// newHarness returns a harness over the test binaries in a new directory
// named by prefix, kept when the test fails and removed otherwise.
func newHarness(t *testing.T, prefix string, cfg Config) *Harness {
	t.Helper()
	b := binaries(t)
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dir, cfg.Binaries, cfg.Logf = dir, &b, t.Logf
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			t.Logf("logs and reports kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return h
}

// logResult logs a run's summary line and notes.
func logResult(t *testing.T, res *Result) {
	t.Helper()
	t.Log(res.Summary())
	for _, n := range res.Notes {
		t.Log("note: " + n)
	}
}
