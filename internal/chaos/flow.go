package chaos

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// The queued and paused shapes: flow control by definition. Runs of the
// queued shape's definition beyond their key's limit wait QUEUED for a
// slot; the paused shape's runs are started while the harness holds their
// definition paused.

// pausePropagation is how long the paused shape's driver lets a pause
// reach every executor before it starts runs.
const pausePropagation = 3 * time.Second

// siblings returns the runs of r's plan's siblings, kept as r's children
// (so that they are checked with the others).
func (d *driver) siblings(r *run) []*run {
	var out []*run
	for j, sp := range r.plan.siblings {
		if r.children == nil {
			r.children = map[string]*run{}
		}
		s := &run{plan: sp}
		r.children[fmt.Sprintf("sibling-%d", j+1)] = s
		out = append(out, s)
	}
	return out
}

// seeQueued reads r's run once after its start, noting whether it was
// QUEUED.
func (d *driver) seeQueued(ctx context.Context, r *run) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if wf, err := d.get(ctx, r.plan.id, true); err == nil {
		r.seenQueued = wf.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED
	}
}

// pausedFor is how long the runs started while their definition is
// paused must make no call at the ledger.
const pausedFor = 2 * time.Second

// startPaused pauses the definition of r's plan, starts r and its
// siblings, checks for pausedFor that none of them calls the ledger (and
// notes the parts it sees down meanwhile) and that each is recorded
// RUNNING, and resumes the definition (also when
// something failed, so that the runs can complete). What went otherwise
// is kept in r.pausedView; the error is a pause or resume not done. One
// paused shape's driver at a time holds each of the paused definitions
// paused.
func (d *driver) startPaused(ctx context.Context, r *run, siblings []*run) (err error) {
	h, p := d.h, r.plan
	mu := &h.pauseMu[p.pauseCopy]
	mu.Lock()
	defer mu.Unlock()
	err = h.retry(ctx, time.Minute, func(ctx context.Context) error {
		_, err := h.defs.PauseDefinition(ctx, connect.NewRequest(&weftv1.PauseDefinitionRequest{Name: p.definition, Reason: "chaos " + p.id}))
		return err
	})
	if err != nil {
		return fmt.Errorf("pause %s: %w", p.definition, err)
	}
	defer func() {
		// Resumed even when the run's time is up: a definition left
		// paused would hold every later run of it.
		rerr := h.retry(context.WithoutCancel(ctx), time.Minute, func(ctx context.Context) error {
			_, err := h.defs.ResumeDefinition(ctx, connect.NewRequest(&weftv1.ResumeDefinitionRequest{Name: p.definition}))
			return err
		})
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("resume %s: %w", p.definition, rerr))
		}
	}()
	// A pause reaches each executor through its watch of the pauses
	// bucket, at once, and through its own read of the bucket at most a
	// second apart (docs/language.md, "Pause a definition"). The runs
	// start after that window.
	select {
	case <-time.After(pausePropagation):
	case <-ctx.Done():
		return ctx.Err()
	}
	var started []*run
	var keys []string
	for _, s := range append([]*run{r}, siblings...) {
		if h.start(ctx, s, d.c) {
			started = append(started, s)
			for _, path := range s.plan.httpPaths {
				keys = append(keys, s.plan.key(path))
			}
		}
	}
	var wrong []string
	down := map[string]bool{}
	for end := time.Now().Add(pausedFor); time.Now().Before(end) && len(wrong) == 0; {
		for _, part := range h.sup.all() {
			if !part.running() {
				down[part.name] = true
			}
		}
		ledger := h.ledger.Snapshot()
		for _, k := range keys {
			if n := ledger[k].Calls; n > 0 {
				wrong = append(wrong, fmt.Sprintf("%s called %d times at the ledger", k, n))
			}
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			return ctx.Err()
		}
	}
	gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, s := range started {
		switch wf, err := d.get(gctx, s.plan.id, true); {
		case err != nil:
			wrong = append(wrong, fmt.Sprintf("GetWorkflow %s: %v", s.plan.id, err))
		case wf.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING:
			wrong = append(wrong, fmt.Sprintf("%s is %s", s.plan.id, statusName(wf.Status)))
		}
	}
	r.pausedView, r.downWhilePaused = strings.Join(wrong, "; "), sortedKeys(down)
	return nil
}

