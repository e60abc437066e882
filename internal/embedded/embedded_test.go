package embedded

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The parts of a weft process beside its embedded server reach it over an
// in-memory pipe (nats.InProcessServer), with JetStream as over TCP.
func TestAClientInTheProcessNeedsNoSocket(t *testing.T) {
	ns, err := Start(Config{Addr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect("nats://127.0.0.1:1", nats.InProcessServer(ns), nats.Name("in-process"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "t.1", []byte("x"))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish: %v %+v", err, ack)
	}
	cz, err := ns.Connz(&server.ConnzOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The URL names a closed port: the client went through no socket.
	if len(cz.Conns) != 1 || cz.Conns[0].Name != "in-process" || cz.Conns[0].IP != "" || cz.Conns[0].Port != 0 {
		t.Fatalf("want the one client, in process (no address), got %+v", cz.Conns)
	}
}
