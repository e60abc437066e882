package bench_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// TestParkedAwaits parks K workflows in a wait with an AwaitWorkflow call
// open on each, measures what the open calls add to this process's memory
// (it holds the server and the clients, so the figure bounds the API's),
// then signals them all and checks that every call returns its own run's
// output. Small by default; WEFT_SCALE=1 runs K = 10,000 (WEFT_SCALE_K
// sets K) and holds the growth to 200 MiB. WEFT_SCALE_SERVER (an API URL),
// WEFT_SCALE_SERVER_PID and WEFT_SCALE_SERVER_PPROF measure a `weft
// server` of its own instead, without the clients:
//
//	WEFT_SCALE=1 go test -count=1 -timeout 30m -run TestParkedAwaits -v ./internal/bench/
func TestParkedAwaits(t *testing.T) {
	full := scaleFull()
	k := 300
	if full {
		k = 10000
	}
	k = envInt(t, "WEFT_SCALE_K", k)
	c := envInt(t, "WEFT_SCALE_C", 64)
	within := min(2*time.Minute+time.Duration(k)*10*time.Millisecond, 20*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	e := startScaleEnv(t, c)
	apiURL, apiRSS := e.node.APIURL, func() uint64 { rss, _ := memStatus(t); return rss }
	if url := os.Getenv("WEFT_SCALE_SERVER"); url != "" {
		// A server of its own (weft server; WEFT_SCALE_SERVER_PID names
		// its process): its memory is the API's and the engine's alone.
		apiURL, apiRSS = url, func() uint64 {
			serverGC(t)
			return pidRSS(t, os.Getenv("WEFT_SCALE_SERVER_PID"))
		}
		e.wf, e.defs = weftv1connect.NewWorkflowServiceClient(http.DefaultClient, url), weftv1connect.NewDefinitionServiceClient(http.DefaultClient, url)
	}
	def := e.putDef(ctx, t, parkedDef)
	prefix := fmt.Sprintf("aw%d-", time.Now().UnixNano()%1e9)
	idOf := func(i int) string { return prefix + strconv.Itoa(i) }
	if err := fanOut(ctx, k, c, func(ctx context.Context, i, _ int) error {
		_, err := e.wf.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{
			Definition: def.Name, Revision: def.Revision, WorkflowId: idOf(i), RequestId: idOf(i)}))
		return err
	}); err != nil {
		t.Fatalf("starting: %v", err)
	}

	// The awaits share one HTTP/2 connection, as a gRPC client's would
	// (one the server limits to fewer calls than k leaves some queued
	// here, and the test fails).
	tr := &http.Transport{Protocols: new(http.Protocols), MaxConnsPerHost: 1,
		HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true}}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	awaits := weftv1connect.NewWorkflowServiceClient(&http.Client{Transport: tr}, apiURL)
	runtime.GC()
	rss0 := apiRSS()
	writeHeapProfile(t, ".before")
	type answer struct {
		i   int
		w   *weftv1.Workflow
		err error
	}
	answers := make(chan answer, k)
	for i := range k {
		go func() {
			resp, err := awaits.AwaitWorkflow(ctx, connect.NewRequest(&weftv1.AwaitWorkflowRequest{
				WorkflowId: idOf(i), Timeout: durationpb.New(15 * time.Minute)}))
			if err != nil {
				answers <- answer{i: i, err: err}
				return
			}
			answers <- answer{i: i, w: resp.Msg.Workflow}
		}()
	}
	if !waitFor(ctx, within, func() bool { return awaitsOpen(t, apiURL, e) >= k }) {
		t.Fatalf("%d of %d awaits are waiting when time ran out", awaitsOpen(t, apiURL, e), k)
	}
	if pid := os.Getenv("WEFT_SCALE_SERVER_PID"); apiURL != e.node.APIURL && !settled(ctx, t, pid) {
		t.Fatalf("the server was still busy a minute after the %d awaits were open", k)
	}
	runtime.GC()
	rss1 := apiRSS()
	writeHeapProfile(t, "")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("Go heap in use %.0f MiB, stacks %.0f MiB, runtime total (Sys) %.0f MiB", mib(ms.HeapInuse), mib(ms.StackInuse), mib(ms.Sys))
	grew := float64(rss1) - float64(rss0)
	who := "this process, clients included"
	if apiURL != e.node.APIURL {
		who = "the server process"
	}
	t.Logf("%d awaits open on parked runs: VmRSS of %s %.0f MiB -> %.0f MiB (+%.0f MiB, %.1f KiB per await)",
		k, who, mib(rss0), mib(rss1), grew/(1<<20), grew/float64(k)/1024)
	if full && grew > 200<<20 {
		t.Errorf("%d open awaits grew the process by %.0f MiB; the target is at most 200 MiB", k, grew/(1<<20))
	}

	t1 := time.Now()
	if err := fanOut(ctx, k, c, func(ctx context.Context, i, attempt int) error {
		payload, err := structpb.NewValue(map[string]any{"n": i})
		if err != nil {
			return err
		}
		_, err = e.wf.SignalWorkflow(ctx, connect.NewRequest(&weftv1.SignalWorkflowRequest{WorkflowId: idOf(i), Name: "approve",
			RequestId: "sig-" + idOf(i), Payload: payload}))
		if attempt > 0 && connect.CodeOf(err) == connect.CodeFailedPrecondition {
			err = nil // an earlier attempt got through and the workflow completed
		}
		return err
	}); err != nil {
		t.Fatalf("signalling: %v", err)
	}
	for range k {
		var a answer
		select {
		case a = <-answers:
		case <-ctx.Done():
			t.Fatalf("awaits still open when time ran out")
		}
		if a.err != nil {
			t.Fatalf("await of %s: %v", idOf(a.i), a.err)
		}
		out := a.w.Output.GetStructValue().GetFields()
		n, _ := asInt(out["approval"].GetStructValue().GetFields()["n"].GetNumberValue())
		if a.w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED || out["id"].GetStringValue() != idOf(a.i) || n != int64(a.i) {
			t.Fatalf("await of %s returned %s with output %v", idOf(a.i), a.w.Status, a.w.Output.AsInterface())
		}
	}
	t.Logf("signalled and every await answered in %.2fs", time.Since(t1).Seconds())
}

