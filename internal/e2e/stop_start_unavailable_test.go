package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/internal/node"
	"github.com/weftworks/weft/orchestrator/api"
)

// A StartWorkflow with neither workflow_id nor request_id ("every request
// starts a new run") that the stop of its API process cuts short after its
// run was recorded (the acknowledgement was on its way back) is not
// answered "call StartWorkflow again": a caller that did as told started a
// second run. The answer of a write the stop cut short cannot say it was
// not made, so only reads are answered Unavailable.
func TestAStartCutShortByAStopIsNotAnsweredCallAgain(t *testing.T) {
	e := newEnv(t, envOpts{})
	rev := e.putDef(strings.Replace(parkedDef, "name: parked", "name: cutstart", 1)).GetRevision()

	// A second API process, whose NATS connection goes through a proxy
	// that can hold back what the server sends (its replies and acks).
	px := startHoldingProxy(t, e.ns.Addr().String())
	n2, err := node.Start(context.Background(), node.Config{NATSURL: "nats://" + px.addr(), Logger: testLogger(),
		API: &api.Config{}, APIAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	t.Cleanup(func() {
		px.release()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n2.Stop(sctx)
	})
	wf2 := weftv1connect.NewWorkflowServiceClient(http.DefaultClient, n2.APIURL)
	// The revision is compiled in n2's cache (a start of its own), as a
	// busy API's definitions are: a start of it reads nothing first.
	if _, err := wf2.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "cutstart", Revision: rev, WorkflowId: "warm"})); err != nil {
		t.Fatal(err)
	}
	runs := func() int64 {
		res, err := e.wf.CountWorkflows(ctx(t), connect.NewRequest(&weftv1.CountWorkflowsRequest{Definition: "cutstart"}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetTotal()
	}
	eventually(t, 20*time.Second, "the warm-up run to be listed", func() bool { return runs() == 1 })

	px.hold()
	answered := make(chan error, 1)
	go func() {
		_, err := wf2.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "cutstart", Revision: rev}))
		answered <- err
	}()
	eventually(t, 20*time.Second, "the start to be recorded", func() bool { return runs() == 2 })
	go func() {
		defer close(stopped)
		sctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		_ = n2.Stop(sctx)
	}()
	var cut error
	select {
	case cut = <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("the start was not answered")
	}
	<-stopped
	px.release()
	if cut == nil {
		t.Skip("the start was answered (its acknowledgement got through)")
	}
	if connect.CodeOf(cut) != connect.CodeUnavailable {
		return // not an invitation to call again
	}
	// The caller does as told: it calls again (another API process).
	if _, err := e.wf.StartWorkflow(ctx(t), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "cutstart", Revision: rev})); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the repeated start to be listed", func() bool { return runs() == 3 })
	t.Fatalf("a start the stop cut short after its run was recorded was answered %q (code %v), which tells its caller to call again; "+
		"the call made again started a second run (%d runs of cutstart besides the warm-up one; want 1)", cut, connect.CodeOf(cut), runs()-1)
}

// holdingProxy forwards TCP connections to a NATS server; while held, what
// the server sends is held back (what the client sends still goes).
type holdingProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	cond   *sync.Cond
	held   bool
	closed bool
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln}
	p.cond = sync.NewCond(&p.mu)
	t.Cleanup(func() {
		p.mu.Lock()
		p.closed = true
		p.held = false
		p.cond.Broadcast()
		p.mu.Unlock()
		ln.Close()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						p.mu.Lock()
						for p.held && !p.closed {
							p.cond.Wait()
						}
						p.mu.Unlock()
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *holdingProxy) addr() string { return p.ln.Addr().String() }

func (p *holdingProxy) hold() {
	p.mu.Lock()
	p.held = true
	p.mu.Unlock()
}

func (p *holdingProxy) release() {
	p.mu.Lock()
	p.held = false
	p.cond.Broadcast()
	p.mu.Unlock()
}
