package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/callagain"
	"github.com/weftworks/weft/orchestrator/api"
	"github.com/weftworks/weft/orchestrator/definition"
)

const (
	// unaryTimeout bounds a request/response call; streams (watch) and
	// awaits may legitimately stay open for a long time and have no timeout.
	unaryTimeout = 30 * time.Second
	// awaitCallTimeout is the timeout each AwaitWorkflow call asks the
	// server for (its default); awaitGrace is how much longer the client
	// waits for the answer before it gives up on the call and makes another.
	awaitCallTimeout = time.Minute
	awaitGrace       = 15 * time.Second
	// awaitBackoff is the first pause before an await the server could not
	// answer is retried; the pause doubles up to awaitMaxBackoff.
	awaitBackoff    = 100 * time.Millisecond
	awaitMaxBackoff = 2 * time.Second
	// pageSize is the page size of history and list requests.
	pageSize = 500
)

// clientFlags holds the flags shared by the client commands.
type clientFlags struct {
	server string
	// token is the bearer token; "" falls back to WEFT_TOKEN.
	token string
	// tlsCA, tlsCert and tlsKey configure https:// servers.
	tlsCA, tlsCert, tlsKey string

	// unaryHTTP serves request/response calls, streamHTTP streams; both are
	// built from the flags on first use (setupErr: what was wrong).
	unaryHTTP, streamHTTP *http.Client
	setupErr              error
}

// register adds the connection flags, except --server (a root flag), to
// cmd and its subcommands.
func (cf *clientFlags) register(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&cf.token, "token", "", "bearer token sent to the server (env WEFT_TOKEN)")
	fs.StringVar(&cf.tlsCA, "tls-ca", "", "PEM file of CA certificates to trust for an https:// server, in place of the system's (env WEFT_TLS_CA)")
	fs.StringVar(&cf.tlsCert, "tls-cert", "", "PEM client certificate file, for servers that require one (env WEFT_TLS_CERT)")
	fs.StringVar(&cf.tlsKey, "tls-key", "", "PEM private key file of --tls-cert (env WEFT_TLS_KEY)")
}

func (cf *clientFlags) baseURL() string { return serverURL(cf.server) }

// setup builds the HTTP clients from the flags once and reports a bad
// flag; the clients then fail every call with that error.
func (cf *clientFlags) setup() error {
	if cf.unaryHTTP == nil {
		rt, err := cf.transport()
		if err != nil {
			cf.setupErr, rt = err, failingTransport{err}
		}
		cf.unaryHTTP = &http.Client{Transport: rt, Timeout: unaryTimeout}
		cf.streamHTTP = &http.Client{Transport: rt}
	}
	return cf.setupErr
}

// httpClient returns the client for unary calls or, with stream, the one
// without a timeout for streams.
func (cf *clientFlags) httpClient(stream bool) *http.Client {
	_ = cf.setup() // reported by the commands' PersistentPreRunE
	if stream {
		return cf.streamHTTP
	}
	return cf.unaryHTTP
}

// transport builds the round tripper for the flags: TLS settings for an
// https:// server (the environment's apply only there), and the bearer
// token on every request.
func (cf *clientFlags) transport() (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if strings.HasPrefix(cf.baseURL(), "https://") {
		tc, err := clientTLS(flagOrEnv(cf.tlsCA, "WEFT_TLS_CA"), flagOrEnv(cf.tlsCert, "WEFT_TLS_CERT"), flagOrEnv(cf.tlsKey, "WEFT_TLS_KEY"))
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = tc
	} else {
		for _, f := range [][2]string{{"--tls-ca", cf.tlsCA}, {"--tls-cert", cf.tlsCert}, {"--tls-key", cf.tlsKey}} {
			if f[1] != "" {
				return nil, fmt.Errorf("%s needs an https:// --server, not %s", f[0], cf.baseURL())
			}
		}
	}
	token := flagOrEnv(cf.token, "WEFT_TOKEN")
	if token == "" {
		return t, nil
	}
	return &bearer{token: token, next: t}, nil
}

// clientTLS builds the client TLS configuration: trusting the CAs in
// caFile (else the system's), presenting certFile/keyFile if given.
func clientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadCertPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	default:
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		// Always present it, so a server that trusts another CA says so
		// rather than that no certificate came.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	return cfg, nil
}

// bearer adds "Authorization: Bearer <token>" to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// failingTransport fails every request with err.
type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// flagOrEnv returns a flag's value, or else the environment variable's.
func flagOrEnv(flag, env string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(env)
}

func (cf *clientFlags) workflows() weftv1connect.WorkflowServiceClient {
	return weftv1connect.NewWorkflowServiceClient(cf.httpClient(false), cf.baseURL())
}

// watcher returns a workflow client without a request timeout, for streams
// and awaits.
func (cf *clientFlags) watcher() weftv1connect.WorkflowServiceClient {
	return weftv1connect.NewWorkflowServiceClient(cf.httpClient(true), cf.baseURL())
}

