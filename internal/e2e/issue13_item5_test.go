package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// Item 5: a webhook name belongs to the first definition that claims it
// until that definition drops it.
func TestIssue13Item5_WebhookNameHasOneOwner(t *testing.T) {
	t.Setenv("WEFT_TEST_ISSUE13_SECRET", "s3cret")
	e := newEnv(t, envOpts{})
	owner := `
name: zzz-signup
triggers: [ { webhook: signup, secret_env: WEFT_TEST_ISSUE13_SECRET } ]
steps: [ { id: s, task: echo, input: owner } ]
`
	e.putDef(owner)
	thief := `
name: aaa-other
triggers: [ { webhook: signup } ]
steps: [ { id: s, task: echo, input: thief } ]
`
	wantCodeAll(t, e.putDefErr(thief), connect.CodeFailedPrecondition, `"signup"`, "zzz-signup")
	// The owner may put it again, changed or not.
	e.putDef(owner)
	e.putDef(strings.Replace(owner, "input: owner", "input: owner2", 1))

	url := e.node.APIURL + "/hooks/signup"
	body := []byte(`{}`)
	eventually(t, 10*time.Second, "the webhook to be registered", func() bool {
		code, _ := postHook(t, url, body, nil)
		return code != http.StatusNotFound
	})
	if code, out := postHook(t, url, body, nil); code != http.StatusUnauthorized {
		t.Fatalf("unsigned delivery: %d %v; want 401", code, out)
	}
	if n := len(e.listAll("aaa-other")); n != 0 {
		t.Fatalf("%d runs of aaa-other", n)
	}

	// The owner drops the webhook: the name is free.
	e.putDef(`
name: zzz-signup
steps: [ { id: s, task: echo, input: owner } ]
`)
	e.putDef(thief)
	eventually(t, 10*time.Second, "the webhook to start aaa-other", func() bool {
		code, _ := postHook(t, url, body, nil)
		return code == http.StatusAccepted
	})
	eventually(t, 10*time.Second, "a run of aaa-other", func() bool { return len(e.listAll("aaa-other")) > 0 })
	// Now the first owner cannot take it back.
	wantCodeAll(t, e.putDefErr(owner), connect.CodeFailedPrecondition, `"signup"`, "aaa-other")
}
