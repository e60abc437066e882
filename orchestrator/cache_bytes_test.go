package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weftworks/weft/eventstore/events"
)

// The orchestrator's cache of states holds at most its share of
// CacheBytes, each state counted as the records it was folded from, this
// orchestrator's own appends among them; a run pushed out is loaded again
// at its next input and goes on, and a run larger than the share alone is
// never kept.
func TestTheOrchestratorsCacheIsBoundedInBytes(t *testing.T) {
	r := newRig(t)
	r.putDef("two", twoTasks)
	sh := r.shard()
	ext, results := r.feeds()
	input := strings.Repeat("x", 8<<10)
	// check: what the shard counts is what it holds, within its share,
	// and each cached state counts exactly its records as stored.
	check := func(when string) {
		t.Helper()
		var sum int64
		for wf, e := range sh.cache {
			var stored int64
			for _, m := range r.history(wf) {
				stored += int64(m.Size)
			}
			if e.st.Bytes != stored || e.counted != e.st.Bytes {
				t.Fatalf("%s: %s counts %d (state %d) for %d bytes of records", when, wf, e.counted, e.st.Bytes, stored)
			}
			sum += e.counted
		}
		if limit := int64(sh.o.cfg.CacheBytes / sh.o.cfg.Shards); sh.bytes != sum || sum > limit {
			t.Fatalf("%s: the shard counts %d bytes, holds %d, limit %d", when, sh.bytes, sum, limit)
		}
	}

	r.startWith("big-0", "two", input, nil)
	sh.handle(r.ctx, next(t, ext))
	check("the first start")
	one := sh.cache["big-0"].st.Bytes
	if one < 8<<10 {
		t.Fatalf("a run with an 8 KiB input counts %d bytes", one)
	}
	sh.o.cfg.Shards, sh.o.cfg.CacheBytes = 1, int(3*one+one/2)
	const runs = 8
	for i := 1; i < runs; i++ {
		r.startWith(fmt.Sprintf("big-%d", i), "two", input, nil)
		sh.handle(r.ctx, next(t, ext))
		check(fmt.Sprintf("start %d", i))
	}
	if len(sh.cache) > 3 {
		t.Fatalf("%d states cached, where 3 fit", len(sh.cache))
	}
	// Each run's first step completes with a large output: runs pushed
	// out are read again, and the states grow by what was appended.
	for i := range runs {
		wf := fmt.Sprintf("big-%d", i)
		_, cmd := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil })
		if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: wf, Path: "a", Gen: 1, Attempt: 1, Cmd: cmd,
			Outcome: events.OutcomeCompleted, Output: input, Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		sh.handle(r.ctx, next(t, results))
		check(fmt.Sprintf("the result of %s", wf))
	}
	for i := range runs {
		wf := fmt.Sprintf("big-%d", i)
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil && ev.StepScheduled.Path == "b" }); n != 1 {
			t.Fatalf("%s: step b scheduled %d times", wf, n)
		}
	}

	// A run larger than the whole share is decided, and not kept.
	r.startWith("huge", "two", strings.Repeat("y", int(4*one)), nil)
	sh.handle(r.ctx, next(t, ext))
	check("the huge start")
	if sh.cache["huge"] != nil {
		t.Fatal("a state larger than the cache's share was kept")
	}
	if n, _ := r.count("huge", func(ev events.Event) bool { return ev.StepScheduled != nil }); n != 1 {
		t.Fatalf("the huge run has %d steps scheduled", n)
	}
}