// writeHeapProfile writes a heap profile to WEFT_SCALE_HEAPPROFILE, if
// set: the outside server's (with its goroutines beside it, in
// WEFT_SCALE_HEAPPROFILE.goroutines) when there is one, else this
// process's.
//
// suffix is added to the file's name.
func writeHeapProfile(t *testing.T, suffix string) {
	path := os.Getenv("WEFT_SCALE_HEAPPROFILE")
	if path == "" {
		return
	}
	path += suffix
	if addr := os.Getenv("WEFT_SCALE_SERVER_PPROF"); addr != "" && os.Getenv("WEFT_SCALE_SERVER") != "" {
		for to, from := range map[string]string{path: "/debug/pprof/heap", path + ".goroutines": "/debug/pprof/goroutine?debug=1", path + ".memstats": "/debug/pprof/heap?debug=1"} {
			resp, err := http.Get("http://" + addr + from)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(to, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("the server's heap profile: %s", path)
		return
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Fatal(err)
	}
	t.Logf("heap profile: %s", path)
}

// awaitsOpen is how many awaits the API holds open: asked of the node in
// this process, or read off an outside server's /metrics
// (weft_api_calls_waiting), a small page where its goroutine profile
// would cost the server megabytes a look.
func awaitsOpen(t *testing.T, url string, e *scaleEnv) int {
	if url == e.node.APIURL {
		n, _ := e.node.API.Waiting()
		return n
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `weft_api_calls_waiting{call="await"} `); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s/metrics: %q: %v", url, line, err)
			}
			return int(n)
		}
	}
	t.Fatalf("%s/metrics has no weft_api_calls_waiting{call=\"await\"}", url)
	return 0
}

// settled waits until the outside server process pid has used less than a
// tenth of a core for half a second: the awaits registered have made their
// first looks and are parked.
func settled(ctx context.Context, t *testing.T, pid string) bool {
	cpu := func() int {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			t.Fatalf("WEFT_SCALE_SERVER_PID: %v", err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 12th and 13th (in clock ticks, 100 a second).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return u + s
	}
	return waitFor(ctx, time.Minute, func() bool {
		before := cpu()
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
		return cpu()-before < 5
	})
}

// serverGC has the outside server collect its garbage (its heap profile
// does, asked with gc=1), so its memory is what it holds.
//
// It asks three times: each collection also halves the stacks of
// goroutines that use less than a quarter of theirs, as the collections
// of a server left running for a few minutes would (the runtime collects
// at least every two minutes).
func serverGC(t *testing.T) {
	for range 3 {
		resp, err := http.Get("http://" + os.Getenv("WEFT_SCALE_SERVER_PPROF") + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}

// pidRSS reads VmRSS of process pid in bytes.
func pidRSS(t *testing.T, pid string) uint64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatalf("WEFT_SCALE_SERVER_PID: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS for process %s", pid)
	return 0
}
