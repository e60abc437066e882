package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// The task types of a definition are looked up at PutDefinition only to
// warn; a JetStream that does not answer consumer info (a consumer's
// leader lost, its API overloaded: here, a permission that drops the
// requests of the two types' consumers) made each look-up retry for as long as the call lasts (about
// 33 s without a deadline), after the definition was stored: a client
// with a deadline was told the put failed, and one without waited half a
// minute a task type.
func TestAPutIsNotHeldUpByTaskLookupsNATSDoesNotAnswer(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{
			{Username: "admin", Password: "p"},
			{Username: "api", Password: "p", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{
					"$JS.API.CONSUMER.INFO." + eventstore.HistoryStream + "." + eventstore.TaskConsumerName("charge"),
					"$JS.API.CONSUMER.INFO." + eventstore.HistoryStream + "." + eventstore.TaskConsumerName("refund")}}}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		t.Fatal("nats not ready")
	}
	t.Cleanup(ns.Shutdown)
	ctx := t.Context()
	connect1 := func(user string) *nats.Conn {
		nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, "p"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	admin, err := eventstore.Open(ctx, connect1("admin"), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.EnsureTaskConsumer(ctx, "charge"); err != nil {
		t.Fatal(err)
	}
	store, err := eventstore.Open(ctx, connect1("api"), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, url := serveStore(t, store)
	defs := weftv1connect.NewDefinitionServiceClient(http.DefaultClient, url)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	began := time.Now()
	_, err = defs.PutDefinition(cctx, connect.NewRequest(&weftv1.PutDefinitionRequest{
		Source: "name: pay\nsteps:\n  - { id: a, task: charge }\n  - { id: b, task: refund }\n"}))
	took := time.Since(began)
	if _, gerr := store.GetDefinition(ctx, "pay", 0); gerr != nil {
		t.Fatalf("the definition is not stored: %v (put: %v)", gerr, err)
	}
	if err != nil || took > 5*time.Second {
		t.Fatalf("put answered %v after %s; want OK at once (the definition is stored, and the look-ups only warn)", err, took.Round(time.Millisecond))
	}
}
