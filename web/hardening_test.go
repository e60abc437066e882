package console_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// deepList is n nested lists around 1: [[...[1]...]].
func deepList(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }

// deepObject is n nested objects {"a": {"a": ... 1}}.
func deepObject(n int) any {
	var v any = 1.0
	for i := 0; i < n; i++ {
		v = map[string]any{"a": v}
	}
	return v
}

// A definition whose input_schema nests 50 levels (Weft accepts 64) is
// listed: protobuf-es reads 100 nested messages by default, each JSON level
// is two, and the console raises the limit (it once failed the definitions
// page for every definition).
func TestADeepSchemaIsListed(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	w.mustPut("name: plain\nsteps:\n  - { id: a, task: echo, input: x }\n")
	w.mustPut("name: deepschema\ninput_schema:\n  type: object\n  default: " + deepList(50) + "\nsteps:\n  - { id: a, task: echo, input: x }\n")
	p.open("/definitions")
	p.until("the plain definition listed", `document.querySelector('table.defs tr[data-name="plain"]')`)
}

// A run whose input nests 50 levels (StartWorkflow accepts 64) is shown.
func TestADeepInputIsShown(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	w.mustPut("name: plain\nsteps:\n  - { id: a, task: echo, input: x }\n")
	in, err := structpb.NewValue(deepObject(50))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.wf.StartWorkflow(w.ctx(), connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "plain", WorkflowId: "deep-1", Input: in})); err != nil {
		t.Fatalf("StartWorkflow: %v", err)
	}
	w.waitStatus("deep-1", weftv1.WorkflowStatus_WORKFLOW_STATUS_COMPLETED)
	p.open("/workflows/deep-1")
	p.until("the run's facts", `document.querySelector("dl.facts") && !document.querySelector("p.error")`)
}

// A crafted link with a percent-escape that is not UTF-8 renders the app
// (decodeURIComponent threw in App).
func TestABadEscapeInALinkRenders(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	p.open("/workflows/%C0")
	p.until("the nav", `document.querySelector("nav a")`)
}

// With no tokens on a loopback address (the default), the API answers
// only requests to a loopback host: a page on another site that rebinds
// its name to 127.0.0.1 would read and act on runs as a same-origin page.
func TestAnotherHostIsNotAnswered(t *testing.T) {
	w := startWeft(t, nil, "")
	w.mustPut("name: plain\nsteps:\n  - { id: a, task: echo, input: x }\n")
	req, _ := http.NewRequest("POST", w.url+"/weft.v1.DefinitionService/ListDefinitions", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Host = "attacker.example:8080"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(string(body), "plain") {
		t.Fatalf("Host attacker.example answered: %d %s", resp.StatusCode, body)
	}
}

// nestedParallel is a definition whose steps nest n parallels deep.
func nestedParallel(n int) string {
	var b strings.Builder
	b.WriteString("name: nested\nsteps:\n")
	ind := "  "
	for i := 0; i < n; i++ {
		b.WriteString(ind + "- id: p" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "\n")
		b.WriteString(ind + "  parallel:\n" + ind + "    branches:\n" + ind + "      only:\n")
		ind += "        "
	}
	b.WriteString(ind + "- { id: leaf, task: echo, input: x }\n")
	return b.String()
}

// A definition whose steps nest 13 parallels (the parser allows 32
// levels) shows its diagram: its outline's response decodes.
func TestNestedStepsShowTheirDiagram(t *testing.T) {
	b := newBrowser(t)
	w := startWeft(t, nil, "")
	p := &page{t: t, ctx: b, url: w.url}
	w.mustPut(nestedParallel(13))
	p.open("/definitions/nested")
	p.until("the diagram", `document.querySelector("svg.diagram")`)
}

// A cross-site form (text/plain or form-encoded, no preflight) cannot call
// a method, and raw traversal paths serve no file.
func TestFormsAndTraversalsAreRefused(t *testing.T) {
	w := startWeft(t, nil, "")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"} {
		resp, err := http.Post(w.url+"/weft.v1.WorkflowService/StartWorkflow", ct, strings.NewReader(`{"definition":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("POST %s: %d", ct, resp.StatusCode)
		}
	}
	host := strings.TrimPrefix(w.url, "http://")
	for _, p := range []string{"/console/assets/../../go.mod", "/console/assets/..%2f..%2fgo.mod", "/console/assets/%2e%2e/index.html", "/console/assets/.", "/console/assets//etc/passwd", "/console/assets/..\\index.html"} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", p, host)
		b, _ := io.ReadAll(conn)
		conn.Close()
		status, _, _ := strings.Cut(string(b), "\r\n")
		if !strings.Contains(status, "404") && !strings.Contains(status, "400") && !strings.Contains(status, "301") {
			t.Errorf("GET %s: %s", p, status)
		}
	}
}
