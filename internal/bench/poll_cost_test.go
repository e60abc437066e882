package bench_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// TestPollCost measures what a GetWorkflow of a running run costs a
// `weft server` of its own: it parks WEFT_SCALE_C runs (default 64) in a
// wait, has as many clients poll them at full speed for WEFT_POLL_SECONDS
// (default 10), and reports the server's CPU time per poll (from
// /proc/<pid>/stat) beside the polls answered a second. Only against an
// outside server (WEFT_SCALE_SERVER, WEFT_SCALE_SERVER_PID):
//
//	weft server --data D --addr 127.0.0.1:18081 --nats-addr 127.0.0.1:14223 &
//	WEFT_SCALE_SERVER=http://127.0.0.1:18081 WEFT_SCALE_SERVER_PID=$! \
//	  go test -count=1 -run TestPollCost -v ./internal/bench/
func TestPollCost(t *testing.T) {
	url, pid := os.Getenv("WEFT_SCALE_SERVER"), os.Getenv("WEFT_SCALE_SERVER_PID")
	if url == "" || pid == "" {
		t.Skip("needs WEFT_SCALE_SERVER and WEFT_SCALE_SERVER_PID")
	}
	c := envInt(t, "WEFT_SCALE_C", 64)
	secs := envInt(t, "WEFT_POLL_SECONDS", 10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+2*time.Minute)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * c}
	wf := weftv1connect.NewWorkflowServiceClient(&http.Client{Transport: tr}, url)
	defs := weftv1connect.NewDefinitionServiceClient(http.DefaultClient, url)
	put, err := defs.PutDefinition(ctx, connect.NewRequest(&weftv1.PutDefinitionRequest{Source: parkedDef}))
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("pc%d-", time.Now().UnixNano()%1e9)
	for i := range c {
		id := prefix + strconv.Itoa(i)
		if _, err := wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: put.Msg.Name, Revision: put.Msg.Revision, WorkflowId: id, RequestId: id})); err != nil {
			t.Fatal(err)
		}
	}
	var polls atomic.Int64
	poll := func(ctx context.Context) {
		var wg sync.WaitGroup
		for i := range c {
			wg.Go(func() {
				req := connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: prefix + strconv.Itoa(i)})
				for ctx.Err() == nil {
					if resp, err := wf.GetWorkflow(ctx, req); err == nil && resp.Msg.Workflow.Status == weftv1.WorkflowStatus_WORKFLOW_STATUS_RUNNING {
						polls.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	warm, stop := context.WithTimeout(ctx, 2*time.Second)
	poll(warm)
	stop()
	polls.Store(0)
	cpu0, t0 := procCPU(t, pid), time.Now()
	run, stop := context.WithTimeout(ctx, time.Duration(secs)*time.Second)
	poll(run)
	stop()
	cpu, took, n := procCPU(t, pid)-cpu0, time.Since(t0), polls.Load()
	t.Logf("%d clients polling %d running runs: %d polls in %.1fs (%.0f/s); server CPU %.2fs, %.0f µs a poll",
		c, c, n, took.Seconds(), float64(n)/took.Seconds(), cpu.Seconds(), float64(cpu.Microseconds())/float64(n))
}

// procCPU reads the user and system CPU time of process pid.
func procCPU(t *testing.T, pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // clock ticks of 1/100 s
}
