package doctor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/internal/natstest"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// A run that cannot be read ends no check: it is tried again, then
// reported unchecked with why, and every other run is still checked. A
// run that fails once and then reads is checked as usual. A check with a
// run unchecked is not OK.
func TestARunThatCannotBeReadIsReportedAndTheCheckGoesOn(t *testing.T) {
	const n = 30
	ctx, store := canceledRuns(t, n)
	var mu sync.Mutex
	tries := map[string]int{}
	doctor.SetTestHookTry(t, func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		tries[id]++
		switch {
		case id == "r007":
			return errors.New("nats: timeout")
		case id == "r011" && tries[id] == 1:
			return errors.New("nats: timeout")
		}
		return nil
	})
	rep, err := doctor.Check(ctx, store, doctor.Options{All: true})
	if err != nil {
		t.Fatalf("one run that cannot be read ended the check: %v", err)
	}
	if rep.Unchecked != 1 || rep.OK() || len(rep.Runs) != n {
		t.Fatalf("unchecked %d, OK %v, %d runs listed; want 1, false, %d: %s", rep.Unchecked, rep.OK(), len(rep.Runs), n, rep.Summary())
	}
	if len(rep.Problems) != 1 || rep.Problems[0].ID != "r007" || rep.Problems[0].Verdict != doctor.Unchecked ||
		len(rep.Problems[0].Findings) != 1 || rep.Problems[0].Findings[0].Kind != doctor.FindingUnchecked ||
		!strings.Contains(rep.Problems[0].Findings[0].Reason, "nats: timeout") {
		t.Fatalf("problems: %+v", rep.Problems)
	}
	for _, r := range rep.Runs {
		if r.ID != "r007" && (r.Verdict != doctor.Closed || r.Status != "CANCELED" || len(r.Findings) > 0) {
			t.Errorf("run %s: %+v", r.ID, r)
		}
	}
	if !strings.Contains(rep.Summary(), "1 run could not be checked") {
		t.Errorf("summary %q does not say a run could not be checked", rep.Summary())
	}
	mu.Lock()
	if tries["r007"] != 3 || tries["r011"] != 3 { // r011: failed once, read, judged
		t.Errorf("tries: r007 %d, r011 %d; want 3 and 3", tries["r007"], tries["r011"])
	}
	mu.Unlock()

	// The check's own context ending still ends it.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := doctor.Check(cctx, store, doctor.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a check whose context ended returned %v", err)
	}
}

// When NATS answers for no run at all, the check ends with the error once
// maxUncheckedInARow runs in a row could not be checked, rather than try
// each of thousands three times.
func TestACheckNATSDoesNotAnswerForEndsEarly(t *testing.T) {
	const n = 100
	ctx, store := canceledRuns(t, n)
	var mu sync.Mutex
	tried := map[string]bool{}
	doctor.SetTestHookTry(t, func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		tried[id] = true
		return errors.New("nats: timeout")
	})
	_, err := doctor.Check(ctx, store, doctor.Options{})
	if err == nil || !strings.Contains(err.Error(), "in a row could not be checked") || !strings.Contains(err.Error(), "nats: timeout") {
		t.Fatalf("a check NATS answers for no run returned %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tried) >= n {
		t.Fatalf("every one of the %d runs was tried before the check ended", n)
	}
}

// canceledRuns stores n canceled runs of definition d, r000 to r<n-1>,
// listed an hour ago, and returns the store and a context for the test.
func canceledRuns(t *testing.T, n int) (context.Context, *eventstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	store, err := eventstore.Open(ctx, natstest.Start(t).Connect(t), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.PutDefinition(ctx, "d", "name: d\nsteps:\n  - { id: a, task: work }\n", "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-time.Hour)
	for i := range n {
		listCanceled(t, ctx, store, fmt.Sprintf("r%03d", i), t0)
	}
	return ctx, store
}
