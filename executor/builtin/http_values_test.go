package builtin

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// The response option picks how the body comes back; text that is not
// UTF-8, and header values that are not, come back base64-encoded.
func TestIssue13Item2_HTTPResponseModes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.URL.Query().Get("ct"))
		w.Header()["X-Latin"] = []string{"caf\xe9"}
		io.WriteString(w, r.URL.Query().Get("body"))
	}))
	defer srv.Close()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, mode, ct, body string
		want                 map[string]any // body / body_base64
		errType              string
	}{
		{"auto json", "", "application/json", `{"a":1}`, map[string]any{"body": map[string]any{"a": int64(1)}}, ""},
		{"auto bad json is text", "", "application/problem+json", `{`, map[string]any{"body": "{"}, ""},
		{"auto text", "", "text/plain", "café", map[string]any{"body": "café"}, ""},
		{"auto latin-1", "", "text/plain", "caf\xe9", map[string]any{"body_base64": b64("caf\xe9")}, ""},
		{"auto latin-1 labelled json", "", "application/json", "caf\xe9", map[string]any{"body_base64": b64("caf\xe9")}, ""},
		{"auto deep json", "", "application/json", strings.Repeat("[", 65) + strings.Repeat("]", 65), nil, "invalid_output"},
		{"json whatever the type", "json", "text/plain", `[1]`, map[string]any{"body": []any{int64(1)}}, ""},
		{"json empty", "json", "text/plain", ``, map[string]any{"body": nil}, ""},
		{"json not json", "json", "application/json", `nope`, nil, "invalid_output"},
		{"auto json of a number a float64 rounds", "", "application/json", `{"id":12345678901234567891}`, nil, "invalid_output"},
		{"json of a whole number a float64 rounds", "json", "text/plain", `{"p":9007199254740993.0}`, nil, "invalid_output"},
		{"auto json of a long fraction", "", "application/json", `{"p":0.1234567890123456789}`, map[string]any{"body": map[string]any{"p": 0.12345678901234568}}, ""},
		{"text of a number a float64 rounds", "text", "application/json", `{"id":12345678901234567891}`, map[string]any{"body": `{"id":12345678901234567891}`}, ""},
		{"text of json", "text", "application/json", `{"a":1}`, map[string]any{"body": `{"a":1}`}, ""},
		{"text deep json", "text", "application/json", strings.Repeat("[", 300), map[string]any{"body": strings.Repeat("[", 300)}, ""},
		{"bytes", "bytes", "text/plain", "hi", map[string]any{"body_base64": b64("hi")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]any{"url": srv.URL + "?ct=" + url.QueryEscape(tc.ct) + "&body=" + url.QueryEscape(tc.body)}
			if tc.mode != "" {
				in["response"] = tc.mode
			}
			out, err := run(t, Config{}, "http", in)
			if tc.errType != "" {
				taskErr(t, err, tc.errType, true)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := out.(map[string]any)
			got := map[string]any{}
			for _, k := range []string{"body", "body_base64"} {
				if v, ok := m[k]; ok {
					got[k] = v
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			if h := m["headers_base64"].(map[string]any); h["X-Latin"] != b64("caf\xe9") {
				t.Fatalf("headers_base64 %v", h)
			}
			if _, ok := m["headers"].(map[string]any)["X-Latin"]; ok {
				t.Fatal("X-Latin in headers")
			}
		})
	}
	_, err := run(t, Config{}, "http", map[string]any{"url": srv.URL, "response": "xml"})
	taskErr(t, err, "invalid_input", true)
}

// Header values with control characters fail as invalid_input before
// anything is sent; tabs and non-ASCII text are fine.
func TestIssue13Item6_HeaderControlChars(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got.Add(1) }))
	defer srv.Close()
	for _, v := range []string{"a\x01b", "a\x1bb", "a\x7fb", "a\x08"} {
		_, err := run(t, Config{}, "http", map[string]any{"url": srv.URL, "headers": map[string]any{"X-V": v}})
		e := taskErr(t, err, "invalid_input", true)
		if !strings.Contains(e.Message, "X-V") || !strings.Contains(e.Message, "control characters") {
			t.Fatalf("%q: %v", v, e)
		}
	}
	for _, v := range []string{"a\tb", "café ☕"} {
		if _, err := run(t, Config{}, "http", map[string]any{"url": srv.URL, "headers": map[string]any{"X-V": v}}); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
	}
	if n := got.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}
}

// A 4xx body that is not UTF-8 still gives a valid UTF-8 message.
func TestIssue13Item2_StatusErrorMessageIsText(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		io.WriteString(w, "caf\xe9")
	}))
	defer srv.Close()
	_, err := run(t, Config{}, "http", map[string]any{"url": srv.URL})
	e := taskErr(t, err, "bad_request", true)
	if !strings.HasSuffix(e.Message, "caf\uFFFD") {
		t.Fatalf("message %q", e.Message)
	}
}
