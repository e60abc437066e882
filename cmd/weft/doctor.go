package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/doctor"
)

// defaultNATSURL is where `weft server` serves its embedded NATS by default.
const defaultNATSURL = "nats://127.0.0.1:4222"

func doctorCmd() *cobra.Command {
	var p partFlags
	var asJSON, all bool
	var opts doctor.Options
	var retention string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that every running workflow will move on, reading only",
		Long: `Reads Weft's data in NATS, changing nothing: for every run the index lists it
folds the run's history and says what will move it on (a task in flight, a
timer, a child running, a signal it waits for), and checks that the world
agrees (the child exists, the timer is scheduled, the task's command reaches
an executor). It names the runs nothing can move (stuck) and the index
entries that disagree with history (drifted), with the reason, and exits
with status 1 when there are any. Runs whose history changed within --grace
are taken as moving. A run that cannot be read or judged (NATS does not
answer) is tried three times, then named as not checked, and the check goes
on; it too makes the status 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			natsOpts, err := p.natsOptions()
			if err != nil {
				return err
			}
			if opts.Retention, err = (&orchFlags{retention: retention}).retentionDuration(); err != nil {
				return err
			}
			ctx := cmd.Context()
			natsOpts = append([]nats.Option{nats.Name("weft doctor")}, natsOpts...)
			nc, err := nats.Connect(p.natsURL, natsOpts...)
			if err != nil {
				return fmt.Errorf("connect to NATS at %s: %w (weft doctor reads NATS, not the API: give it the server's --nats-addr as --nats-url)", p.natsURL, err)
			}
			defer nc.Close()
			store, err := eventstore.OpenExisting(ctx, nc, eventstore.Config{})
			if err != nil {
				return err
			}
			opts.All = all
			rep, err := doctor.Check(ctx, store, opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := json.MarshalIndent(rep, "", "  ")
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(out, "%s\n", jsonVisible(b)); err != nil {
					return err
				}
			} else {
				printReport(out, rep, all)
			}
			if !rep.OK() {
				if rep.Unchecked > 0 {
					return fmt.Errorf("%d stuck, %d drifted, %d not checked", rep.Stuck, rep.Drifted, rep.Unchecked)
				}
				return fmt.Errorf("%d stuck, %d drifted", rep.Stuck, rep.Drifted)
			}
			return nil
		},
	}
	p.registerNATS(cmd, envOr("WEFT_NATS_URL", defaultNATSURL))
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&all, "all", false, "list every run checked, not only the problems")
	f.DurationVar(&opts.Grace, "grace", 10*time.Second, "take runs whose history changed this recently as moving, and their index entries as still to be written")
	f.DurationVar(&opts.TimerGrace, "timer-grace", time.Minute, "how long past its due time a timer may still not have fired")
	f.DurationVar(&opts.ExecutorGrace, "executor-grace", time.Minute, "how long a task type's commands may wait with no executor asking for them")
	f.DurationVar(&opts.OrchestratorGrace, "orchestrator-grace", time.Minute, "how long a start, signal, cancel, task result, fired timer or deletion due may wait with no orchestrator asking for inputs")
	f.DurationVar(&opts.InputGrace, "input-grace", 5*time.Minute, "how long a start, signal or cancel handed to an orchestrator may stay unsettled before its run is judged as if no input waited")
	f.StringVar(&retention, "retention", "", "the servers' --retention (e.g. 30d, 12h): check that closed runs of revisions without a retention of their own have their deletion scheduled (empty: only those with their own)")
	f.IntVar(&opts.Concurrency, "concurrency", 8, "histories read at once")
	return cmd
}

// printReport writes rep for people: a summary, then a line per problem
// (per run, with all), with its reason.
func printReport(w io.Writer, rep *doctor.Report, all bool) {
	fmt.Fprintf(w, "%d index entries\n%s\n", rep.Entries, rep.Summary())
	if rep.Paused > 0 {
		fmt.Fprintf(w, "%d running of paused definitions: their tasks wait for weft def resume\n", rep.Paused)
	}
	runs := rep.Problems
	if all {
		runs = rep.Runs
	}
	if len(runs) == 0 {
		if rep.OK() {
			fmt.Fprintln(w, "nothing stuck or drifted")
		}
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tDEFINITION\tSTATE\tWHY")
	for _, r := range runs {
		if len(r.Findings) == 0 {
			var movers []string
			for _, m := range r.Movers {
				movers = append(movers, m.String())
			}
			if r.Paused {
				movers = append(movers, "its definition is paused: tasks wait for weft def resume")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Definition, r.Verdict, strings.Join(movers, "; "))
			continue
		}
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Definition, f.Kind, f.Reason)
		}
	}
	_ = tw.Flush()
}