func (cf *clientFlags) definitions() weftv1connect.DefinitionServiceClient {
	return weftv1connect.NewDefinitionServiceClient(cf.httpClient(false), cf.baseURL())
}

// serverURL adds the http scheme to a bare host:port.
func serverURL(s string) string {
	if !strings.Contains(s, "://") {
		return "http://" + s
	}
	return s
}

// clientCommands returns the commands that talk to a Weft server.
func clientCommands(cf *clientFlags) []*cobra.Command {
	cmds := []*cobra.Command{
		defCommand(cf), startCommand(cf), getCommand(cf), historyCommand(cf),
		awaitCommand(cf), listCommand(cf), exportCommand(cf), signalCommand(cf), cancelCommand(cf), retryCommand(cf), resumeCommand(cf), watchCommand(cf),
		triggersCommand(cf), schedulesCommand(cf),
	}
	for _, c := range cmds {
		cf.register(c)
		// Bad connection flags fail the command before any call.
		c.PersistentPreRunE = func(*cobra.Command, []string) error { return cf.setup() }
		readableErrors(c, cf)
	}
	return cmds
}

// readableErrors makes cmd and its subcommands report Connect errors as
// "<code>: <message>", with advice when a TLS connection failed.
func readableErrors(cmd *cobra.Command, cf *clientFlags) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return cf.tlsHint(rpcErr(run(c, args))) }
	}
	for _, sub := range cmd.Commands() {
		readableErrors(sub, cf)
	}
}

// tlsHint adds advice to an error from a failed TLS connection. Such
// errors are often vague: a server that rejects the client's certificate
// may only show as a reset connection, or one that could not be
// established.
func (cf *clientFlags) tlsHint(err error) error {
	if err == nil || !strings.HasPrefix(cf.baseURL(), "https://") || !connectionFailed(err) {
		return err
	}
	return fmt.Errorf("%w (TLS connection failed: check --tls-ca, and --tls-cert/--tls-key if the server requires client certificates)", err)
}

// connectionFailed reports whether err comes from a connection that failed
// after it was dialled, rather than from the server's answer.
func connectionFailed(err error) bool {
	var verify *tls.CertificateVerificationError
	var op *net.OpError
	switch {
	case errors.As(err, &verify):
		return true
	case errors.As(err, &op):
		return op.Op != "dial"
	}
	return strings.Contains(err.Error(), "http2: client conn could not be established")
}

// rpcError is a Connect error rendered for humans; it still unwraps to the
// *connect.Error.
type rpcError struct {
	msg string
	err *connect.Error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// rpcErr renders a Connect error as "<code>: <message>", within what an
// error wrapping it says, and returns other errors unchanged.
func rpcErr(err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	if re := (*rpcError)(nil); errors.As(err, &re) {
		return err // rendered already, with what was said around it
	}
	msg := connect.CodeOf(ce).String()
	if m := ce.Message(); m != "" {
		msg += ": " + visible(m)
	}
	if err != error(ce) {
		// Keep what was said around it: the run it was about, the
		// request id to make it again with.
		msg = strings.Replace(err.Error(), ce.Error(), msg, 1)
	}
	return &rpcError{msg, ce}
}

func defCommand(cf *clientFlags) *cobra.Command {
	def := &cobra.Command{
		Use:     "def",
		Aliases: []string{"definition", "definitions"},
		Short:   "Manage workflow definitions",
	}
	def.AddCommand(defApplyCommand(cf), defListCommand(cf), defGetCommand(cf), defPauseCommand(cf), defResumeCommand(cf))
	return def
}

func defApplyCommand(cf *clientFlags) *cobra.Command {
	var file string
	apply := &cobra.Command{
		Use:   "apply FILE",
		Short: "Store a workflow definition (FILE or - for stdin; -f FILE works too)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && file != "" && file != args[0]:
				return fmt.Errorf("two definition files (%s and -f %s): apply one at a time", args[0], file)
			case len(args) == 1:
				file = args[0]
			case file == "":
				return fmt.Errorf("no definition file: weft def apply FILE (or - for stdin)")
			}
			var src []byte
			var err error
			if file == "-" {
				src, err = io.ReadAll(cmd.InOrStdin())
			} else {
				src, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			if err := checkSourceText(file, src); err != nil {
				return err
			}
			res, err := cf.definitions().PutDefinition(cmd.Context(),
				connect.NewRequest(&weftv1.PutDefinitionRequest{Source: string(src)}))
			if err != nil {
				return err
			}
			changed := "unchanged"
			if res.Msg.GetChanged() {
				changed = "changed"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "definition %s revision %d (%s)\n", res.Msg.GetName(), res.Msg.GetRevision(), changed)
			for _, w := range res.Msg.GetWarnings() {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "file", "f", "", "definition source file, or - for stdin")
	return apply
}

// checkSourceText refuses a definition source that is not UTF-8 text,
// saying where, before the API's client would refuse to send it with a
// bare "string field contains invalid UTF-8".
func checkSourceText(file string, src []byte) error {
	if file == "-" {
		file = "standard input"
	}
	if bytes.HasPrefix(src, []byte{0xff, 0xfe}) || bytes.HasPrefix(src, []byte{0xfe, 0xff}) {
		return fmt.Errorf("%s is UTF-16 text: save it as UTF-8", file)
	}
	if utf8.Valid(src) {
		return nil
	}
	at := 0
	for at < len(src) {
		r, n := utf8.DecodeRune(src[at:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		at += n
	}
	line := 1 + bytes.Count(src[:at], []byte("\n"))
	return fmt.Errorf("%s is not UTF-8 text (byte 0x%02x at offset %d, line %d): save it as UTF-8", file, src[at], at, line)
}

func defListCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List workflow definitions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := cf.definitions().ListDefinitions(cmd.Context(), connect.NewRequest(&weftv1.ListDefinitionsRequest{}))
			if err != nil {
				return err
			}
			tw := newTable(cmd.OutOrStdout(), "NAME", "REVISION", "CREATED", "BY", "PAUSED")
			for _, d := range res.Msg.GetDefinitions() {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", d.GetName(), d.GetRevision(), formatTime(d.GetCreatedTime(), time.RFC3339), orDash(visible(d.GetPutBy())),
					pauseCell(d.GetPause()))
			}
			return tw.Flush()
		},
	}
}

