package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// What the API finds once every workflow closed: the runs of the retention
// shape are gone, and each search query lists exactly the runs it must.
// Both follow the histories a moment later (a deletion is due a retention
// after the close; the listing index is updated shortly after a history),
// so each is polled until it holds or its deadline passes.

// deletionWait bounds the wait, once the checks begin, for the runs of the
// retention shape to be deleted: their retention, then their deletion by
// an orchestrator that may have just restarted.
const deletionWait = time.Minute

// queryWait bounds the wait for the search queries to list their runs, and
// queryPageSize is their page size, small so that they page.
const (
	queryWait     = 30 * time.Second
	queryPageSize = 1
)

// checkDeleted checks that every run of the retention shape the harness
// started is gone: GetWorkflow answers NotFound and the listing of its
// definition is empty.
func (h *Harness) checkDeleted(ctx context.Context, runs []*run, res *Result) {
	left := map[string]string{} // id -> what shows it is still there
	for _, r := range runs {
		if r.plan.retained && r.started {
			left[r.plan.id] = "not looked at"
		}
	}
	started := len(left)
	if started == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, deletionWait)
	defer cancel()
	var listed []*weftv1.WorkflowSummary
	_ = poll(ctx, time.Second, func() (bool, error) {
		for id := range left {
			_, err := h.wf.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
			if connect.CodeOf(err) == connect.CodeNotFound {
				delete(left, id)
				continue
			}
			left[id] = fmt.Sprintf("GetWorkflow answers %v", err)
			if err == nil {
				left[id] = "GetWorkflow finds it"
			}
		}
		var err error
		listed, _, err = h.listPages(ctx, &weftv1.ListWorkflowsRequest{Definition: "chaos-retention", PageSize: 1000})
		return len(left) == 0 && len(listed) == 0 && err == nil, err
	})
	res.Notes = append(res.Notes, fmt.Sprintf("retention: %d of %d runs deleted (%d before the harness read their close)",
		started-len(left), started, res.DeletedUnread))
	for _, id := range sortedKeys(left) {
		res.Problems = append(res.Problems, fmt.Sprintf("%s: not deleted %s after the checks began, its retention being %s: %s",
			id, deletionWait, retentionDelay, left[id]))
	}
	for _, s := range listed {
		res.Problems = append(res.Problems, fmt.Sprintf("%s: still listed (%s) %s after the checks began, its retention being %s",
			s.Id, s.Status, deletionWait, retentionDelay))
	}
}

// checkQueries checks that each of searchQueries lists, through all its
// pages, the runs of the searched shape of its variant that the harness
// started, and no other run.
func (h *Harness) checkQueries(ctx context.Context, runs []*run, res *Result) {
	if !h.enabled(shapeSearched) {
		return
	}
	for _, q := range searchQueries {
		var want []string
		for _, r := range runs {
			if r.plan.shape == shapeSearched && r.started && r.plan.variant == q.variant {
				want = append(want, r.plan.id)
			}
		}
		slices.Sort(want)
		var got []string
		var pages int
		qctx, cancel := context.WithTimeout(ctx, queryWait)
		err := poll(qctx, time.Second, func() (bool, error) {
			list, n, err := h.listPages(qctx, &weftv1.ListWorkflowsRequest{Query: q.query, PageSize: queryPageSize})
			got, pages = got[:0], n
			for _, s := range list {
				got = append(got, s.Id)
			}
			slices.Sort(got)
			return err == nil && slices.Equal(got, want), err
		})
		cancel()
		if err == nil {
			res.Notes = append(res.Notes, fmt.Sprintf("query %q lists its %d run(s) over %d page(s)", q.query, len(want), pages))
			continue
		}
		res.Problems = append(res.Problems, fmt.Sprintf("query %q lists %d run(s) over %d page(s), want the %d %s run(s) of the searched shape: missing [%s], unexpected [%s] (%v)",
			q.query, len(got), pages, len(want), q.variant, strings.Join(without(want, got), " "), strings.Join(without(got, want), " "), err))
	}
}

// without returns the elements of the sorted a that are not in the sorted b.
func without(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}
