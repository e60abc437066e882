package main

import (
	"bufio"
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
JSON object a line: the run's id as "workflowId" and the event's fields as
weft history --json prints them. Runs come newest first, each whole. --since
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

// exportRuns writes the histories of the runs q finds, after the run
// resumeAfter if set; it returns how many runs it wrote and the last.
func exportRuns(cmd *cobra.Command, cf *clientFlags, q, resumeAfter string, out io.Writer) (n int, last string, err error) {
	ctx := cmd.Context()
	skipping := resumeAfter != ""
	req := &weftv1.ListWorkflowsRequest{Query: q, PageSize: pageSize}
	for {
		res, err := cf.workflows().ListWorkflows(ctx, connect.NewRequest(req))
		if err != nil {
			return n, last, err
		}
		for _, s := range res.Msg.GetWorkflows() {
			if skipping {
				skipping = s.GetId() != resumeAfter
				continue
			}
			if err := exportHistory(cmd, cf, s.GetId(), out); err != nil {
				return n, last, err
			}
			n, last = n+1, s.GetId()
		}
		next := res.Msg.GetNextPageToken()
		if next == "" || next == req.PageToken {
			if skipping {
				return n, last, fmt.Errorf("--resume-after %s: no such run among those the query finds", resumeAfter)
			}
			return n, last, nil
		}
		req.PageToken = next
	}
}

// exportHistory writes one run's events, each with its run id.
func exportHistory(cmd *cobra.Command, cf *clientFlags, id string, out io.Writer) error {
	req := &weftv1.GetHistoryRequest{WorkflowId: id, PageSize: pageSize}
	for {
		res, err := cf.workflows().GetHistory(cmd.Context(), connect.NewRequest(req))
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
	}
}
