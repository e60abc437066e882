package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/logbuf"
)

// Item 6: a webhook whose secret is unset answers a generic 503; the
// variable is named in the log, at put time and at startup, not to callers.
func TestIssue13Item6_UnsetSecretGeneric503(t *testing.T) {
	const secretVar = "WEFT_TEST_ISSUE13_UNSET"
	t.Setenv(secretVar, "")
	_ = os.Unsetenv(secretVar)
	var logs logbuf.Buffer
	e := newEnv(t, envOpts{logger: slog.New(slog.NewTextHandler(&logs, nil))})
	put := e.putDef(`
name: unset
triggers: [ { webhook: unset-secret, secret_env: ` + secretVar + ` } ]
steps: [ { id: s, task: echo, input: x } ]
`)
	if len(put.Warnings) != 1 || !strings.Contains(put.Warnings[0], secretVar) {
		t.Fatalf("put warnings %q, want one naming %s", put.Warnings, secretVar)
	}
	if !strings.Contains(logs.String(), secretVar) {
		t.Fatalf("no put-time warning naming %s in the log:\n%s", secretVar, logs.String())
	}
	url := e.node.APIURL + "/hooks/unset-secret"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, []byte(`{}`), nil)
		return code != http.StatusNotFound
	})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("delivery: %d %v; want 503", code, out)
	}
	if msg := fmt.Sprint(out["error"]); strings.Contains(msg, secretVar) || strings.Contains(msg, "secret") {
		t.Fatalf("503 body %q tells the caller about the secret", msg)
	}
	// A node starting with the definition in place warns too.
	var later logbuf.Buffer
	e.startNode(envOpts{noExecutor: true, logger: slog.New(slog.NewTextHandler(&later, nil))}, false, true)
	if !strings.Contains(later.String(), secretVar) {
		t.Fatalf("no startup warning naming %s in the log:\n%s", secretVar, later.String())
	}
}

// Item 6: a signature in upper-case hex is accepted.
func TestIssue13Item6_UppercaseHexSignature(t *testing.T) {
	t.Setenv("WEFT_TEST_ISSUE13_UPPER", "s3cret")
	e := newEnv(t, envOpts{})
	e.putDef(`
name: upper
triggers: [ { webhook: upper, secret_env: WEFT_TEST_ISSUE13_UPPER } ]
steps: [ { id: s, task: echo, input: x } ]
`)
	body := []byte(`{"n": 1}`)
	mac := hmac.New(sha256.New, []byte("s3cret"))
	mac.Write(body)
	sig := "sha256=" + strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
	url := e.node.APIURL + "/hooks/upper"
	var code int
	var out map[string]any
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, out = postHook(t, url, body, map[string]string{"X-Weft-Signature": sig})
		return code != http.StatusNotFound
	})
	if code != http.StatusAccepted {
		t.Fatalf("upper-case signature: %d %v; want 202", code, out)
	}
	if code, out = postHook(t, url, body, map[string]string{"X-Weft-Signature": "sha256=" + strings.Repeat("AB", 32)}); code != http.StatusUnauthorized {
		t.Fatalf("wrong signature: %d %v; want 401", code, out)
	}
}

// Item 6: a fail step's non-string message is rendered as JSON.
func TestIssue13Item6_FailMessageMapRendersJSON(t *testing.T) {
	e := newEnv(t, envOpts{noExecutor: true})
	e.putDef(`
name: failmap
steps:
  - id: stop
    fail: { type: oops, message: "${ {'a': 1, 'b': [true, 'x']} }" }
`)
	id := e.start("failmap", "", "")
	w := e.waitClosed(id, 20*time.Second)
	if w.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_FAILED || !strings.HasSuffix(w.Error.Message, `: {"a":1,"b":[true,"x"]}`) {
		t.Fatalf("fail: %v %q; want the message as JSON", w.Status, w.Error.GetMessage())
	}
}