func defGetCommand(cf *clientFlags) *cobra.Command {
	var revision int32
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Print the source of a workflow definition (and, on standard error, its pause)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := cf.definitions().GetDefinition(cmd.Context(),
				connect.NewRequest(&weftv1.GetDefinitionRequest{Name: args[0], Revision: revision}))
			if err != nil {
				return err
			}
			// Standard output stays the source, to save or apply again.
			printPause(cmd.ErrOrStderr(), args[0], res.Msg.GetDefinition().GetPause())
			src := res.Msg.GetDefinition().GetSource()
			if !strings.HasSuffix(src, "\n") {
				src += "\n"
			}
			_, err = io.WriteString(cmd.OutOrStdout(), src)
			return err
		},
	}
	get.Flags().Int32Var(&revision, "revision", 0, "revision to print (0 for the latest)")
	return get
}

func startCommand(cf *clientFlags) *cobra.Command {
	var input, id, requestID string
	var revision int32
	var wait bool
	cmd := &cobra.Command{
		Use:   "start DEF",
		Short: "Start a workflow run and print its id",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := parseJSONFlag("input", input, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if requestID == "" {
				requestID = newRequestID()
			}
			res, retried, err := startAgain(cmd.Context(), cf, &weftv1.StartWorkflowRequest{
				Definition: args[0],
				Revision:   revision,
				Input:      in,
				WorkflowId: id,
				RequestId:  requestID,
			}, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			wid := res.Msg.GetWorkflowId()
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, wid)
			if !res.Msg.GetStarted() && !retried {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s was started before by request %s: not started again\n", wid, requestID)
			}
			if !wait {
				return nil
			}
			wf, err := waitWorkflow(cmd.Context(), cf, wid, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return printOutcome(out, wf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&input, "input", "", "workflow input as JSON, @FILE to read it from a file, or - from standard input")
	f.StringVar(&id, "id", "", "workflow id (default: generated by the server)")
	f.StringVar(&requestID, "request-id", "", "idempotency key (default: random)")
	f.Int32Var(&revision, "revision", 0, "definition revision (0 for the latest)")
	f.BoolVar(&wait, "wait", false, "wait for the run to close and print its outcome")
	return cmd
}

// writeRetryFor is how long a command makes a write again that the
// server could not answer.
const writeRetryFor = 5 * time.Minute

// callAgain makes a write (what: "start", "signal", ...) with call, and
// makes it again (callagain.Do), with the same request id (so it is
// applied once), while the server cannot answer it (unavailable, NATS
// not answering in time, the API stopping) or it met another write
// (aborted), for up to writeRetryFor: such a write may have been made or
// not. It reports whether it made the call more than once.
func callAgain(ctx context.Context, what, requestID string, notes io.Writer, call func() error) (bool, error) {
	p := callagain.Policy{For: writeRetryFor, Pause: awaitBackoff, MaxPause: awaitMaxBackoff}
	n, err := callagain.Do(ctx, p, call, func(n int, err error) {
		if n > 1 {
			return
		}
		why := "the server could not answer"
		if connect.CodeOf(err) == connect.CodeAborted {
			why = "it met another write at the run's history"
		}
		fmt.Fprintf(notes, "weft: %s: %s (%v); trying again with the same request id%s\n", what, why, rpcErr(err), refusedHint(err))
	})
	if callagain.Retryable(err) {
		// Given up (interrupted, or writeRetryFor passed): it may have
		// been made.
		err = fmt.Errorf("%w (the %s may have been made: make it again with --request-id %s, which makes it once)", rpcErr(err), what, requestID)
	}
	return n > 0, err
}

// startAgain starts req's run with callAgain. It reports whether it made
// the call more than once; then a run found started before was most
// likely started by an earlier try.
func startAgain(ctx context.Context, cf *clientFlags, req *weftv1.StartWorkflowRequest, notes io.Writer) (*connect.Response[weftv1.StartWorkflowResponse], bool, error) {
	var res *connect.Response[weftv1.StartWorkflowResponse]
	retried, err := callAgain(ctx, "start", req.GetRequestId(), notes, func() (err error) {
		res, err = cf.workflows().StartWorkflow(ctx, connect.NewRequest(req))
		return err
	})
	if err != nil {
		return nil, retried, err
	}
	return res, retried, nil
}

func awaitCommand(cf *clientFlags) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "await ID",
		Short: "Wait for a workflow run to close and print its outcome",
		Long: `Wait for a workflow run to close and print its status and output or error,
at once if it is closed already. The exit status is non-zero unless the run
completed, or if --timeout passes first.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return fmt.Errorf("invalid --timeout %s: must not be negative", timeout)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			wf, err := waitWorkflow(ctx, cf, args[0], cmd.ErrOrStderr())
			if timeout > 0 && errors.Is(err, context.DeadlineExceeded) && cmd.Context().Err() == nil {
				if u := (*unanswered)(nil); errors.As(err, &u) {
					return fmt.Errorf("no answer about workflow %s within %s: %v", args[0], timeout, rpcErr(u.last))
				}
				return fmt.Errorf("workflow %s is still running after %s", args[0], timeout)
			}
			if err != nil {
				return err
			}
			return printOutcome(cmd.OutOrStdout(), wf)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: wait until the run closes)")
	return cmd
}

// waitWorkflow blocks until workflow id is closed and returns its final
// state, from AwaitWorkflow. It calls again whenever a call's timeout
// passes first, and retries with a backoff while the server cannot answer
// (it is restarting, say), noting that once on notes, until ctx ends.
func waitWorkflow(ctx context.Context, cf *clientFlags, id string, notes io.Writer) (*weftv1.Workflow, error) {
	client := cf.watcher()
	var backoff time.Duration
	var last error // the last call's failure, while the server cannot answer
	stop := func(err error) (*weftv1.Workflow, error) {
		if last != nil {
			return nil, &unanswered{err, last}
		}
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return stop(err)
		}
		timeout := awaitCallTimeout
		if deadline, ok := ctx.Deadline(); ok {
			if timeout = min(timeout, time.Until(deadline)); timeout <= 0 {
				return stop(context.DeadlineExceeded)
			}
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout+awaitGrace)
		res, err := client.AwaitWorkflow(callCtx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{
			WorkflowId: id, Timeout: durationpb.New(timeout),
		}))
		cancel()
		switch {
		case err == nil:
			return res.Msg.GetWorkflow(), nil
		case ctx.Err() != nil:
			return stop(ctx.Err())
		case connect.CodeOf(err) == connect.CodeDeadlineExceeded:
			// Still running when the call's timeout passed.
			backoff, last = 0, nil
			continue
		case !transient(err):
			return nil, err
		}
		last = err
		if err := pause(ctx, &backoff, func() {
			fmt.Fprintf(notes, "weft: awaiting %s: the server could not answer (%v); retrying\n", id, rpcErr(err))
		}); err != nil {
			return stop(err)
		}
	}
}

// pause waits before a call the server could not answer is made again:
// awaitBackoff, doubling at each pause to awaitMaxBackoff (*backoff, 0
// before the first, which note reports). It returns ctx's error if ctx
// ends first.
func pause(ctx context.Context, backoff *time.Duration, note func()) error {
	if *backoff == 0 {
		note()
		*backoff = awaitBackoff
	} else {
		*backoff = min(2**backoff, awaitMaxBackoff)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*backoff):
		return nil
	}
}

// unanswered is the error of an await whose context ended while the server
// could not answer it. It unwraps to the context's error only, so that it
// reads as that and not as the last call's failure.
type unanswered struct{ ctxErr, last error }

func (e *unanswered) Error() string {
	return fmt.Sprintf("%v (the server could not answer: %v)", e.ctxErr, rpcErr(e.last))
}
func (e *unanswered) Unwrap() error { return e.ctxErr }

// transient reports whether an await failed for a reason that passes, with
// the caller's context still alive: the server could not be reached or
// answer, or it ended the call as it shut down.
func transient(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable, connect.CodeCanceled:
		return true
	}
	return false
}

// printOutcome prints the final status and output or error of a closed run,
// and returns an error unless it completed; that error does not repeat the
// run's, printed already.
func printOutcome(w io.Writer, wf *weftv1.Workflow) error {
	fmt.Fprintf(w, "status: %s\n", workflowStatusName(wf.GetStatus()))
	if wf.GetStatus() == weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED {
		out := valueJSON(wf.GetOutput())
		if out == "" {
			out = "null"
		}
		fmt.Fprintf(w, "output: %s\n", out)
		return nil
	}
	if f := formatFailure(wf.GetError()); f != "" {
		fmt.Fprintf(w, "error: %s\n", f)
		return fmt.Errorf("workflow %s failed", wf.GetId())
	}
	return fmt.Errorf("workflow %s failed: %s", wf.GetId(), strings.ToLower(workflowStatusName(wf.GetStatus())))
}

func getCommand(cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show the current state of a workflow run",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := cf.workflows().GetWorkflow(cmd.Context(), connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: args[0]}))
			if err != nil {
				return err
			}
			if asJSON {
				return printProtoJSON(cmd.OutOrStdout(), res.Msg.GetWorkflow(), true)
			}
			return printWorkflow(cmd.OutOrStdout(), res.Msg.GetWorkflow())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the workflow as JSON")
	return cmd
}

func printWorkflow(w io.Writer, wf *weftv1.Workflow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	field("id", visible(wf.GetId()))
	field("definition", fmt.Sprintf("%s@%d", visible(wf.GetDefinition()), wf.GetRevision()))
	field("status", workflowStatusName(wf.GetStatus()))
	field("created", formatTime(wf.GetCreatedTime(), time.RFC3339))
	field("closed", formatTime(wf.GetClosedTime(), time.RFC3339))
	field("input", valueJSON(wf.GetInput()))
	field("output", valueJSON(wf.GetOutput()))
	field("search", formatSearch(wf.GetSearchAttributes()))
	if f := formatFailure(wf.GetError()); f != "" {
		if p := wf.GetError().GetStepPath(); p != "" {
			f += " (step " + visible(p) + ")"
		}
		field("error", oneLine(f))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(wf.GetSteps()) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = newTable(w, "PATH", "STATUS", "ATTEMPTS", "TASK", "LAST-ERROR")
	for _, s := range wf.GetSteps() {
		status := strings.TrimPrefix(s.GetStatus().String(), "STEP_STATUS_")
		if s.GetWaitingFor() != "" {
			status += " (" + oneLine(s.GetWaitingFor()) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", visible(s.GetPath()), status,
			s.GetAttempts(), orDash(visible(s.GetTask())), orDash(oneLine(formatFailure(s.GetLastError()))))
	}
	return tw.Flush()
}

func historyCommand(cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history ID",
		Short: "Print the event history of a workflow run",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &weftv1.GetHistoryRequest{WorkflowId: args[0], PageSize: pageSize}
			for {
				res, err := cf.workflows().GetHistory(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return err
				}
				for _, ev := range res.Msg.GetEvents() {
					if err := printEvent(cmd.OutOrStdout(), ev, asJSON); err != nil {
						return err
					}
				}
				next := res.Msg.GetNextPageToken()
				if next == "" || next == req.PageToken {
					return nil
				}
				req.PageToken = next
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print events as JSON lines")
	return cmd
}

func watchCommand(cf *clientFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch ID",
		Short: "Stream the events of a workflow run until it closes",
		Long: `Stream the events of a workflow run until it closes. When the server cannot
answer or ends the watch as it stops, the watch is made again (on the same
address, which may reach another API process) and goes on after the last
event printed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := watchWorkflow(cmd.Context(), cf, args[0], func(ev *weftv1.HistoryEvent) error {
				return printEvent(cmd.OutOrStdout(), ev, asJSON)
			}, cmd.ErrOrStderr())
			if cmd.Context().Err() != nil {
				return nil // interrupted by the user
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print events as JSON lines")
	return cmd
}

// watchWorkflow hands each event of run id to print, once and in order,
// until the run closes. A watch the server could not answer, or ended as
// it stopped, is made again after a pause (awaitBackoff doubling to
// awaitMaxBackoff), noted on notes, and goes on after the last event
// handed on; a run deleted and started again under the id meanwhile ends
// it with an error.
func watchWorkflow(ctx context.Context, cf *clientFlags, id string, print func(*weftv1.HistoryEvent) error, notes io.Writer) error {
	var last uint64      // the last event handed on
	var first *time.Time // when the run's first event was recorded, once seen
	var backoff time.Duration
	for {
		err := func() error {
			stream, err := cf.watcher().WatchWorkflow(ctx, connect.NewRequest(&weftv1.WatchWorkflowRequest{WorkflowId: id}))
			if err != nil {
				return err
			}
			defer stream.Close()
			for stream.Receive() {
				ev := stream.Msg().GetEvent()
				if ev.GetSequence() == 1 {
					at := ev.GetTime().AsTime()
					if first != nil && !first.Equal(at) {
						return fmt.Errorf("workflow %s was deleted and a run started again under its id while the watch was made again", id)
					}
					first = &at
				}
				if ev.GetSequence() <= last {
					continue // handed on before the watch was made again
				}
				if err := print(ev); err != nil {
					return err
				}
				last = ev.GetSequence()
				backoff = 0
			}
			return stream.Err()
		}()
		switch {
		case err == nil, ctx.Err() != nil, !transient(err):
			return err
		}
		if err := pause(ctx, &backoff, func() {
			fmt.Fprintf(notes, "weft: watching %s: the server could not answer (%v); watching again\n", id, rpcErr(err))
		}); err != nil {
			return err
		}
	}
}

func printEvent(w io.Writer, ev *weftv1.HistoryEvent, asJSON bool) error {
	if asJSON {
		return printProtoJSON(w, ev, false)
	}
	_, err := fmt.Fprintln(w, formatEvent(ev))
	return err
}

// formatEvent renders a history event as one line:
// SEQ  TIME  TYPE  step=PATH attempt=N by=IDENTITY  DATA, leaving out empty
// parts.
func formatEvent(ev *weftv1.HistoryEvent) string {
	var where []string
	if p := ev.GetStepPath(); p != "" {
		where = append(where, "step="+visible(p))
	}
	if a := ev.GetAttempt(); a != 0 {
		where = append(where, fmt.Sprintf("attempt=%d", a))
	}
	if who := ev.GetIdentity(); who != "" {
		where = append(where, "by="+visible(who))
	}
	parts := []string{
		fmt.Sprint(ev.GetSequence()),
		formatTime(ev.GetTime(), time.RFC3339Nano),
		visible(ev.GetType()),
		strings.Join(where, " "),
		valueJSON(ev.GetData()),
	}
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "  ")
}

func listCommand(cf *clientFlags) *cobra.Command {
	var status, definition, query string
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List workflow runs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseStatus(status)
			if err != nil {
				return err
			}
			if limit < 0 {
				return fmt.Errorf("invalid --limit %d: must not be negative", limit)
			}
			req := &weftv1.ListWorkflowsRequest{Definition: definition, Status: st, Query: query}
			tw := newTable(cmd.OutOrStdout(), "ID", "DEFINITION", "REV", "STATUS", "CREATED", "CLOSED", "STARTED-BY", "SEARCH")
			for n := 0; limit == 0 || n < limit; {
				if limit > 0 {
					req.PageSize = int32(min(limit-n, pageSize))
				}
				res, err := cf.workflows().ListWorkflows(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return err
				}
				for _, s := range res.Msg.GetWorkflows() {
					if limit > 0 && n == limit {
						break
					}
					n++
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", visible(s.GetId()), visible(s.GetDefinition()), s.GetRevision(),
						workflowStatusName(s.GetStatus()), orDash(formatTime(s.GetCreatedTime(), time.RFC3339)),
						orDash(formatTime(s.GetClosedTime(), time.RFC3339)), orDash(visible(s.GetIdentity())),
						orDash(clip(formatSearch(s.GetSearchAttributes()), maxSearchCell)))
				}
				next := res.Msg.GetNextPageToken()
				if next == "" || next == req.PageToken {
					break
				}
				req.PageToken = next
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only runs with this status: running, queued, suspended, completed, failed or canceled")
	f.StringVar(&definition, "definition", "", "only runs of this definition")
	f.StringVar(&query, "query", "", `only runs for which this CEL expression is true, over status, definition, revision, created, closed, identity and search, e.g. 'search.customer == "c-7"'`)
	f.IntVar(&limit, "limit", 0, "maximum number of runs to list (0 for all)")
	return cmd
}

func signalCommand(cf *clientFlags) *cobra.Command {
	var payload, requestID string
	cmd := &cobra.Command{
		Use:   "signal ID NAME",
		Short: "Send a signal to a running workflow",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := parseJSONFlag("payload", payload, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if requestID == "" {
				requestID = newRequestID()
			}
			_, err = callAgain(cmd.Context(), "signal", requestID, cmd.ErrOrStderr(), func() error {
				_, err := cf.workflows().SignalWorkflow(cmd.Context(), connect.NewRequest(&weftv1.SignalWorkflowRequest{
					WorkflowId: args[0], Name: args[1], Payload: p, RequestId: requestID,
				}))
				return err
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "signal %s sent to %s\n", args[1], args[0])
			warnUnwaited(cmd.Context(), cf, cmd.ErrOrStderr(), args[0], args[1])
			return nil
		},
	}
	cmd.Flags().StringVar(&payload, "payload", "", "signal payload as JSON, @FILE to read it from a file, or - from standard input")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key: the signal sent again with it is taken once (default: one made for this command, which sends it again with it while the server cannot answer)")
	return cmd
}

// warnUnwaited warns on w when no wait step of run id's revision waits
// for the signal name: a misspelt name is kept, and nothing reads it. It
// says nothing when it cannot tell (the run or its revision unreadable).
func warnUnwaited(ctx context.Context, cf *clientFlags, w io.Writer, id, name string) {
	run, err := cf.workflows().GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
	if err != nil {
		return
	}
	wf := run.Msg.GetWorkflow()
	rev, err := cf.definitions().GetDefinition(ctx, connect.NewRequest(&weftv1.GetDefinitionRequest{Name: wf.GetDefinition(), Revision: wf.GetRevision()}))
	if err != nil {
		return
	}
	def, err := definition.Parse([]byte(rev.Msg.GetDefinition().GetSource()))
	if err != nil {
		return
	}
	if waits := def.Signals(); !slices.Contains(waits, name) {
		fmt.Fprintf(w, "warning: no step of %s revision %d waits for signal %q (its waits: %s): the signal is kept, and nothing reads it\n",
			wf.GetDefinition(), wf.GetRevision(), name, orDash(strings.Join(waits, ", ")))
	}
}

func cancelCommand(cf *clientFlags) *cobra.Command {
	return reasonCommand("cancel ID", "Request cancellation of a running workflow", "cancel requested for %s\n",
		func(ctx context.Context, id, reason, reqID string) error {
			_, err := cf.workflows().CancelWorkflow(ctx, connect.NewRequest(&weftv1.CancelWorkflowRequest{WorkflowId: id, Reason: reason, RequestId: reqID}))
			return err
		})
}

func retryCommand(cf *clientFlags) *cobra.Command {
	return reasonCommand("retry ID", "Redrive a failed workflow from its failed steps", "retry requested for %s\n",
		func(ctx context.Context, id, reason, reqID string) error {
			_, err := cf.workflows().RetryWorkflow(ctx, connect.NewRequest(&weftv1.RetryWorkflowRequest{WorkflowId: id, Reason: reason, RequestId: reqID}))
			return err
		})
}

func resumeCommand(cf *clientFlags) *cobra.Command {
	return reasonCommand("resume ID", "Resume a suspended workflow: its suspended steps get fresh attempts", "resume requested for %s\n",
		func(ctx context.Context, id, reason, reqID string) error {
			_, err := cf.workflows().ResumeWorkflow(ctx, connect.NewRequest(&weftv1.ResumeWorkflowRequest{WorkflowId: id, Reason: reason, RequestId: reqID}))
			return err
		})
}

// reasonCommand is a command on one workflow id with --reason and
// --request-id flags: it calls do (again while the server cannot answer,
// with callAgain) and prints done with the id.
func reasonCommand(use, short, done string, do func(ctx context.Context, id, reason, reqID string) error) *cobra.Command {
	var reason, reqID string
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := reqID
			if id == "" {
				id = newRequestID()
			}
			what, _, _ := strings.Cut(use, " ")
			if _, err := callAgain(cmd.Context(), what, id, cmd.ErrOrStderr(), func() error {
				return do(cmd.Context(), args[0], reason, id)
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), done, args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "reason recorded in the history")
	cmd.Flags().StringVar(&reqID, "request-id", "", "idempotency key: the command repeated with it is applied once (default: one made for this command, which makes it again with it while the server cannot answer)")
	return cmd
}

func (cf *clientFlags) triggerClient() weftv1connect.TriggerServiceClient {
	return weftv1connect.NewTriggerServiceClient(cf.httpClient(false), cf.baseURL())
}

func triggersCommand(cf *clientFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "triggers", Short: "Inspect triggers"}
	var limit int
	failures := &cobra.Command{
		Use:   "failures",
		Short: "List trigger events that started no workflow, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tw := newTable(cmd.OutOrStdout(), "TIME", "SUBJECT", "DEFINITION", "REASON", "PAYLOAD")
			tok, n := "", 0
			for {
				resp, err := cf.triggerClient().ListTriggerFailures(cmd.Context(), connect.NewRequest(&weftv1.ListTriggerFailuresRequest{PageSize: pageSize, PageToken: tok}))
				if err != nil {
					return err
				}
				for _, f := range resp.Msg.Failures {
					if limit > 0 && n >= limit {
						return tw.Flush()
					}
					n++
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", orDash(formatTime(f.Time, time.RFC3339)), visible(f.Subject), orDash(visible(f.Definition)), oneLine(f.Reason), oneLine(string(f.Payload)))
				}
				if tok = resp.Msg.NextPageToken; tok == "" {
					return tw.Flush()
				}
			}
		},
	}
	failures.Flags().IntVar(&limit, "limit", 100, "show at most this many (0: all)")
	cmd.AddCommand(failures)
	return cmd
}

func schedulesCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "schedules",
		Short: "List cron triggers and their next fire times",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := cf.triggerClient().ListSchedules(cmd.Context(), connect.NewRequest(&weftv1.ListSchedulesRequest{}))
			if err != nil {
				return err
			}
			tw := newTable(cmd.OutOrStdout(), "DEFINITION", "KEY", "CRON", "TIMEZONE", "CATCHUP", "NEXT")
			for _, s := range resp.Msg.Schedules {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", visible(s.Definition), orDash(visible(s.Key)), visible(s.Cron), visible(s.Timezone), s.Catchup, orDash(formatTime(s.NextFireTime, time.RFC3339)))
			}
			return tw.Flush()
		},
	}
}

