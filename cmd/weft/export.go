package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

func exportCommand(cf *clientFlags) *cobra.Command {
	var query, since, resumeAfter string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the histories of the runs a query finds as NDJSON, for archiving",
		Long: `Writes every event of every run that --query finds (all runs without it), one
JSON object a line: the run's id as "workflowId" and the event's fields in
the API's JSON form of an Event, as GetHistory answers them over Connect
JSON (camelCase names, "stepPath"; weft history --json prints its own
"step_path" form). Runs come newest first, each whole. --since
keeps runs created at or after a time (RFC 3339). An export cut short
names on stderr the last run it wrote: pass it as --resume-after to go on
from there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := exportQuery(query, since)
			if err != nil {
				return err
			}
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			n, last, err := exportRuns(cmd, cf, q, resumeAfter, out)
			switch {
			case err != nil && last != "":
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d runs; the last was %s (go on with --resume-after %s)\n", n, last, last)
			case err == nil:
				fmt.Fprintf(cmd.ErrOrStderr(), "exported %d runs\n", n)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&query, "query", "", "only runs for which this CEL expression is true (as weft list --query)")
	f.StringVar(&since, "since", "", "only runs created at or after this time (RFC 3339)")
	f.StringVar(&resumeAfter, "resume-after", "", "go on after this run (the last one an earlier export wrote)")
	return cmd
}

// exportQuery joins --query and --since into one query.
func exportQuery(query, since string) (string, error) {
	if since == "" {
		return query, nil
	}
	t, err := time.Parse(time.RFC3339, since)
	if err != nil {
		return "", fmt.Errorf("invalid --since %q: use RFC 3339, e.g. 2026-12-01T00:00:00Z", since)
	}
	q := fmt.Sprintf("created >= timestamp(%q)", t.UTC().Format(time.RFC3339Nano))
	if query != "" {
		q = "(" + query + ") && " + q
	}
	return q, nil
}

// exportAhead is how many runs' first pages of history export asks for
// while it writes the run before them: on a cluster each read waits on a
// consumer made for it, and one run at a time left the API idle between
// them. Later pages are read as they are written, so what is held is at
// most exportAhead pages.
const exportAhead = 8

// firstPage is a run's first page of history, or why it could not be read.
type firstPage struct {
	id  string
	res *connect.Response[weftv1.GetHistoryResponse]
	err error
}

// exportRuns writes the histories of the runs q finds, after the run
// resumeAfter if set; it returns how many runs it wrote and the last.
// Runs are written in the order the listing gives them, each whole.
func exportRuns(cmd *cobra.Command, cf *clientFlags, q, resumeAfter string, out io.Writer) (n int, last string, err error) {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	// Each listed run's first page is asked for at once, up to
	// exportAhead ahead of the one being written; the channels come in
	// listing order.
	ahead := make(chan chan firstPage, exportAhead-1)
	listed := make(chan error, 1)
	go func() {
		defer close(ahead)
		listed <- listRuns(ctx, cf, q, resumeAfter, func(id string) bool {
			page := make(chan firstPage, 1)
			select {
			case ahead <- page:
			case <-ctx.Done():
				return false
			}
			go func() {
				req := &weftv1.GetHistoryRequest{WorkflowId: id, PageSize: pageSize}
				res, err := cf.workflows().GetHistory(ctx, connect.NewRequest(req))
				page <- firstPage{id: id, res: res, err: err}
			}()
			return true
		})
	}()
	for page := range ahead {
		p := <-page
		if err := exportHistory(ctx, cf, p, out); err != nil {
			return n, last, err
		}
		n, last = n+1, p.id
	}
	return n, last, <-listed
}

// listRuns calls fn with the id of each run q finds, after resumeAfter if
// set, until fn returns false.
func listRuns(ctx context.Context, cf *clientFlags, q, resumeAfter string, fn func(id string) bool) error {
	skipping := resumeAfter != ""
	req := &weftv1.ListWorkflowsRequest{Query: q, PageSize: pageSize}
	for {
		res, err := cf.workflows().ListWorkflows(ctx, connect.NewRequest(req))
		if err != nil {
			return err
		}
		for _, s := range res.Msg.GetWorkflows() {
			if skipping {
				skipping = s.GetId() != resumeAfter
				continue
			}
			if !fn(s.GetId()) {
				return ctx.Err()
			}
		}
		next := res.Msg.GetNextPageToken()
		if next == "" || next == req.PageToken {
			if skipping {
				return fmt.Errorf("--resume-after %s: no such run among those the query finds", resumeAfter)
			}
			return nil
		}
		req.PageToken = next
	}
}

// exportHistory writes one run's events, each with its run id: its first
// page as read ahead, then the pages after it.
func exportHistory(ctx context.Context, cf *clientFlags, p firstPage, out io.Writer) error {
	id := p.id
	req := &weftv1.GetHistoryRequest{WorkflowId: id, PageSize: pageSize}
	res, err := p.res, p.err
	for {
		if err != nil {
			return fmt.Errorf("history of %s: %w", id, err)
		}
		for _, ev := range res.Msg.GetEvents() {
			b, err := protojson.Marshal(ev)
			if err != nil {
				return err
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(b, &fields); err != nil {
				return err
			}
			fields["workflowId"], _ = json.Marshal(id)
			line, err := json.Marshal(fields)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(out, "%s\n", jsonVisible(line)); err != nil {
				return err
			}
		}
		next := res.Msg.GetNextPageToken()
		if next == "" || next == req.PageToken {
			return nil
		}
		req.PageToken = next
		res, err = cf.workflows().GetHistory(ctx, connect.NewRequest(req))
	}
}
