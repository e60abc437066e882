package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// triggerEvents is the number of events published for a run of n
// workflows.
func triggerEvents(n int) int { return max(4, n/15) }

// eventPublisher publishes the trigger events of a run.
type eventPublisher struct {
	done chan struct{}
	mu   sync.Mutex
	acks []int // the events JetStream acknowledged
	errs []string
}

// publishEvents publishes n events on triggerSubject at a steady rate over
// d, each with its own Nats-Msg-Id, retrying each until JetStream
// acknowledges it or ctx ends.
func (h *Harness) publishEvents(ctx context.Context, n int, d time.Duration) *eventPublisher {
	ep := &eventPublisher{done: make(chan struct{})}
	go func() {
		defer close(ep.done)
		nc, err := nats.Connect(h.natsURLs, nats.Name("weft-chaos-events"), nats.MaxReconnects(-1),
			nats.ReconnectWait(200*time.Millisecond), nats.Timeout(2*time.Second))
		if err != nil {
			ep.errs = append(ep.errs, fmt.Sprintf("connect: %v", err))
			return
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			ep.errs = append(ep.errs, fmt.Sprintf("jetstream: %v", err))
			return
		}
		t0 := time.Now()
		for i := range n {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(t0.Add(time.Duration(i) * d / time.Duration(n)))):
			}
			data, _ := json.Marshal(map[string]any{"url": h.ledger.URL(), "n": i})
			err := retryWhile(ctx, func(error) bool { return true }, func(ctx context.Context) error {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				_, err := js.Publish(pctx, triggerSubject, data, jetstream.WithMsgID(fmt.Sprintf("chaos-event-%d", i)))
				return err
			})
			ep.mu.Lock()
			if err != nil {
				ep.errs = append(ep.errs, fmt.Sprintf("event %d: %v", i, err))
			} else {
				ep.acks = append(ep.acks, i)
			}
			ep.mu.Unlock()
		}
	}()
	return ep
}

// triggerPlan is the workflow event n must start.
func triggerPlan(n int, id, ledgerURL string) *plan {
	p := &plan{index: n, shape: shapeTrigger, definition: "chaos-trigger", id: id, triggered: true,
		input: map[string]any{"url": ledgerURL, "n": n}, httpPaths: []string{"call"}, effects: []string{"call"},
		refuse: map[string]int{}, failPaths: map[string]bool{}, variant: "subject"}
	p.want = completed(map[string]any{"n": n, "key": p.key("call")})
	return p
}

// collectTriggered waits until every acknowledged event has started its
// workflow and the workflows have closed, and returns their runs. An event
// that started none is a run never started; one that started two is a
// problem.
func (h *Harness) collectTriggered(ctx context.Context, d *driver, ep *eventPublisher, res *Result) []*run {
	select {
	case <-ep.done:
	case <-ctx.Done():
	}
	ep.mu.Lock()
	acks := slices.Clone(ep.acks)
	for _, e := range ep.errs {
		res.Problems = append(res.Problems, "trigger: event not published: "+e)
	}
	ep.mu.Unlock()
	list := h.listUntil(ctx, "chaos-trigger", func(ws []*weftv1.WorkflowSummary) bool {
		return len(ws) >= len(acks) && allClosed(ws)
	})
	byEvent := map[int][]string{}
	var runs []*run
	for _, s := range list {
		wf := d.closed(ctx, s.Id)
		if wf == nil {
			runs = append(runs, &run{plan: triggerPlan(-1, s.Id, h.ledger.URL()), started: true})
			continue
		}
		in, _ := wf.Input.AsInterface().(map[string]any)
		f, ok := in["n"].(float64)
		if !ok || f < 0 || int(f) >= triggerEvents(h.cfg.Workflows) {
			res.Problems = append(res.Problems, fmt.Sprintf("trigger: %s started with input %v, from no event published", s.Id, wf.Input.AsInterface()))
			continue
		}
		n := int(f)
		byEvent[n] = append(byEvent[n], s.Id)
		runs = append(runs, &run{plan: triggerPlan(n, s.Id, h.ledger.URL()), started: true, final: wf})
	}
	for _, n := range acks {
		switch ids := byEvent[n]; {
		case len(ids) == 0:
			runs = append(runs, &run{plan: triggerPlan(n, fmt.Sprintf("chaos-trigger-event-%d", n), h.ledger.URL()),
				startErr: fmt.Errorf("event %d started no workflow", n)})
		case len(ids) > 1:
			res.DuplicateDecisions++
			res.Problems = append(res.Problems, fmt.Sprintf("trigger: event %d started %d workflows: %s", n, len(ids), strings.Join(ids, ", ")))
		}
	}
	return runs
}

