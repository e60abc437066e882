// Package natstest starts real embedded NATS servers with JetStream for
// tests: one per test, on a random loopback port and a temp store dir.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	// StoreDir is where JetStream keeps its files; a restart reuses it.
	StoreDir string
	t        testing.TB
	port     int
	tune     func(*server.Options)
}

// Start runs an embedded nats-server with JetStream for the duration of t.
func Start(t testing.TB) *Server { return StartWith(t, nil) }

// StartWith is Start with the server's options changed by tune (a small
// JetStreamMaxStore, say) before it starts, and at each Restart.
func StartWith(t testing.TB, tune func(*server.Options)) *Server {
	t.Helper()
	s := &Server{StoreDir: t.TempDir(), t: t, port: -1, tune: tune}
	s.start()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      s.port,
		JetStream: true,
		StoreDir:  s.StoreDir,
		NoLog:     true,
		NoSigs:    true,
	}
	if s.tune != nil {
		s.tune(opts)
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("natstest: new server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		s.t.Fatalf("natstest: server not ready")
	}
	s.Server = ns
	s.port = ns.Addr().(*net.TCPAddr).Port
	s.t.Cleanup(s.stop)
}

func (s *Server) stop() {
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
}

// Restart stops the server and starts a new one on the same port and store dir.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// URL returns the server's client URL.
func (s *Server) URL() string { return s.ClientURL() }

// Connect returns a client connection that is closed when the test ends.
func (s *Server) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Fill stores filler messages through nc in a stream of its own (FILL)
// until JetStream refuses them for want of room (insufficient resources),
// and returns a function that deletes the stream again: it makes room.
// Give the server a small JetStreamMaxStore (StartWith).
func Fill(t testing.TB, nc *nats.Conn) (makeRoom func()) {
	t.Helper()
	ctx := context.Background()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILL", Subjects: []string{"natstest.fill.>"}}); err != nil {
		t.Fatalf("natstest: fill: %v", err)
	}
	data := make([]byte, 512<<10)
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatal("natstest: fill: JetStream took 5 GB and wants more: give the server a small JetStreamMaxStore")
		}
		if _, err := js.Publish(ctx, "natstest.fill.x", data); err != nil {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10023 {
				t.Fatalf("natstest: fill: %v; want insufficient resources (10023)", err)
			}
			break
		}
	}
	return func() {
		if err := js.DeleteStream(context.Background(), "FILL"); err != nil {
			t.Fatalf("natstest: make room: %v", err)
		}
	}
}

// Cluster is n embedded nats-servers with JetStream routed to each other,
// each with a store dir of its own, as one cluster.
type Cluster struct {
	Servers []*server.Server
}

// StartCluster runs a cluster of n embedded nats-servers with JetStream
// for the duration of t, and returns once JetStream has a meta leader.
func StartCluster(t testing.TB, n int) *Cluster { return StartClusterWith(t, n, nil) }

// StartClusterWith is StartCluster with each server's options changed by
// tune (a small JetStreamMaxStore, say) before it starts.
func StartClusterWith(t testing.TB, n int, tune func(*server.Options)) *Cluster {
	t.Helper()
	routes := make([]*net.TCPListener, n)
	for i := range routes {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("natstest: a route port: %v", err)
		}
		routes[i] = ln
	}
	urls := make([]*url.URL, n)
	ports := make([]int, n)
	for i, ln := range routes {
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		urls[i] = &url.URL{Scheme: "nats", Host: ln.Addr().String()}
		ln.Close()
	}
	c := &Cluster{}
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: ports[i]},
			Routes:     urls,
		}
		if tune != nil {
			tune(opts)
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natstest: new server: %v", err)
		}
		go ns.Start()
		t.Cleanup(func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		})
		c.Servers = append(c.Servers, ns)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, ns := range c.Servers {
		if !ns.ReadyForConnections(time.Until(deadline)) {
			t.Fatalf("natstest: server %s not ready", ns.Name())
		}
	}
	for !c.hasMetaLeader() {
		if time.Now().After(deadline) {
			t.Fatal("natstest: the cluster elected no JetStream meta leader that hears from every server")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// hasMetaLeader reports whether every server is current with the
// JetStream meta group and its leader hears from all of them.
func (c *Cluster) hasMetaLeader() bool {
	for _, ns := range c.Servers {
		if !ns.JetStreamIsCurrent() {
			return false
		}
	}
	for _, ns := range c.Servers {
		// The leader places streams only on peers it has heard from
		// (online, with JetStream, with stats): until it has heard from
		// all, a stream of as many replicas finds "no suitable peers".
		if ns.JetStreamIsLeader() {
			return len(ns.JetStreamClusterPeers()) == len(c.Servers)
		}
	}
	return false
}

// URL returns the client URLs of every server, comma separated.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, ns := range c.Servers {
		urls[i] = ns.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Connect returns a client connection to the cluster's first server,
// closed when the test ends.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.Servers[0].ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}