// parseStatus parses a --status value; "" means any status.
func parseStatus(s string) (weftv1.WorkflowStatus, error) {
	if s == "" {
		return weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED, nil
	}
	name := "WORKFLOW_STATUS_" + strings.ToUpper(s)
	if v, ok := weftv1.WorkflowStatus_value[name]; ok && v != 0 {
		return weftv1.WorkflowStatus(v), nil
	}
	return 0, fmt.Errorf("invalid --status %q: want running, queued, suspended, completed, failed or canceled", s)
}

func workflowStatusName(s weftv1.WorkflowStatus) string {
	return strings.TrimPrefix(s.String(), "WORKFLOW_STATUS_")
}

// parseJSONFlag parses the JSON value of --name (or, for @FILE, of the
// file; for -, of stdin); "" gives nil.
func parseJSONFlag(name, s string, stdin io.Reader) (*structpb.Value, error) {
	if s == "" {
		return nil, nil
	}
	b := []byte(s)
	var err error
	switch {
	case s == "-":
		b, err = io.ReadAll(stdin)
	case strings.HasPrefix(s, "@"):
		b, err = os.ReadFile(s[1:])
	}
	if err != nil {
		return nil, fmt.Errorf("invalid --%s: %w", name, err)
	}
	// Read as the API's JSON reads a value: a number a float64 would
	// round is refused here, not sent rounded.
	v, err := api.ValueFromJSON(b)
	if err != nil {
		return nil, fmt.Errorf("invalid --%s: %w", name, err)
	}
	return v, nil
}

