package builtin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/natstest"
)

// README: "the permissions of the executor's NATS user (--nats-creds)
// can narrow them further". A nats.publish step to a subject the
// executor's user may not publish on fails (error type denied, not
// retried, naming the subject), and one it may publish on succeeds, on
// the same connection after the refusal. The server drops a refused
// message and answers with an asynchronous error only: the step was
// reported published.
func TestAPublishTheNATSUserMayNotMakeFails(t *testing.T) {
	nc := deniedConn(t)
	got := make(chan *nats.Msg, 10)
	if _, err := nc.ChanSubscribe("orders.>", got); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subject   string
		jetstream bool
	}{{"billing.charge", false}, {"_GR_.abcdef.ghijkl.reply", false}, {"billing.charge", true}} {
		// A JetStream publish the server refuses gets no ack: it is
		// told apart well before the attempt's timeout.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		start := time.Now()
		out, err := Handlers(Config{NATS: nc})["nats.publish"](ctx, executor.NewTask("wf-1", "step", "nats.publish", 1,
			map[string]any{"subject": tc.subject, "data": "x", "jetstream": tc.jetstream}))
		cancel()
		if err == nil {
			t.Fatalf("a publish to %s (jetstream %v), which the server refuses, was reported published: %v", tc.subject, tc.jetstream, out)
		}
		if e := taskErr(t, err, "denied", true); !strings.Contains(e.Message, tc.subject) {
			t.Errorf("the error does not name the subject %s: %v", tc.subject, e.Message)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("a refused publish to %s (jetstream %v) took %v to fail", tc.subject, tc.jetstream, took)
		}
	}
	for range 2 {
		if _, err := run(t, Config{NATS: nc}, "nats.publish", map[string]any{"subject": "orders.created", "data": "x"}); err != nil {
			t.Fatalf("a publish the user may make failed after a refused one: %v", err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the allowed publish was not delivered")
		}
	}
}

// A refusal of another subject that the server sends in the same moments
// does not hide this publish's own: the connection keeps one last error,
// and the other refusal may take its place before the step looks. Every
// publish to the denied subject fails "denied" while another goroutine's
// publishes to another denied subject are refused all the while.
func TestARefusalIsNotHiddenByAnotherSubjectsRefusal(t *testing.T) {
	nc := deniedConn(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = nc.Publish("billing.other", []byte("x"))
			_ = nc.Flush()
		}
	}()
	h := Handlers(Config{NATS: nc})["nats.publish"]
	for i := range 100 {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		out, err := h(ctx, executor.NewTask("wf-1", "step", "nats.publish", 1,
			map[string]any{"subject": "billing.charge", "data": "x"}))
		cancel()
		if err == nil {
			t.Fatalf("publish %d to billing.charge, which the server refuses, was reported published: %v", i, out)
		}
		taskErr(t, err, "denied", true)
	}
}

// deniedConn connects, as a user that may publish on orders.> and
// JetStream's API only, to a server of its own.
func deniedConn(t *testing.T) *nats.Conn {
	t.Helper()
	ns := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "executor", Password: "pw", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"orders.>", "$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		}}}
	})
	nc, err := nats.Connect(ns.URL(), nats.UserInfo("executor", "pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// An error the connection is told of just as a publish begins (another
// step's refusal, between the publish's reads of the connection's last
// error and of its record of errors) does not hold the publish up: the
// refusal look waited for the error handler to be given that error,
// which it had been already, until refusalWait (2 s) ran out.
func TestAPublishBegunAsAnotherRefusalComesIsNotHeldUp(t *testing.T) {
	nc := deniedConn(t)
	c := Config{NATS: nc}
	h := Handlers(c)["nats.publish"]
	r := nc.ErrorHandler()
	told := make(chan struct{}, 1)
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		r(c, s, err)
		select {
		case told <- struct{}{}:
		default:
		}
	})
	testHookPublishMark = func() {
		// Another step's publish, refused, and its refusal told.
		_ = nc.Publish("billing.other", []byte("x"))
		_ = nc.Flush()
		select {
		case <-told:
		case <-time.After(10 * time.Second):
			t.Error("the other refusal was not told")
		}
	}
	defer func() { testHookPublishMark = nil }()
	for _, js := range []bool{false, true} {
		start := time.Now()
		if _, err := h(t.Context(), executor.NewTask("wf-1", "step", "nats.publish", 1,
			map[string]any{"subject": "orders.created", "data": "x", "jetstream": js})); err != nil && !js {
			t.Fatalf("a publish the user may make failed: %v", err)
		}
		if took := time.Since(start); took >= refusalWait {
			t.Errorf("a publish (jetstream %v) begun as another subject's refusal came took %v", js, took)
		}
	}
}
