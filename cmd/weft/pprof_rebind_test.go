package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestPprofRefusesForeignHost: --pprof on a loopback address, like the API
// open on one, must not answer a request that names another host (a web
// page whose name an attacker rebinds to 127.0.0.1): /debug/pprof/cmdline
// prints the command line, --nats-password and all.
func TestPprofRefusesForeignHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := servePprof(addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, host := range []string{"attacker.example:6060", "rebind.attacker.example"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/debug/pprof/cmdline", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("Host %s: pprof answered 200 with the command line: %q", host, strings.ReplaceAll(string(body), "\x00", " "))
		}
	}
	// Requests that name this machine are still served.
	req, _ := http.NewRequest("GET", "http://"+addr+"/debug/pprof/cmdline", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("Host %s: %d, want 200", addr, resp.StatusCode)
	}
}
