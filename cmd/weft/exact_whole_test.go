package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A whole number a float64 holds exactly (2^53+2, 1e20 as JSON.stringify
// writes it) is taken by the API's JSON (and binary) doors; weft start
// --input reads "as the API reads a value", so it sends it too, rather
// than refusing it as one "the API's numbers (float64)" cannot carry, and
// the run's input reads back as sent. 2^53+1, which a float64 would round,
// stays refused by both.
func TestCLIInputTakesWholeNumbersTheAPIsJSONTakes(t *testing.T) {
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr}, []string{server})
	file := filepath.Join(t.TempDir(), "park.yaml")
	if err := os.WriteFile(file, []byte("name: park\nsteps:\n  - { id: w, wait: { signal: go } }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "def", "apply", "-f", file, server); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	for i, n := range []string{"9007199254740994", "100000000000000000000"} {
		input := `{"id":` + n + `}`
		// The API's JSON door takes it.
		id := "api-" + string(rune('a'+i))
		resp, err := http.Post("http://"+addr+"/weft.v1.WorkflowService/StartWorkflow", "application/json",
			strings.NewReader(`{"definition":"park","workflowId":"`+id+`","input":`+input+`}`))
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the API's JSON refused %s: %d %s", input, resp.StatusCode, body.String())
		}
		// So does the CLI, which reads as the API reads.
		cid := "cli-" + string(rune('a'+i))
		if out, err := runCLI(t, "start", "park", "--id", cid, "--input", input, server); err != nil {
			t.Fatalf("weft start --input %s: %v\n%s; the API's JSON takes it", input, err, out)
		}
		out, err := runCLI(t, "get", cid, server)
		if err != nil || !strings.Contains(out, n) {
			t.Fatalf("get %s: %v\n%s; want the input %s as sent", cid, err, out, input)
		}
	}
	if out, err := runCLI(t, "start", "park", "--input", `{"id":9007199254740993}`, server); err == nil || !strings.Contains(err.Error(), "send it as a string") {
		t.Fatalf("weft start --input 2^53+1: %v\n%s; want it refused", err, out)
	}
}
