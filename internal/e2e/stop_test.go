package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A call in flight when its node stops is let finish (within the stop's
// time), not cut short: a start or a put cut halfway would answer an
// error for what may be applied, and a client that asks again with a new
// request id repeats it. Here a PutDefinition of a definition with a
// subject trigger waits for the trigger subjects' lock, held by someone
// else, while the node stops; the lock is then freed, long before the
// stop's deadline. Awaits open at the stop end at once (Unavailable).
func TestAStopLetsCallsInFlightFinish(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(parkedDef)
	parked := e.start("parked", "parked-at-stop", `{}`)
	// A second node serving the API, which is the one stopped.
	n2 := e.startNode(envOpts{noExecutor: true}, false, true)
	wf, defs := newClients(n2.APIURL)

	nc := e.ns.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	kv, err := js.KeyValue(c, eventstore.CronBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(c, "subjects-lock", nil, jetstream.KeyTTL(20*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The put's tries to take the lock are writes to its subject.
	tries, err := nc.SubscribeSync("$KV." + eventstore.CronBucket + ".subjects-lock")
	if err != nil {
		t.Fatal(err)
	}
	awaited := make(chan error, 1)
	go func() {
		_, err := await(context.Background(), wf, parked, time.Minute)
		awaited <- err
	}()
	eventually(t, 20*time.Second, "the await to wait", func() bool { return awaiting(n2) == 1 })

	type answer struct {
		res *connect.Response[weftv1.PutDefinitionResponse]
		err error
	}
	put := make(chan answer, 1)
	go func() {
		res, err := defs.PutDefinition(c, connect.NewRequest(&weftv1.PutDefinitionRequest{
			Source: "name: trig\ntriggers:\n  - subject: stop.orders\nsteps:\n  - { id: a, task: echo, input: 1 }\n"}))
		put <- answer{res, err}
	}()
	if _, err := tries.NextMsg(20 * time.Second); err != nil {
		t.Fatalf("the put did not try to take the lock: %v", err)
	}
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopped <- n2.Stop(sctx)
	}()
	// The stop has begun once the API takes no new connection.
	addr := strings.TrimPrefix(n2.APIURL, "http://")
	eventually(t, 20*time.Second, "the stopping API to refuse connections", func() bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	select {
	case err := <-awaited:
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Fatalf("an await open at the stop: %v; want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an await open at the stop did not end")
	}
	if err := kv.Purge(c, "subjects-lock"); err != nil {
		t.Fatal(err)
	}
	a := <-put
	if err := <-stopped; err != nil {
		t.Logf("stop: %v", err)
	}
	if a.err != nil {
		t.Fatalf("a PutDefinition in flight when the node began to stop (the stop had 15 s, the call needed < 1 s) failed: %v", a.err)
	}
}
