package chaos

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// The ledger counts the holders of a slot with a span open at once: two
// spans of one holder count once, a span still open when its holder's
// other span ended (a twin) no longer counts, a holder beyond the limit
// is an overlap, and a span whose connection closes (its process killed)
// ends with it.
func TestLedgerSpans(t *testing.T) {
	l, err := StartLedger(1, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.SpansOver(time.Hour)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	open := func(holder string) func() {
		t.Helper()
		end, err := openSpan(context.Background(), client, l.URL(), "s", 1, holder)
		if err != nil {
			t.Fatal(err)
		}
		return end
	}
	a1 := open("run-a/p/1")
	a2 := open("run-a/p/1") // a twin of a1
	a1()
	b := open("run-b/p/1") // a2 is a twin: b alone counts
	if sc := l.Spans(); sc.Most["s"] != 1 || len(sc.Overlaps) != 0 || sc.Twins != 1 {
		t.Fatalf("spans %+v; want 1 holder at most, a twin, no overlap", sc)
	}
	a2()
	// A killed process's span: its request's connection closes.
	ctx, kill := context.WithCancel(context.Background())
	q := url.Values{"phase": {"begin"}, "id": {"killed"}, "slot": {"s"}, "limit": {"1"}, "holder": {"run-c/p/1"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.URL()+spanPath+"?"+q.Encode(), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if sc := l.Spans(); len(sc.Overlaps) != 1 || sc.Overlaps[0].Holder != "run-c/p/1" || len(sc.Overlaps[0].Beside) != 1 ||
		sc.Overlaps[0].Beside[0] != "run-b/p/1" {
		t.Fatalf("overlaps %+v; want run-c beside run-b", sc.Overlaps)
	}
	kill()
	for deadline := time.Now().Add(10 * time.Second); l.Spans().Cut == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the killed span did not end with its connection")
		}
	}
	b()
	d := open("run-d/p/1") // alone now
	d()
	sc := l.Spans()
	if sc.Spans != 5 || sc.Ended != 4 || sc.Cut != 1 || sc.Most["s"] != 2 || len(sc.Overlaps) != 1 || sc.Over[0] != 0 {
		t.Errorf("spans %+v; want 5, 4 ended, 1 cut, 2 holders at most, 1 overlap", sc)
	}
}

// A beat executor's log line of a renewal that failed names its attempt.
func TestRenewFailed(t *testing.T) {
	line := `time=2026-01-02T03:04:05.000Z level=WARN msg="could not renew the attempt's concurrency slot" component=executor ` +
		`workflow_id=chaos-beat-00024 task=chaos.beat step=slots[1].slot_beat attempt=3 renewed=false err=<nil>`
	m := renewFailed.FindStringSubmatch(line)
	if m == nil || m[1]+"/"+m[2]+"/"+m[3] != "chaos-beat-00024/slots[1].slot_beat/3" {
		t.Errorf("matched %q", m)
	}
}

// The beat executors' clock runs beatClockRate times as fast as the wall
// clock from its epoch, so that a slot's lease lasts beatSlotLease.
func TestBeatClock(t *testing.T) {
	epoch := time.Now().Add(-time.Minute).Round(0)
	got := beatClock(epoch)().Sub(epoch)
	if want := time.Duration(beatClockRate) * time.Minute; got < want || got > want+time.Minute {
		t.Errorf("%s after its epoch; want about %s", got, want)
	}
	if beatSlotWork(0) <= beatSlotLease || beatSlotLease != 12*time.Second {
		t.Errorf("lease %s, work %s", beatSlotLease, beatSlotWork(0))
	}
}