// valueJSON renders v as compact JSON, or "" if v is nil.
func valueJSON(v *structpb.Value) string {
	if v == nil {
		return ""
	}
	b, err := protoJSON(v, false)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}

// formatSearch renders search attributes on one line, by name:
// name=value separated by spaces, a string quoted when it is empty or
// holds spaces, quotes or =; "" when there are none.
func formatSearch(s *structpb.Struct) string {
	fields := s.GetFields()
	parts := make([]string, 0, len(fields))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		var v string
		switch x := fields[k].GetKind().(type) {
		case *structpb.Value_StringValue:
			v = x.StringValue
			if v == "" || strings.ContainsAny(v, " \t\n\"=") || visible(v) != v {
				v = strconv.Quote(v)
			}
		case *structpb.Value_NumberValue:
			v = strconv.FormatFloat(x.NumberValue, 'f', -1, 64)
			if a := math.Abs(x.NumberValue); a >= 1e21 || a != 0 && a < 1e-6 {
				v = strconv.FormatFloat(x.NumberValue, 'g', -1, 64)
			}
		default:
			v = valueJSON(fields[k])
		}
		parts = append(parts, visible(k)+"="+v)
	}
	return strings.Join(parts, " ")
}

// maxSearchCell bounds the SEARCH column of weft list, in characters.
const maxSearchCell = 60

