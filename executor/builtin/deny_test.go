package builtin

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// countingServer serves 200 on ln (a new 127.0.0.1 listener when nil) and
// counts the requests that reached it.
func countingServer(t *testing.T, ln net.Listener, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func mustDeny(t *testing.T, ranges ...string) []netip.Prefix {
	t.Helper()
	p, err := ParseHTTPDeny(ranges)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseHTTPDeny(t *testing.T) {
	got, err := ParseHTTPDeny([]string{"169.254.169.254/32", "10.1.2.3/8", " ::1/128 ", "192.0.2.7", "fd00::1", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"169.254.169.254/32", "10.0.0.0/8", "::1/128", "192.0.2.7/32", "fd00::1/128", "172.16.0.0/12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("range %d = %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "10.0.0/8", "example.com", "fe80::1%eth0", "::1/129", "10.0.0.0/-1"} {
		if _, err := ParseHTTPDeny([]string{bad}); err == nil || !strings.Contains(err.Error(), "not an address range") {
			t.Errorf("ParseHTTPDeny(%q) = %v, want an error", bad, err)
		}
	}
}

// A request to a denied address fails at once, not retryably, with type
// denied naming the address and the option; nothing reaches the server.
// Names resolving to a denied address and IPv4-mapped forms are refused
// the same way; addresses outside the ranges are reached.
func TestHTTPDenyRefusesDeniedAddresses(t *testing.T) {
	srv, hits := countingServer(t, nil, nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	cfg := Config{HTTPDeny: mustDeny(t, "169.254.169.254/32", "127.0.0.0/8", "::1/128")}
	for _, u := range []string{
		srv.URL + "/x",
		"http://localhost:" + strconv.Itoa(port) + "/x",
		"http://[::ffff:127.0.0.1]:" + strconv.Itoa(port) + "/x",
	} {
		_, err := run(t, cfg, "http", map[string]any{"url": u, "method": "POST", "body": "hello"})
		e := taskErr(t, err, "denied", true)
		if !strings.Contains(e.Message, "--http-deny") || !strings.Contains(e.Message, "is in 127.0.0.0/8") && !strings.Contains(e.Message, "is in ::1/128") {
			t.Errorf("%s: message %q does not name the address, its range and the option", u, e.Message)
		}
	}
	// The unspecified addresses reach this host: denied with loopback.
	for _, u := range []string{
		"http://0.0.0.0:" + strconv.Itoa(port) + "/x",
		"http://[::]:" + strconv.Itoa(port) + "/x",
	} {
		_, err := run(t, cfg, "http", map[string]any{"url": u})
		e := taskErr(t, err, "denied", true)
		if !strings.Contains(e.Message, "reaches this host as") || !strings.Contains(e.Message, "--http-deny") {
			t.Errorf("%s: message %q does not say the address reaches this host", u, e.Message)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached the denied server", n)
	}

	out, err := run(t, Config{HTTPDeny: mustDeny(t, "10.0.0.0/8", "169.254.169.254/32")}, "http", map[string]any{"url": srv.URL})
	if err != nil || out.(map[string]any)["body"] != "ok" {
		t.Fatalf("an allowed address: %v, %v", out, err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("allowed server got %d requests, want 1", n)
	}
}

// A redirect from an allowed address to a denied one is refused when the
// client dials the denied address.
func TestHTTPDenyRefusesRedirectToDeniedAddress(t *testing.T) {
	var ln net.Listener
	var deny string
	for _, c := range [][2]string{{"127.0.0.2:0", "127.0.0.2/32"}, {"[::1]:0", "::1/128"}} {
		var err error
		if ln, err = net.Listen("tcp", c[0]); err == nil {
			deny = c[1]
			break
		}
	}
	if ln == nil {
		t.Skip("no second loopback address to listen on (127.0.0.2 or ::1)")
	}
	denied, deniedHits := countingServer(t, ln, nil)
	allowed, allowedHits := countingServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, denied.URL+"/inside", http.StatusFound)
	})
	cfg := Config{HTTPDeny: mustDeny(t, deny)}

	_, err := run(t, cfg, "http", map[string]any{"url": allowed.URL + "/start"})
	e := taskErr(t, err, "denied", true)
	if !strings.Contains(e.Message, "/inside") || !strings.Contains(e.Message, "is in "+deny) {
		t.Errorf("message %q does not name the redirect target and the denied range", e.Message)
	}
	if a, d := allowedHits.Load(), deniedHits.Load(); a != 1 || d != 0 {
		t.Fatalf("allowed server got %d requests (want 1), denied server %d (want 0)", a, d)
	}

	// Without the option the redirect is followed.
	if out, err := run(t, Config{}, "http", map[string]any{"url": allowed.URL + "/start"}); err != nil || out.(map[string]any)["body"] != "ok" {
		t.Fatalf("without --http-deny: %v, %v", out, err)
	}
	if d := deniedHits.Load(); d != 1 {
		t.Fatalf("denied server got %d requests without the option, want 1", d)
	}
}

type otherTransport struct{}

func (otherTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("not used") }

// HTTPDeny keeps a custom *http.Transport's settings but never its proxy,
// and fails closed with a Transport it cannot wrap.
func TestHTTPDenyWithCustomClient(t *testing.T) {
	srv, hits := countingServer(t, nil, nil)
	proxied := false
	tr := &http.Transport{Proxy: func(*http.Request) (*url.URL, error) {
		proxied = true
		return url.Parse("http://192.0.2.1:9")
	}}
	cfg := Config{HTTPClient: &http.Client{Transport: tr}, HTTPDeny: mustDeny(t, "127.0.0.0/8")}
	_, err := run(t, cfg, "http", map[string]any{"url": srv.URL})
	taskErr(t, err, "denied", true)
	if proxied || hits.Load() != 0 {
		t.Fatalf("proxy consulted %v, %d requests reached the denied server", proxied, hits.Load())
	}

	cfg = Config{HTTPClient: &http.Client{Transport: otherTransport{}}, HTTPDeny: mustDeny(t, "127.0.0.0/8")}
	_, err = run(t, cfg, "http", map[string]any{"url": srv.URL})
	if e := taskErr(t, err, "not_configured", true); !strings.Contains(e.Message, "HTTPDeny") {
		t.Errorf("message %q does not name HTTPDeny", e.Message)
	}
}
