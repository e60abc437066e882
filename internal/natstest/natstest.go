// Package natstest starts real embedded NATS servers with JetStream for
// tests: one per test, on a random loopback port and a temp store dir.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	// StoreDir is where JetStream keeps its files; a restart reuses it.
	StoreDir string
	t        testing.TB
	port     int
}

// Start runs an embedded nats-server with JetStream for the duration of t.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{StoreDir: t.TempDir(), t: t, port: -1}
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