// clip cuts s to at most n characters, ending it with … when it was longer.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// protoJSON marshals m with proto field names, compact or indented. The
// output is normalized because protojson deliberately varies its whitespace.
func protoJSON(m proto.Message, multiline bool) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if multiline {
		err = json.Indent(&buf, b, "", "  ")
	} else {
		err = json.Compact(&buf, b)
	}
	return jsonVisible(buf.Bytes()), err
}

func printProtoJSON(w io.Writer, m proto.Message, multiline bool) error {
	b, err := protoJSON(m, multiline)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// formatFailure renders f as "type: message", or "" if f is nil.
func formatFailure(f *weftv1.Failure) string {
	switch {
	case f == nil:
		return ""
	case f.GetType() == "":
		return visible(f.GetMessage())
	default:
		return visible(f.GetType() + ": " + f.GetMessage())
	}
}

func formatTime(ts *timestamppb.Timestamp, layout string) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Format(layout)
}

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newTable(w io.Writer, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine collapses whitespace, including newlines and tabs, so s fits in a
// table cell, and makes its other control characters visible.
func oneLine(s string) string { return visible(strings.Join(strings.Fields(s), " ")) }

// visible makes s safe to print to a terminal: its control characters (C0
// and C1, DEL), the format characters that reorder text (bidi overrides
// and isolates) and bytes that are not UTF-8 are written as Go escapes
// (\x1b, \u202e). Text a run's outside world chose reaches the CLI's
// output (an http step's error holds the remote server's answer, a
// trigger's subject and payload the producer's), and printed as it is,
// an escape sequence in it would clear the operator's screen, set the
// window's title or write the clipboard.
func visible(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && n == 1:
			// A byte that is not UTF-8 (0x9b is CSI to a terminal that
			// is not in UTF-8 mode).
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case !hidden(r):
			b.WriteString(s[:n])
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		s = s[n:]
	}
	return b.String()
}

// jsonVisible is visible for JSON text: the characters hidden reports
// that JSON encoders leave as they are (DEL, C1 controls, bidi overrides
// and isolates), all inside strings, are written as \u escapes. The JSON
// reads back the same; a terminal it is printed to sees no control.
func jsonVisible(b []byte) []byte {
	if !bytes.ContainsFunc(b, func(r rune) bool { return hidden(r) && r >= 0x20 }) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if hidden(r) && r >= 0x20 {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out
}

// hidden reports whether r is a control character, or a format character
// that changes the order text is shown in.
func hidden(r rune) bool {
	return unicode.IsControl(r) || r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 || r == 0x200e || r == 0x200f || r == 0x061c
}
