package main

import (
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

func defPauseCommand(cf *clientFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "pause NAME",
		Short: "Pause a definition: its runs start no new step attempts until it is resumed",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := cf.definitions().PauseDefinition(cmd.Context(),
				connect.NewRequest(&weftv1.PauseDefinitionRequest{Name: args[0], Reason: reason}))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "definition %s paused\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown by def get and def list")
	return cmd
}

func defResumeCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "resume NAME",
		Short: "End a definition's pause: what its runs held goes on",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			got, err := cf.definitions().GetDefinition(cmd.Context(), connect.NewRequest(&weftv1.GetDefinitionRequest{Name: args[0]}))
			if err == nil && got.Msg.GetDefinition().GetPause() == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "definition %s is not paused: nothing to resume\n", args[0])
				return nil
			}
			_, err = cf.definitions().ResumeDefinition(cmd.Context(),
				connect.NewRequest(&weftv1.ResumeDefinitionRequest{Name: args[0]}))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "definition %s resumed\n", args[0])
			return nil
		},
	}
}

// pauseCell is a definition's pause for the PAUSED column of def list.
func pauseCell(p *weftv1.DefinitionPause) string {
	if p == nil {
		return "-"
	}
	return pauseText(p)
}

// pauseText says since when, by whom and why p paused a definition.
func pauseText(p *weftv1.DefinitionPause) string {
	s := "since " + formatTime(p.GetTime(), time.RFC3339) + " by " + visible(p.GetBy())
	if r := oneLine(p.GetReason()); r != "" {
		s += ": " + r
	}
	return s
}

// printPause tells w that a definition is paused, when p says it is.
func printPause(w io.Writer, name string, p *weftv1.DefinitionPause) {
	if p != nil {
		fmt.Fprintf(w, "definition %s is paused %s\n", name, pauseText(p))
	}
}
