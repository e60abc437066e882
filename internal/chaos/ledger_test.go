package chaos

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// The ledger counts the runs, not the calls, of a slot in flight at once:
// two calls of one run count once, calls of two runs twice, and a repeat
// of a call that succeeded not at all.
func TestLedgerSlotCountsRuns(t *testing.T) {
	l, err := StartLedger(1, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	calls := func(slot string, keys ...string) {
		var wg sync.WaitGroup
		for _, key := range keys {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, l.URL()+"?slot="+slot, strings.NewReader(`{}`))
				req.Header.Set("Idempotency-Key", key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			})
		}
		wg.Wait()
	}
	calls("a", "run-1/call", "run-1/call")
	calls("b", "run-2/call", "run-3/call")
	calls("", "run-4/call", "run-5/call")
	// A repeat of a call that succeeded, here beside another run's call,
	// is counted apart.
	done := make(chan struct{})
	go func() { calls("a", "run-6/call"); close(done) }()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		n := l.inFlight["a"]["run-6"]
		l.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("run-6's call never in flight")
		}
	}
	calls("a", "run-1/call")
	<-done
	sc := l.Slots()
	if sc.Most["a"] != 1 || sc.Most["b"] != 2 || len(sc.Most) != 2 {
		t.Errorf("most runs at once per slot: %v; want a 1, b 2", sc.Most)
	}
	if sc.Repeats["a"] != 1 || len(sc.Repeats) != 1 || sc.RepeatsBeside["a"] != 1 {
		t.Errorf("repeats per slot: %v, beside another run %v; want a 1, a 1", sc.Repeats, sc.RepeatsBeside)
	}
	if len(sc.Overlaps) != 1 || sc.Overlaps[0] != "slot b: run-2, run-3" {
		t.Errorf("overlaps: %q", sc.Overlaps)
	}
	if kc := l.Snapshot()["run-1/call"]; kc.Calls != 3 || kc.OK != 3 {
		t.Errorf("run-1/call: %+v", kc)
	}
	calls("c&limit=2", "run-7/call", "run-8/call")
	if sc := l.Slots(); sc.Most["c"] != 2 || sc.Limits["c"] != 2 || sc.Limits["b"] != slotLimit || len(sc.Overlaps) != 1 {
		t.Errorf("slot c of limit 2: most %v, limits %v, overlaps %q", sc.Most, sc.Limits, sc.Overlaps)
	}

	// One attempt run twice at once: the first answered (the run closes,
	// its slot goes to the next run), the second still in flight when the
	// next run's call comes. That is the key's duplicate, not a second
	// run in the slot; a run whose call has not succeeded is.
	first := l.enter("d", 1, "run-9/call", false)
	second := l.enter("d", 1, "run-9/call", false)
	l.mu.Lock()
	l.keys["run-9/call"] = &KeyCount{Calls: 2, OK: 1}
	l.mu.Unlock()
	first()
	next := l.enter("d", 1, "run-10/call", false)
	other := l.enter("d", 1, "run-11/call", false)
	second()
	next()
	other()
	if sc := l.Slots(); sc.Most["d"] != 2 || sc.LateBeside["d"] != 2 || len(sc.Overlaps) != 2 || sc.Overlaps[1] != "slot d: run-10, run-11" {
		t.Errorf("slot d: most %v, late beside %v, overlaps %q; want 2, 2 and run-10 with run-11", sc.Most, sc.LateBeside, sc.Overlaps)
	}
}

// The ledger records the time of each call with a rate, and which was
// the first of its key.
func TestLedgerRated(t *testing.T) {
	l, err := StartLedger(1, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, key := range []string{"run-1/call", "run-1/call", "run-2/call"} {
		req, _ := http.NewRequest(http.MethodPost, l.URL()+"?rate=r", strings.NewReader(`{}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	rc := l.Rated("r")
	if len(rc) != 3 || !rc[0].First || rc[1].First || !rc[2].First || rc[1].At.Before(rc[0].At) || len(l.Rated("other")) != 0 {
		t.Errorf("rated calls: %+v", rc)
	}
}

// Held calls wait: the first n of a key until their caller gives up
// (abandoned, not carried out), every one until Release, which answers
// those held then; a caller that gives up abandons its call.
func TestLedgerHold(t *testing.T) {
	l, err := StartLedger(1, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	call := func(key string, timeout time.Duration) error {
		client := &http.Client{Timeout: timeout}
		req, _ := http.NewRequest(http.MethodPost, l.URL(), strings.NewReader(`{}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", key, resp.Status)
		}
		return nil
	}
	// The first call of "once" is held past its caller's patience; the
	// second is answered at once.
	l.Hold("once", 1)
	if err := call("once", 200*time.Millisecond); err == nil {
		t.Error("the held call of once was answered")
	}
	if err := call("once", 5*time.Second); err != nil {
		t.Errorf("the second call of once: %v", err)
	}
	// Every call of "all" is held until the release.
	l.Hold("all", -1)
	if err := call("all", 200*time.Millisecond); err == nil {
		t.Error("the held call of all was answered")
	}
	answered := make(chan error, 1)
	go func() { answered <- call("all", 10*time.Second) }()
	for deadline := time.Now().Add(5 * time.Second); l.Snapshot()["all"].Calls < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second call of all never arrived")
		}
	}
	select {
	case err := <-answered:
		t.Fatalf("the second call of all was answered before the release (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	l.Release("all")
	if err := <-answered; err != nil {
		t.Errorf("the held call of all after the release: %v", err)
	}
	// The abandoned calls are counted once the ledger sees their callers
	// gone.
	want := map[string]KeyCount{"once": {Calls: 2, OK: 1, Abandoned: 1}, "all": {Calls: 2, OK: 1, Abandoned: 1}}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := l.Snapshot()
		if got["once"] == want["once"] && got["all"] == want["all"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v, want %+v", got, want)
		}
	}
}
