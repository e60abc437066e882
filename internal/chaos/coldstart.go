package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// coldStartDefinition is the workflow a cold start runs: one echo step.
const coldStartDefinition = `
name: coldstart
steps:
  - id: hello
    task: echo
    input: { n: "${ input.n }" }
output: "${ steps.hello.output.n }"
`

// ColdStartResult is what a cold start measured, each time from the
// moment Weft's parts were started.
type ColdStartResult struct {
	// Ready is the time until every part had logged that it runs and the
	// API answered.
	Ready time.Duration
	// Completed is the time until a workflow started through the API
	// (once it answered) had completed.
	Completed time.Duration
	// Retries counts the times the parts logged that JetStream was not
	// ready and they would try again.
	Retries int
	// LateChanges counts the requests to create or change a stream or
	// consumer that a part opening the store afterwards, with the parts'
	// settings, made: none when the parts left everything as it must be.
	LateChanges int
}

// RunColdStart starts a fresh 3-node NATS cluster and, once it has a
// JetStream meta leader, two orchestrators, an executor and the API all
// at once, as a deployment tool starts them; it then puts a one-step
// definition, starts a workflow of it through the API and waits for it
// to complete. It closes the harness before it returns.
func (h *Harness) RunColdStart(ctx context.Context) (res *ColdStartResult, err error) {
	defer func() { h.endRun(err) }()
	bins := h.cfg.Binaries
	if bins == nil {
		b, err := Build(ctx, filepath.Join(h.dir, "bin"))
		if err != nil {
			return nil, err
		}
		bins = &b
	}
	if err := h.startCluster(ctx, bins.NATSServer); err != nil {
		return nil, err
	}
	res = &ColdStartResult{}
	start := time.Now()
	defer func() { res.Retries = h.countLogged("JetStream not ready") }()
	if err := h.startWeft(ctx, bins.Weft, 1, true); err != nil {
		return res, err
	}
	res.Ready = time.Since(start)
	h.logf("parts ready %s after their start", res.Ready.Round(time.Millisecond))
	err = h.retry(ctx, time.Minute, func(ctx context.Context) error {
		_, err := h.defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: coldStartDefinition}))
		return err
	})
	if err != nil {
		return res, fmt.Errorf("put definition: %w", err)
	}
	input, err := structpb.NewValue(map[string]any{"n": 1})
	if err != nil {
		return res, err
	}
	err = h.retry(ctx, time.Minute, func(ctx context.Context) error {
		_, err := h.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: "coldstart", WorkflowId: "coldstart-1", RequestId: "start-coldstart-1", Input: input}))
		return err
	})
	if err != nil {
		return res, fmt.Errorf("start workflow: %w", err)
	}
	err = h.retry(ctx, time.Minute, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		resp, err := h.awaits.AwaitWorkflow(actx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{
			WorkflowId: "coldstart-1", Timeout: durationpb.New(10 * time.Second)}))
		if err != nil {
			return err
		}
		switch st := resp.Msg.Workflow.GetStatus(); st {
		case weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED:
			return nil
		case weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING:
			return connect.NewError(connect.CodeUnavailable, fmt.Errorf("workflow is %s", st))
		default:
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("workflow is %s", st))
		}
	})
	if err != nil {
		return res, fmt.Errorf("await workflow: %w", err)
	}
	res.Completed = time.Since(start)
	if res.LateChanges, err = h.lateChanges(ctx); err != nil {
		return res, fmt.Errorf("open the store once more: %w", err)
	}
	return res, nil
}

// lateChanges opens the store, its echo task consumer and its feed of
// runs due for deletion, as a part started late does, and counts the
// requests it made to create or change a stream or consumer.
func (h *Harness) lateChanges(ctx context.Context) (int, error) {
	watch, err := nats.Connect(h.natsURLs)
	if err != nil {
		return 0, err
	}
	defer watch.Close()
	var n atomic.Int64
	for _, subj := range []string{"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
		"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>"} {
		if _, err := watch.Subscribe(subj, func(*nats.Msg) { n.Add(1) }); err != nil {
			return 0, err
		}
	}
	if err := watch.Flush(); err != nil {
		return 0, err
	}
	nc, err := nats.Connect(h.natsURLs)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, storeConfig)
	if err != nil {
		return 0, err
	}
	if err := store.EnsureTaskConsumer(ctx, "echo"); err != nil {
		return 0, err
	}
	f, err := store.Feed(ctx, eventstore.SourceRetention, 1)
	if err != nil {
		return 0, err
	}
	f.Stop()
	if err := watch.Flush(); err != nil {
		return 0, err
	}
	return int(n.Load()), nil
}

// countLogged counts the lines of Weft's parts' logs that contain text.
func (h *Harness) countLogged(text string) int {
	n := 0
	for _, p := range append(append(append([]*proc{}, h.orch...), h.exec...), h.api) {
		if p == nil {
			continue
		}
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		n += strings.Count(string(data), text)
	}
	return n
}
