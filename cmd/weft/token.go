package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftworks/weft/orchestrator/api"
)

func tokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API bearer tokens"}
	var role string
	create := &cobra.Command{
		Use:   "create NAME [--role admin|run|read]",
		Short: "Make a new API token and print it with its --auth-tokens line",
		Long: `Prints a new random bearer token and the line that lets the API accept it.
The token is shown only once and is not stored anywhere: give it to the client
(weft --token or WEFT_TOKEN; other clients send "Authorization: Bearer <token>").
Add the line, which holds only the token's SHA-256, to the file the server
reads with --auth-tokens, and restart the server. NAME identifies the token in
the server's logs; to revoke a token, delete its line.

--role says what the token may do: admin (the default) everything; run
start, signal, cancel, retry and resume runs, and read; read only read
(runs, histories, definitions, triggers, and await or watch runs), as a
console on a wall or a dashboard needs. A call its role does not allow is
answered PermissionDenied.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := api.CheckTokenName(name); err != nil {
				return err
			}
			r, err := api.ParseRole(role)
			if err != nil {
				return fmt.Errorf("--role: %w", err)
			}
			token, err := api.NewToken()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "token:            %s\n", token)
			fmt.Fprintf(out, "auth-tokens line: %s\n", api.TokenLine(name, token, r))
			fmt.Fprintln(out)
			fmt.Fprintln(out, "Give the token to the client (weft --token or WEFT_TOKEN); it is shown only once.")
			fmt.Fprintln(out, "Add the line to the server's --auth-tokens file and restart the server.")
			return nil
		},
	}
	create.Flags().StringVar(&role, "role", "admin", "what the token may do: admin (everything), run (act on runs, and read) or read (read only)")
	cmd.AddCommand(create)
	return cmd
}
