package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/natstest"
)

func run(t *testing.T, cfg Config, typ string, input any) (any, error) {
	t.Helper()
	h := Handlers(cfg)[typ]
	if h == nil {
		t.Fatalf("no handler for %q", typ)
	}
	return h(context.Background(), executor.NewTask("wf-1", "step", typ, 1, input))
}

// taskErr asserts err is an *executor.Error of type typ with the given retryability.
func taskErr(t *testing.T, err error, typ string, nonRetryable bool) *executor.Error {
	t.Helper()
	var e *executor.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *executor.Error", err, err)
	}
	if e.Type != typ || e.NonRetryable != nonRetryable {
		t.Fatalf("error %v: type %q nonRetryable %v, want %q %v", err, e.Type, e.NonRetryable, typ, nonRetryable)
	}
	return e
}

func TestEcho(t *testing.T) {
	in := map[string]any{"a": []any{int64(1), "x", nil}, "b": map[string]any{"c": true}}
	out, err := run(t, Config{}, "echo", in)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("echo = %v, %v; want %v", out, err, in)
	}
}

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	cfg := Config{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	out, err := run(t, cfg, "log", map[string]any{"message": "hello", "level": "warn", "fields": map[string]any{"order": int64(7)}})
	if err != nil || out != nil {
		t.Fatalf("log = %v, %v", out, err)
	}
	if _, err := run(t, cfg, "log", []any{"raw", int64(1)}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d log lines: %s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"msg": "hello", "level": "WARN", "workflow_id": "wf-1", "step": "step", "attempt": 1.0}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("record %s = %v, want %v (%s)", k, rec[k], v, lines[0])
		}
	}
	if f, _ := rec["fields"].(map[string]any); f["order"] != 7.0 {
		t.Errorf("record fields = %v, want order 7 (%s)", rec["fields"], lines[0])
	}
	if !strings.Contains(lines[1], `"value":["raw",1]`) {
		t.Errorf("value record = %s", lines[1])
	}
	_, err = run(t, cfg, "log", map[string]any{"message": "x", "level": "loud"})
	taskErr(t, err, "invalid_input", true)
}

func TestHTTPPostJSON(t *testing.T) {
	type seen struct {
		method, key, ua, ct, query string
		body                       []byte
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Get("Idempotency-Key"), r.UserAgent(), r.Header.Get("Content-Type"), r.URL.RawQuery, b}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":42,"ok":true,"price":1.5}`)
	}))
	defer srv.Close()

	out, err := run(t, Config{}, "http", map[string]any{
		"method": "post", "url": srv.URL + "/orders", "query": map[string]any{"dry": "1"},
		"headers": map[string]any{"X-Trace": "t"}, "body": map[string]any{"item": "book", "qty": int64(2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	s := <-got
	if s.method != "POST" || s.key != "wf-1/step" || s.ua != "weft" || s.ct != "application/json" || s.query != "dry=1" {
		t.Errorf("request = %+v", s)
	}
	if string(s.body) != `{"item":"book","qty":2}` {
		t.Errorf("request body = %s", s.body)
	}
	m := out.(map[string]any)
	if m["status"] != int64(201) {
		t.Errorf("status = %v", m["status"])
	}
	if h := m["headers"].(map[string]any); h["X-Multi"] != "a, b" || h["Content-Type"] != "application/json; charset=utf-8" {
		t.Errorf("headers = %v", h)
	}
	if want := map[string]any{"id": int64(42), "ok": true, "price": 1.5}; !reflect.DeepEqual(m["body"], want) {
		t.Errorf("body = %#v, want %#v", m["body"], want)
	}
}

func TestHTTPTextBodyAndHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Header.Get("Content-Type")+"|"+r.Header.Get("Idempotency-Key")+"|"+string(b))
	}))
	defer srv.Close()
	out, err := run(t, Config{}, "http", map[string]any{"method": "PUT", "url": srv.URL, "body": "{not json",
		"headers": map[string]any{"idempotency-key": "mine"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := out.(map[string]any)["body"]; body != "text/plain; charset=utf-8|mine|{not json" {
		t.Errorf("body = %q", body)
	}
}

func TestHTTPStatusErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ra := r.URL.Query().Get("retry_after"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		w.WriteHeader(code)
		io.WriteString(w, strings.Repeat("x", 300))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		code, retryAfter int
		typ              string
		nonRetryable     bool
	}{
		{503, 2, "unavailable", false},
		{503, 0, "unavailable", false},
		{500, 0, "server_error", false},
		{429, 1, "rate_limited", false},
		{400, 0, "bad_request", true},
		{401, 0, "unauthorized", true},
		{404, 0, "not_found", true},
		{410, 0, "gone", true},
		{422, 0, "unprocessable", true},
		{418, 0, "client_error", true},
	} {
		u := srv.URL + "/?code=" + strconv.Itoa(tc.code)
		if tc.retryAfter > 0 {
			u += "&retry_after=" + strconv.Itoa(tc.retryAfter)
		}
		_, err := run(t, Config{}, "http", map[string]any{"url": u})
		e := taskErr(t, err, tc.typ, tc.nonRetryable)
		if e.RetryAfter != time.Duration(tc.retryAfter)*time.Second {
			t.Errorf("%d: RetryAfter = %v, want %ds", tc.code, e.RetryAfter, tc.retryAfter)
		}
		if !strings.Contains(e.Message, strconv.Itoa(tc.code)) || strings.Count(e.Message, "x") != 200 {
			t.Errorf("%d: message = %q", tc.code, e.Message)
		}
	}
}

func TestHTTPTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Handlers(Config{})["http"](ctx, executor.NewTask("wf", "s", "http", 1, map[string]any{"url": srv.URL}))
	taskErr(t, err, "timeout", false)
}

func TestHTTPNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	_, err := run(t, Config{}, "http", map[string]any{"url": url})
	taskErr(t, err, "network", false)
}

func TestHTTPTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("y", 101))
	}))
	defer srv.Close()
	_, err := run(t, Config{MaxBodyBytes: 100}, "http", map[string]any{"url": srv.URL})
	taskErr(t, err, "response_too_large", true)
	if _, err := run(t, Config{MaxBodyBytes: 101}, "http", map[string]any{"url": srv.URL}); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPInvalidInput(t *testing.T) {
	for _, in := range []any{
		"http://example.com",
		map[string]any{},
		map[string]any{"url": "ftp://example.com/x"},
		map[string]any{"url": "example.com/x"},
		map[string]any{"url": "http://example.com", "method": "FETCH"},
		map[string]any{"url": "http://example.com", "headers": map[string]any{"X-N": int64(1)}},
		map[string]any{"url": "http://example.com", "headers": map[string]any{"Bad Name": "v"}},
		map[string]any{"url": "http://example.com", "query": map[string]any{"page": int64(2)}},
	} {
		_, err := run(t, Config{}, "http", in)
		taskErr(t, err, "invalid_input", true)
	}
}

// startNATS runs an embedded JetStream-enabled server and connects to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	return natstest.Start(t).Connect(t)
}

func TestNATSPublishCore(t *testing.T) {
	nc := startNATS(t)
	sub, err := nc.SubscribeSync("events.created")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NATS: nc}
	out, err := run(t, cfg, "nats.publish", map[string]any{"subject": "events.created",
		"data": map[string]any{"id": int64(1)}, "headers": map[string]any{"X-Kind": "order"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, map[string]any{"subject": "events.created"}) {
		t.Errorf("output = %v", out)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != `{"id":1}` || msg.Header.Get("Idempotency-Key") != "wf-1/step" || msg.Header.Get("X-Kind") != "order" {
		t.Errorf("message = %q %v", msg.Data, msg.Header)
	}
	if _, err := run(t, cfg, "nats.publish", map[string]any{"subject": "events.created", "data": "raw"}); err != nil {
		t.Fatal(err)
	}
	if msg, err = sub.NextMsg(5 * time.Second); err != nil || string(msg.Data) != "raw" {
		t.Errorf("raw message = %v, %v", msg, err)
	}
	for _, in := range []any{map[string]any{}, map[string]any{"subject": "a.*"}, map[string]any{"subject": "a b"},
		map[string]any{"subject": "a", "jetstream": "yes"}} {
		_, err := run(t, cfg, "nats.publish", in)
		taskErr(t, err, "invalid_input", true)
	}
	_, err = run(t, Config{}, "nats.publish", map[string]any{"subject": "a"})
	taskErr(t, err, "not_configured", true)
}

func TestNATSPublishJetStream(t *testing.T) {
	nc := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	in := map[string]any{"subject": "orders.new", "data": "x", "jetstream": true}
	cfg := Config{NATS: nc}
	for i, dup := range []bool{false, true} {
		out, err := run(t, cfg, "nats.publish", in)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]any{"stream": "ORDERS", "seq": int64(1), "duplicate": dup}; !reflect.DeepEqual(out, want) {
			t.Errorf("publish %d = %v, want %v", i, out, want)
		}
	}
	_, err = run(t, cfg, "nats.publish", map[string]any{"subject": "nostream", "jetstream": true})
	taskErr(t, err, "nats", false)
}

// Item 3 of issue 13: nats.publish refuses subjects reserved for NATS and
// Weft unless Config.PublishAllow matches them, and sends nothing then.
func TestIssue13Item3_PublishReservedSubjects(t *testing.T) {
	nc := startNATS(t)
	got := make(chan *nats.Msg, 16)
	for _, s := range []string{"_INBOX.probe", "weft.h.other.ext", "$SYS.probe", "$JS.API.STREAM.INFO.X", "ok.done"} {
		if _, err := nc.ChanSubscribe(s, got); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{NATS: nc, PublishAllow: []string{"$JS.API.STREAM.INFO.*"}}
	for _, subject := range []string{"$JS.API.STREAM.PURGE.WEFT_HISTORY", "$KV.b.k", "$O.b.k", "$SYS.probe", "_INBOX.probe",
		"weft.h.other.ext", "weft.r.other"} {
		for _, js := range []bool{false, true} {
			_, err := run(t, cfg, "nats.publish", map[string]any{"subject": subject, "jetstream": js})
			if e := taskErr(t, err, "invalid_input", true); !strings.Contains(e.Message, subject) {
				t.Errorf("error %q does not name %s", e.Message, subject)
			}
		}
	}
	for _, subject := range []string{"$JS.API.STREAM.INFO.X", "ok.done"} {
		if _, err := run(t, cfg, "nats.publish", map[string]any{"subject": subject}); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
	}
	for _, want := range []string{"$JS.API.STREAM.INFO.X", "ok.done"} {
		select {
		case m := <-got:
			if m.Subject != want {
				t.Fatalf("received %s; want %s (a refused subject was published)", m.Subject, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no message on %s", want)
		}
	}
}

func TestCheckPublishAllow(t *testing.T) {
	if err := CheckPublishAllow([]string{"$JS.API.STREAM.INFO.>", "weft.*.x", "a"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "a..b", "a.>.b", "a.b*", "a b"} {
		if err := CheckPublishAllow([]string{p}); err == nil {
			t.Errorf("pattern %q accepted", p)
		}
	}
}
