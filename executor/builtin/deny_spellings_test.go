package builtin

import (
	"net"
	"strconv"
	"testing"
)

// Other spellings of loopback under --http-deny 127.0.0.0/8,::1/128.
func TestHTTPDenySpellings(t *testing.T) {
	srv, hits := countingServer(t, nil, nil)
	p := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	cfg := Config{HTTPDeny: mustDeny(t, "127.0.0.0/8", "::1/128")}
	for _, u := range []string{
		"http://2130706433:" + p + "/",
		"http://0x7f000001:" + p + "/",
		"http://127.1:" + p + "/",
		"http://0177.0.0.1:" + p + "/",
		"http://user:pw@127.0.0.1:" + p + "/",
		"http://example.com@127.0.0.1:" + p + "/",
		"http://[::ffff:7f00:1]:" + p + "/",
		"http://[0:0:0:0:0:ffff:127.0.0.1]:" + p + "/",
		"http://[::127.0.0.1]:" + p + "/",
		"http://[::1%25lo]:" + p + "/",
		"http://127.0.0.2:" + p + "/",
		"http://0:" + p + "/",
		"http://[::ffff:0.0.0.0]:" + p + "/",
	} {
		before := hits.Load()
		_, err := run(t, cfg, "http", map[string]any{"url": u})
		if hits.Load() != before {
			t.Errorf("%s reached the denied server (err %v)", u, err)
		} else {
			t.Logf("%s: %v", u, err)
		}
	}
}
