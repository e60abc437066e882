// Package embedded runs the nats-server with JetStream inside the weft
// process, for the one-binary default.
package embedded

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config says where the embedded server listens and stores.
type Config struct {
	// Addr is the NATS client listener, host:port. Default 127.0.0.1:4222;
	// port 0 or -1 picks a free one.
	Addr string
	// DataDir holds JetStream's files. Required.
	DataDir string
	// SyncAlways makes JetStream fsync every write before acking it.
	// Default false: the file store flushes on an interval.
	SyncAlways bool
}

// Start runs an embedded nats-server and waits until it accepts clients.
// It holds the data directory's lock while the server runs: a second
// server on the same directory (whatever its address) is refused, as two
// would each write the same files and lose each other's acknowledged
// writes.
func Start(cfg Config) (*server.Server, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("embedded nats: DataDir is required")
	}
	unlock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ns, err := start(cfg)
	if err != nil {
		unlock()
		return nil, err
	}
	go func() {
		ns.WaitForShutdown()
		unlock()
	}()
	return ns, nil
}

// start runs the server of cfg and waits until it accepts clients.
func start(cfg Config) (*server.Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: port in %q: %w", cfg.Addr, err)
	}
	if port == 0 {
		port = -1
	} else {
		// Fail fast with a clear error when the port is taken.
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("embedded nats: cannot listen on %s (use --nats-addr to pick another address): %w", cfg.Addr, err)
		}
		ln.Close()
	}
	opts := &server.Options{
		ServerName: "weft-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s after 30s", cfg.Addr)
	}
	return ns, nil
}
