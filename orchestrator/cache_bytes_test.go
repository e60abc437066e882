package orchestrator

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/internal/metrics"
)

// The orchestrator's cache of states holds at most its share of
// CacheBytes, each state counted as the records it was folded from, this
// orchestrator's own appends among them; a run pushed out is loaded again
// at its next input and goes on. A run larger than the whole share is kept
// besides it, one at a time: the next such run pushes it out.
func TestTheOrchestratorsCacheIsBoundedInBytes(t *testing.T) {
	r := newRig(t)
	r.putDef("two", twoTasks)
	sh := r.shard()
	reg := prometheus.NewRegistry()
	sh.o.metrics.orch = metrics.NewOrchestrator(reg)
	gauge := func(name string) float64 {
		t.Helper()
		v, err := testutil.GatherAndCount(reg, name)
		if err != nil || v != 1 {
			t.Fatalf("%s: %d series, %v", name, v, err)
		}
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return 0
	}
	ext, results := r.feeds()
	input := strings.Repeat("x", 8<<10)
	// check: what the shard counts is what it holds, within its share
	// besides its one large state, and each cached state counts exactly
	// its records as stored (none was loaded from a snapshot).
	check := func(when string) {
		t.Helper()
		var sum, large int64
		for wf, e := range sh.cache {
			if wf == sh.large {
				large = e.counted
			}
			var stored int64
			for _, m := range r.history(wf) {
				stored += int64(m.Size)
			}
			if e.st.Bytes != stored || e.counted != e.st.Bytes {
				t.Fatalf("%s: %s counts %d (state %d) for %d bytes of records", when, wf, e.counted, e.st.Bytes, stored)
			}
			sum += e.counted
		}
		if limit := int64(sh.o.cfg.CacheBytes / sh.o.cfg.Shards); sh.bytes != sum || sum-large > limit {
			t.Fatalf("%s: the shard counts %d bytes, holds %d (%d of them %s's), limit %d", when, sh.bytes, sum, large, sh.large, limit)
		}
		if n, b := gauge(metrics.NameCachedStates), gauge(metrics.NameCachedBytes); n != float64(len(sh.cache)) || b != float64(sum) {
			t.Fatalf("%s: the metrics say %v states of %v bytes, the cache holds %d of %d", when, n, b, len(sh.cache), sum)
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

	// A run larger than the whole share is decided and kept besides the
	// share: the runs around it come and go, and its own next input finds
	// it cached.
	huge := strings.Repeat("y", int(4*one))
	r.startWith("huge-1", "two", huge, nil)
	sh.handle(r.ctx, next(t, ext))
	check("the first huge start")
	for i := range 3 {
		r.startWith(fmt.Sprintf("small-%d", i), "two", input, nil)
		sh.handle(r.ctx, next(t, ext))
		check(fmt.Sprintf("small start %d", i))
	}
	if e := sh.cache["huge-1"]; e == nil || sh.large != "huge-1" {
		t.Fatalf("the huge run was not kept besides the share (large %q)", sh.large)
	}
	// The next run that large takes its place.
	r.startWith("huge-2", "two", huge, nil)
	sh.handle(r.ctx, next(t, ext))
	check("the second huge start")
	if sh.cache["huge-1"] != nil || sh.cache["huge-2"] == nil || sh.large != "huge-2" {
		t.Fatalf("after a second huge run: huge-1 cached %v, huge-2 cached %v, large %q", sh.cache["huge-1"] != nil, sh.cache["huge-2"] != nil, sh.large)
	}
	for _, wf := range []string{"huge-1", "huge-2"} {
		if n, _ := r.count(wf, func(ev events.Event) bool { return ev.StepScheduled != nil }); n != 1 {
			t.Fatalf("%s has %d steps scheduled", wf, n)
		}
	}
	// Closed, it leaves the cache, and the shard has no large state.
	_, cmd := r.count("huge-2", func(ev events.Event) bool { return ev.StepScheduled != nil })
	for _, path := range []string{"a", "b"} {
		if err := r.store.PublishResult(r.ctx, events.Result{WorkflowID: "huge-2", Path: path, Gen: 1, Attempt: 1, Cmd: cmd,
			Outcome: events.OutcomeCompleted, Output: "ok", Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		sh.handle(r.ctx, next(t, results))
		check("a result of huge-2")
		_, cmd = r.count("huge-2", func(ev events.Event) bool { return ev.StepScheduled != nil })
	}
	if n, _ := r.count("huge-2", func(ev events.Event) bool { return ev.WorkflowCompleted != nil }); n != 1 {
		t.Fatalf("huge-2 completed %d times", n)
	}
	if sh.cache["huge-2"] != nil || sh.large != "" {
		t.Fatalf("a closed huge run: cached %v, large %q", sh.cache["huge-2"] != nil, sh.large)
	}
}
