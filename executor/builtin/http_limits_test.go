package builtin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/weftworks/weft/executor"
)

// rawServer answers every connection with resp, after reading the request head.
func rawServer(t *testing.T, resp func(w *bufio.Writer)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				w := bufio.NewWriterSize(c, 1<<16)
				resp(w)
				w.Flush()
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/"
}

// The http task caps a response's headers (MaxResponseHeaderBytes) as it
// caps its body: net/http's default of 10 MiB, turned into the step's
// output, held many times that in memory for one attempt.
func TestHugeResponseHeadersAreRefused(t *testing.T) {
	const lines = 2_500_000 // "X:\r\n" is 4 bytes: ~10 MB, counted by net/http as 0 bytes of values
	url := rawServer(t, func(w *bufio.Writer) {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
		for i := 0; i < lines; i++ {
			fmt.Fprintf(w, "X:\r\n")
		}
		w.WriteString("\r\n")
	})
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	out, err := run(t, Config{}, "http", map[string]any{"url": url})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Logf("error: %.200v", err)
	}
	n := 0
	if m, ok := out.(map[string]any); ok {
		n = len(m["headers"].(map[string]any))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("headers in output: %d, allocated %d MiB, heap in use %d MiB, took %v", n, alloc>>20, after.HeapInuse>>20, time.Since(start))
	taskErr(t, err, "response_too_large", true)
	if n > 0 {
		t.Errorf("a response with %d header lines (~%d MiB) was taken as a success output of %d headers, allocating %d MiB",
			lines, lines*4>>20, n, alloc>>20)
	}
}

// An http step whose server answers 101 Switching Protocols (the step
// asked for it with Connection: Upgrade) and then sends nothing: the
// handler returns, refusing the switch, rather than read the connection
// net/http hands over past the step's deadline.
func TestAnUpgradeIsRefused(t *testing.T) {
	url := rawServer(t, func(w *bufio.Writer) {
		w.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
		w.Flush()
		<-t.Context().Done()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Handlers(Config{})["http"](ctx, executor.NewTask("wf", "s", "http", 1, map[string]any{"url": url,
			"headers": map[string]any{"Connection": "Upgrade", "Upgrade": "x"}}))
		done <- err
	}()
	select {
	case err := <-done:
		taskErr(t, err, "bad_response", true)
	case <-time.After(3 * time.Second):
		t.Fatal("the http handler did not return 3s after its 200ms context ended: a 101 response's body ignores the context")
	}
}

// A body that never ends: the handler returns when its context ends.
func TestAStalledBodyEndsWithTheContext(t *testing.T) {
	url := rawServer(t, func(w *bufio.Writer) {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc")
		w.Flush()
		<-t.Context().Done()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Handlers(Config{})["http"](ctx, executor.NewTask("wf", "s", "http", 1, map[string]any{"url": url}))
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("returned: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("stalled body: handler did not return")
	}
}