// checkFlow checks the runs of the flow control shapes once every
// workflow closed. Queued and limited: no more runs of a key had a call in
// flight at the ledger at once than the limit (the ledger's slots are the
// shape's name and the key), and for queued each key's entry in the slots
// bucket holds no run (within a grace for the follow-ups of the last
// closes). Ratelimited: see checkRate. It notes what the runs of these
// shapes and the paused one saw.
func (h *Harness) checkFlow(ctx context.Context, runs []*run, res *Result) {
	var queued, seen, limited, rated, paused int
	var slowest time.Duration // of the limited runs, from start to close
	keys, limitedKeys, ratedKeys := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var down []string
	for _, r := range runs {
		switch {
		case !r.started:
		case r.plan.shape == shapeQueued:
			queued, seen = queued+1, seen+btoi(r.seenQueued)
			keys[r.plan.input["k"].(string)] = true
		case r.plan.shape == shapeLimited:
			limited++
			limitedKeys[r.plan.input["k"].(string)] = true
			if f := r.final; f != nil && f.CreatedTime != nil && f.ClosedTime != nil {
				slowest = max(slowest, f.ClosedTime.AsTime().Sub(f.CreatedTime.AsTime()))
			}
		case r.plan.shape == shapeRatelimited:
			rated++
			ratedKeys[r.plan.input["k"].(string)] = true
		case r.plan.shape == shapePaused:
			paused++
			down = append(down, r.downWhilePaused...)
		}
	}
	if paused > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("paused: %d runs started while their definition was paused; parts seen down during the pauses: %v",
			paused, down))
	}
	if rated > 0 {
		h.checkRate(rated, sortedKeys(ratedKeys), res)
	}
	if queued+limited == 0 {
		return
	}
	sc := h.ledger.Slots()
	res.Notes = append(res.Notes, fmt.Sprintf("queued: %d runs, %d read QUEUED after their start; limited: %d runs, the slowest closed %s after its start; most runs with a call in flight at once per slot: %v (limits %v); repeats of a succeeded call per slot: %v (beside another run: %v); calls beside a closed run's duplicate still in flight: %v",
		queued, seen, limited, slowest.Round(time.Millisecond), shortKeys(sc.Most), shortKeys(sc.Limits), shortKeys(sc.Repeats), shortKeys(sc.RepeatsBeside), shortKeys(sc.LateBeside)))
	for _, slot := range sortedKeys(sc.Most) {
		if sc.Most[slot] > sc.Limits[slot] {
			res.Problems = append(res.Problems, fmt.Sprintf("slot %s: %d runs had a call in flight at once at the ledger, the limit is %d: %s",
				slot, sc.Most[slot], sc.Limits[slot], strings.Join(sc.Overlaps, "; ")))
		}
	}
	for _, key := range sortedKeys(keys) {
		if left := h.slotsLeft(ctx, func(store *eventstore.Store) (bool, string, error) {
			s, err := store.ReadSlots(ctx, "chaos-queued", key)
			return len(s.Holders) == 0 && len(s.Queue) == 0, fmt.Sprintf("held by %v, queued %v", s.Holders, s.Queue), err
		}); left != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("queued: the slots of key %s after every run closed: %s", key, left))
		}
	}
	// A step's slot is given back after its attempt; one whose release
	// failed is given back again: none may be held once every run closed.
	for _, key := range sortedKeys(limitedKeys) {
		if left := h.slotsLeft(ctx, func(store *eventstore.Store) (bool, string, error) {
			held, err := store.SlotHolders(ctx, "chaos-limited/call", key, time.Now())
			return len(held) == 0, fmt.Sprintf("held by %v", held), err
		}); left != "" {
			res.Problems = append(res.Problems, fmt.Sprintf("limited: the step's slots of key %s after every run closed: %s", key, left))
		}
	}
}

// slotsLeft polls empty (which says whether the slots it reads hold no
// run, and what they hold) until they do, and returns "", or, when 30s
// pass first, what they held last.
func (h *Harness) slotsLeft(ctx context.Context, empty func(*eventstore.Store) (bool, string, error)) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nc, store, err := h.openStore(ctx)
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	last := "not read"
	err = poll(ctx, 500*time.Millisecond, func() (bool, error) {
		ok, what, err := empty(store)
		if err != nil {
			last = "read: " + err.Error()
			return false, err
		}
		last = what
		return ok, nil
	})
	if err == nil {
		return ""
	}
	return last
}