// stopCron puts the revision of chaos-cron without its schedule.
func (h *Harness) stopCron(ctx context.Context) error {
	return h.retry(ctx, time.Minute, func(ctx context.Context) error {
		_, err := h.defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: cronDefinition(h.ledger.URL(), false)}))
		return err
	})
}

// cronTickLayout is how a cron workflow's id spells its tick.
const cronTickLayout = "20060102T150405Z"

// collectCron waits until the cron workflows stop appearing (the schedule
// was removed) and have closed, checks that the schedule fired through the
// start window, and returns their runs.
func (h *Harness) collectCron(ctx context.Context, d *driver, t0 time.Time, res *Result) []*run {
	prev := -1
	var list []*weftv1.WorkflowSummary
	for {
		list = h.list(ctx, "chaos-cron", weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED)
		if allClosed(list) && len(list) == prev || ctx.Err() != nil {
			break
		}
		prev = len(list)
		select {
		case <-ctx.Done():
		case <-time.After((cronEvery + 1) * time.Second):
		}
	}
	var runs []*run
	var ticks []time.Time
	for _, s := range list {
		p := &plan{shape: shapeCron, definition: "chaos-cron", id: s.Id, triggered: true, httpPaths: []string{"call"},
			effects: []string{"call"}, refuse: map[string]int{}, failPaths: map[string]bool{}, variant: "schedule"}
		wf := d.closed(ctx, s.Id)
		r := &run{plan: p, started: true, final: wf}
		runs = append(runs, r)
		if wf == nil {
			continue
		}
		in, _ := wf.Input.AsInterface().(map[string]any)
		tick, _ := in["tick"].(string)
		p.want = completed(map[string]any{"tick": tick, "key": p.key("call")})
		at, err := time.Parse(time.RFC3339, tick)
		if err != nil || !strings.HasSuffix(s.Id, "-"+at.UTC().Format(cronTickLayout)) {
			res.Problems = append(res.Problems, fmt.Sprintf("cron: %s started with tick %q (%v), not the one its id names", s.Id, tick, err))
			continue
		}
		ticks = append(ticks, at)
	}
	slices.SortFunc(ticks, func(a, b time.Time) int { return a.Compare(b) })
	// Each run is one tick of the schedule, and no tick starts two runs
	// (a tick handled again, after a kill say, maps to its first run).
	for i, at := range ticks {
		if at.Nanosecond() != 0 || at.Unix()%cronEvery != 0 {
			res.Problems = append(res.Problems, fmt.Sprintf("cron: a run of tick %s, which is no tick of its schedule (every %ds)",
				at.Format(time.RFC3339Nano), cronEvery))
		}
		if i > 0 && at.Equal(ticks[i-1]) {
			res.Problems = append(res.Problems, fmt.Sprintf("cron: tick %s started more than one run", at.Format(time.RFC3339)))
		}
	}
	want := int(h.cfg.Duration/(cronEvery*time.Second)) / 2
	if len(ticks) < max(1, want) {
		res.Problems = append(res.Problems, fmt.Sprintf("cron: %d runs over a %s start window, want at least %d (one every %ds)",
			len(ticks), h.cfg.Duration, max(1, want), cronEvery))
	}
	if len(ticks) > 0 {
		missed := 0
		for i := 1; i < len(ticks); i++ {
			missed += int(ticks[i].Sub(ticks[i-1])/(cronEvery*time.Second)) - 1
		}
		res.Notes = append(res.Notes, fmt.Sprintf("cron: %d runs, ticks %s to %s (%s after the start), %d ticks missed in between",
			len(ticks), ticks[0].Format(time.TimeOnly), ticks[len(ticks)-1].Format(time.TimeOnly),
			ticks[0].Sub(t0).Round(time.Second), missed))
	}
	return runs
}

