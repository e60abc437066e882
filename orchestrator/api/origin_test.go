package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A loopback-open API refuses requests a web page on another site sends
// (its Origin names that site), and serves the console's own (a loopback
// origin) and outside services' (no Origin).
func TestRequireLoopbackHostOrigin(t *testing.T) {
	srv := httptest.NewServer(RequireLoopbackHost(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	defer srv.Close()
	for origin, want := range map[string]int{
		"": 200, "http://localhost:8080": 200, "http://127.0.0.1:8080": 200, "https://app.localhost": 200, "http://[::1]:8080": 200,
		"https://attacker.example": 403, "http://localhost.attacker.example": 403, "null": 403, "file://": 403,
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/hooks/x", nil)
		req.Host = "127.0.0.1"
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Origin %q: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}
