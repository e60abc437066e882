package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// An API open on a loopback address answers only requests that name a
// loopback host, so that a web page cannot reach it from the browser of
// someone on this machine. A page needs no DNS rebinding for a webhook: a
// cross-site "simple" POST (text/plain, no preflight) names localhost and
// starts a run. The browser says where it comes from (Origin,
// Sec-Fetch-Site); an outside service calling a webhook sends neither.
func TestCrossSiteWebhookOnLoopbackAPI(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.putDef(`
name: local-hook
triggers:
  - webhook: local-hook
steps:
  - { id: handle, task: echo, input: "${ input }" }
`)
	req, err := http.NewRequest("POST", e.node.APIURL+"/hooks/local-hook", strings.NewReader(`{"from": "attacker"}`))
	if err != nil {
		t.Fatal(err)
	}
	// What fetch(url, {method: "POST", mode: "no-cors", body}) sends from
	// https://attacker.example (its Host is the URL's: 127.0.0.1:<port>).
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("Origin", "https://attacker.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		t.Errorf("a cross-site POST from a web page started a run: %d %s", resp.StatusCode, body)
	}
	// A server-to-server delivery (no Origin) still works.
	resp, err = http.Post(e.node.APIURL+"/hooks/local-hook", "application/json", strings.NewReader(`{"from": "service"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("a delivery without Origin: %d %s, want 202", resp.StatusCode, body)
	}
}