// closed awaits workflow id until it closes, and returns it; when ctx
// ends first, the run as last read (nil when it could not be read).
func (d *driver) closed(ctx context.Context, id string) *weftv1.Workflow {
	wf, _ := d.await(ctx, id, true)
	return wf
}

// leftRunning lists the workflows still RUNNING (or SUSPENDED) once
// everything has closed; the listing may lag, so it is read until it is
// empty or 30s have passed.
func (h *Harness) leftRunning(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	running := h.listUntil(ctx, "", func(ws []*weftv1.WorkflowSummary) bool {
		return !slices.ContainsFunc(ws, listedOpen)
	})
	var out []string
	for _, s := range running {
		if listedOpen(s) {
			out = append(out, fmt.Sprintf("%s (%s) is still %s after every workflow closed", s.Id, s.Definition, statusName(s.Status)))
		}
	}
	return out
}

// listedOpen reports whether a listed run has not closed.
func listedOpen(s *weftv1.WorkflowSummary) bool {
	switch s.Status {
	case weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING, weftv1.WorkflowStatus_WORKFLOW_STATUS_SUSPENDED,
		weftv1.WorkflowStatus_WORKFLOW_STATUS_QUEUED:
		return true
	}
	return false
}

// listUntil lists the workflows of definition (all when "") every 2s
// until done holds of the list or ctx ends, and returns the last list.
func (h *Harness) listUntil(ctx context.Context, definition string, done func([]*weftv1.WorkflowSummary) bool) []*weftv1.WorkflowSummary {
	for {
		list := h.list(ctx, definition, weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED)
		if done(list) {
			return list
		}
		select {
		case <-ctx.Done():
			return list
		case <-time.After(2 * time.Second):
		}
	}
}

// list reads every page of ListWorkflows of definition (all when "") and
// status; a page it cannot read ends the list early.
func (h *Harness) list(ctx context.Context, definition string, status weftv1.WorkflowStatus) []*weftv1.WorkflowSummary {
	all, _, err := h.listPages(ctx, &weftv1.ListWorkflowsRequest{Definition: definition, Status: status, PageSize: 1000})
	if err != nil {
		h.logf("list workflows of %q: %v", definition, err)
	}
	return all
}

// listPages reads every page of the listing req asks for, following
// next_page_token, and returns the runs and the number of pages; a page
// it cannot read ends the list early, with its error. Without a query an
// empty page ends the list; with one, a page may be empty and still not
// the last. It moves req's page token along.
func (h *Harness) listPages(ctx context.Context, req *weftv1.ListWorkflowsRequest) ([]*weftv1.WorkflowSummary, int, error) {
	var all []*weftv1.WorkflowSummary
	for pages := 1; ; pages++ {
		var resp *connect.Response[weftv1.ListWorkflowsResponse]
		err := h.retry(ctx, time.Minute, func(ctx context.Context) error {
			var err error
			resp, err = h.wf.ListWorkflows(ctx, connect.NewRequest(req))
			return err
		})
		if err != nil {
			return all, pages, err
		}
		all = append(all, resp.Msg.Workflows...)
		req.PageToken = resp.Msg.NextPageToken
		if req.PageToken == "" || len(resp.Msg.Workflows) == 0 && req.Query == "" {
			return all, pages, nil
		}
	}
}

func allClosed(ws []*weftv1.WorkflowSummary) bool {
	for _, s := range ws {
		if !closedStatus(s.Status) {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.SortedFunc(maps.Keys(m), cmp.Compare[string])
}