// checkRate checks the calls of the ratelimited shape's n runs (each
// plan's runs under a key of their own, keys) at the ledger against the
// step's rate limit, for each revision apart: the calls of the latest
// must be charged to periods of ratePer (wall-clock seconds) with none
// charged more than rateLimit calls, those of the earlier revision to
// periods of perSlow. The two count apart: a revision that changes per
// starts its count afresh, beside the runs still in flight of the one
// before. Every call is counted, not only the first of its key: each
// attempt, a retry after a 503 or one run again after its executor died,
// takes its own token before its handler calls (the http task makes one
// request per attempt). A call is charged to the period it arrived in or
// to the one before (see overRate): the token's period is read on the
// executor's clock before the revision-checked update of the flow bucket
// (tried again on conflict, and slowed by a NATS node's kill), the
// handler's start and the request, so a call that arrives early in a
// period may carry a token of the period before. That is the tolerance:
// up to twice the limit in one period after a period that used less, but
// over any k periods in a row at most rateLimit*(k+1) calls; the driver's
// ratedRuns runs at once ask for over three periods' tokens, so a limit
// kept per executor (as many tokens per period on each) is caught.
func (h *Harness) checkRate(n int, keys []string, res *Result) {
	for _, per := range []time.Duration{ratePer, perSlow} {
		h.checkRateOf(n, keys, per, res)
	}
}

// checkRateOf is checkRate for the calls of the revision of period per.
func (h *Harness) checkRateOf(n int, keys []string, per time.Duration, res *Result) {
	perPeriod, firsts := map[int64]int{}, map[int64]int{}
	most, mostFirsts, full, total, periods, over := 0, 0, 0, 0, 0, 0
	name := rateName(per)
	for _, key := range keys {
		calls := h.ledger.Rated(name + key)
		clear(perPeriod)
		clear(firsts)
		for _, c := range calls {
			perPeriod[c.At.UnixNano()/int64(per)]++
			firsts[c.At.UnixNano()/int64(per)] += btoi(c.First)
		}
		total, periods = total+len(calls), periods+len(perPeriod)
		most, mostFirsts = max(most, maxValue(perPeriod)), max(mostFirsts, maxValue(firsts))
		full += atLeast(perPeriod, rateLimit)
		excess := overRate(calls, rateLimit, per)
		over += len(excess)
		if len(excess) > 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("ratelimited (per %s): key %s: %d calls beyond %d a period even charged to the period before theirs, first at %s; calls a period: %v",
				per, key, len(excess), rateLimit, excess[0].Format("15:04:05.000"), perPeriod))
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("ratelimited (per %s): %d runs of both revisions over %d keys, %d calls of this one over %d key-periods; most calls of a key in a period %d (first calls of their idempotency key %d), %d key-periods with %d calls or more; calls beyond %d a period once each is charged to its period or the one before: %d",
		per, n, len(keys), total, periods, most, mostFirsts, full, rateLimit, rateLimit, over))
}

// overRate charges each call, in the order they arrived, to the period
// (of length per) before the one it arrived in or, when that one has
// limit calls already, to its own, and returns the arrival times of the
// calls that fit in neither. Charging the earlier period first fits as
// many calls as any charging can.
func overRate(calls []RatedCall, limit int, per time.Duration) []time.Time {
	charged := map[int64]int{}
	var over []time.Time
	for _, c := range calls {
		p := c.At.UnixNano() / int64(per)
		switch {
		case charged[p-1] < limit:
			charged[p-1]++
		case charged[p] < limit:
			charged[p]++
		default:
			over = append(over, c.At)
		}
	}
	return over
}

// maxValue is the largest value of m (0 when empty).
func maxValue[K comparable](m map[K]int) int {
	most := 0
	for _, v := range m {
		most = max(most, v)
	}
	return most
}

// atLeast counts the values of m of n or more.
func atLeast[K comparable](m map[K]int, n int) int {
	c := 0
	for _, v := range m {
		c += btoi(v >= n)
	}
	return c
}

// shortKeys returns m with its keys shown without the long keys' padding
// (planKey), for a note a person reads.
func shortKeys[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[strings.TrimRight(k, ".")] = v
	}
	return out
}
