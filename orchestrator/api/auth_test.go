package api

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoadTokens(t *testing.T) {
	ci, ops := HashToken("ci-secret"), HashToken("ops-secret")
	wall := HashToken("wall-secret")
	f := writeFile(t, "# Weft API tokens\n\n"+TokenLine("ci", "ci-secret", RoleRun)+"\n  ops : "+strings.ToUpper(hex.EncodeToString(ops[:]))+"  \n"+
		"wall:"+hex.EncodeToString(wall[:])+" : read\n")
	got, err := LoadTokens(f)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tokens{"ci": {ci, RoleRun}, "ops": {ops, RoleAdmin}, "wall": {wall, RoleRead}}); !maps.Equal(got, want) {
		t.Fatalf("LoadTokens = %v, want %v", got, want)
	}

	good := TokenLine("ci", "ci-secret", RoleAdmin)
	for name, tc := range map[string]struct{ text, want string }{
		"no colon":      {"# c\n" + good + "\nci\n", "line 3: want name:<sha256 hex"},
		"bad name":      {"bad name:" + hex.EncodeToString(ci[:]), "line 1: token name \"bad name\""},
		"empty name":    {":" + hex.EncodeToString(ci[:]), "line 1: token name \"\""},
		"raw token":     {"\n\nci:weft_abc", "line 3: token ci: the hash must be 64 hex digits"},
		"short hash":    {"ci:abcd", "line 1: token ci: the hash must be 64 hex digits"},
		"repeated name": {good + "\n" + TokenLine("ci", "other", RoleAdmin), "line 2: token name \"ci\" appears twice"},
		"repeated hash": {good + "\n" + TokenLine("ci2", "ci-secret", RoleAdmin), "line 2: token ci2 has the same hash as token ci"},
		"no tokens":     {"# nothing yet\n\n", "no tokens"},
		"unknown role":  {good + ":root", "line 1: token ci: role \"root\": use admin"},
		"empty role":    {good + ":", "line 1: token ci: role \"\""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadTokens(writeFile(t, tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadTokens: %v; want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("LoadTokens of a missing file succeeded")
	}
}

func TestNewTokenAndCheckTokenName(t *testing.T) {
	a, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewToken()
	if !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+43 || a == b {
		t.Fatalf("NewToken = %q, %q", a, b)
	}
	for _, ok := range []string{"ci", "deploy-bot", "ann@example.com", "a_b.c"} {
		if err := CheckTokenName(ok); err != nil {
			t.Errorf("CheckTokenName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "a:b", "é", strings.Repeat("x", 65), "anonymous"} {
		if CheckTokenName(bad) == nil {
			t.Errorf("CheckTokenName(%q) accepted", bad)
		}
	}
}

func TestTokenCheckerMatch(t *testing.T) {
	c := newTokenChecker(Tokens{"a": {Hash: HashToken("tok-a"), Role: RoleAdmin}, "b": {Hash: HashToken("tok-b"), Role: RoleAdmin}, "c": {Hash: HashToken("tok-c"), Role: RoleAdmin}})
	for tok, want := range map[string]string{"tok-a": "a", "tok-b": "b", "tok-c": "c"} {
		if got, ok := c.match(tok); !ok || got.name != want {
			t.Errorf("match(%q) = %q, %v; want %q", tok, got.name, ok, want)
		}
	}
	for _, tok := range []string{"", "tok-", "tok-d", "TOK-A", "tok-a "} {
		if got, ok := c.match(tok); ok {
			t.Errorf("match(%q) = %q; want no match", tok, got.name)
		}
	}
	if _, ok := newTokenChecker(Tokens{}).match("x"); ok {
		t.Error("an empty checker matched")
	}
}

// RequireTokens guards everything but health checks and webhooks, answers
// in Connect's JSON error format, and hands on the token's name.
func TestRequireTokens(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+TokenName(r.Context()))
	})
	srv := httptest.NewServer(RequireTokens(Tokens{"ci": {Hash: HashToken("s3cret"), Role: RoleAdmin}}, slog.New(slog.DiscardHandler), next))
	defer srv.Close()
	post := func(path, auth string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	const rpc = "/weft.v1.WorkflowService/GetWorkflow"
	for _, auth := range []string{"", "Bearer wrong", "Basic czNjcmV0", "Bearer", "s3cret"} {
		code, body, h := post(rpc, auth)
		var e struct{ Code, Message string }
		_ = json.Unmarshal([]byte(body), &e)
		if code != http.StatusUnauthorized || e.Code != "unauthenticated" || !strings.Contains(e.Message, "Authorization: Bearer <token>") {
			t.Errorf("auth %q: %d %s", auth, code, body)
		}
		if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("auth %q: WWW-Authenticate %q", auth, h.Get("WWW-Authenticate"))
		}
	}
	for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
		if code, body, _ := post(rpc, auth); code != http.StatusOK || body != "ok ci" {
			t.Errorf("auth %q: %d %s", auth, code, body)
		}
	}
	for _, open := range []string{"/grpc.health.v1.Health/Check", "/hooks/new-signup"} {
		if code, body, _ := post(open, ""); code != http.StatusOK || body != "ok " {
			t.Errorf("%s without a token: %d %s", open, code, body)
		}
	}
	for _, closed := range []string{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/hooks/../weft.v1.WorkflowService/GetWorkflow", "/other"} {
		if code, _, _ := post(closed, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", closed, code)
		}
	}
}

// An API open to anyone on a loopback address answers requests that name
// a loopback host only: a page whose name rebinds to 127.0.0.1 names its
// own.
func TestRequireLoopbackHost(t *testing.T) {
	srv := httptest.NewServer(RequireLoopbackHost(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	defer srv.Close()
	for host, want := range map[string]int{
		"localhost": 200, "localhost:8080": 200, "LOCALHOST.": 200, "app.localhost:1": 200, "127.0.0.1:8080": 200,
		"127.9.9.9": 200, "[::1]:8080": 200, "[::ffff:127.0.0.1]:80": 200,
		"attacker.example:8080": 421, "10.0.0.1": 421, "localhost.attacker.example": 421,
	} {
		req, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
