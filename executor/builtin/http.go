package builtin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"

	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/telemetry"
)

var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

var statusTypes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
	409: "conflict", 410: "gone", 422: "unprocessable", 429: "rate_limited", 503: "unavailable",
}

// Response modes of the http task's response option.
const (
	responseAuto  = ""      // JSON when the content type says so and it parses, else text
	responseJSON  = "json"  // the body must be JSON
	responseText  = "text"  // the body as text
	responseBytes = "bytes" // the body base64-encoded
)

func (c Config) http(ctx context.Context, t *executor.Task) (any, error) {
	if c.httpErr != nil {
		return nil, executor.NonRetryable(executor.NewError("not_configured", "%v", c.httpErr))
	}
	req, mode, err := newRequest(ctx, t)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		if d := deniedFailure(err); d != nil {
			return nil, d
		}
		if strings.Contains(err.Error(), "server response headers exceeded") {
			// (net/http has no error value for it.)
			return nil, executor.NonRetryable(executor.NewError("response_too_large",
				"the response's headers are over %d bytes", MaxResponseHeaderBytes))
		}
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	// The step's deadline ends the read: net/http stops watching the
	// context once it hands over the connection of a protocol switch.
	stop := context.AfterFunc(ctx, func() { _ = resp.Body.Close() })
	defer stop()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil, executor.NonRetryable(executor.NewError("bad_response",
			"HTTP 101: the server switched protocols; an http step takes one response (leave out Connection: Upgrade)"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.MaxBodyBytes+1))
	if err != nil {
		return nil, transportError(ctx, err)
	}
	if resp.StatusCode >= 400 {
		return nil, statusError(resp, body)
	}
	if int64(len(body)) > c.MaxBodyBytes {
		return nil, executor.NonRetryable(executor.NewError("response_too_large",
			"HTTP %d response body is over %d bytes", resp.StatusCode, c.MaxBodyBytes))
	}
	out := map[string]any{"status": int64(resp.StatusCode)}
	addHeaders(out, resp.Header)
	if err := addBody(out, mode, resp, body); err != nil {
		return nil, err
	}
	return out, nil
}

// addHeaders sets out's headers (canonical names, repeated values joined
// with ", ") and, for values that are not valid UTF-8, headers_base64.
func addHeaders(out map[string]any, h http.Header) {
	text := make(map[string]any, len(h))
	var binary map[string]any
	for k, v := range h {
		j := strings.Join(v, ", ")
		if utf8.ValidString(j) {
			text[k] = j
			continue
		}
		if binary == nil {
			binary = map[string]any{}
		}
		binary[k] = base64.StdEncoding.EncodeToString([]byte(j))
	}
	out["headers"] = text
	if binary != nil {
		out["headers_base64"] = binary
	}
}

// addBody sets out's body as mode says: body (decoded JSON or text), or
// body_base64 for bytes and for text that is not valid UTF-8.
func addBody(out map[string]any, mode string, resp *http.Response, body []byte) error {
	var parsed any
	var err error
	switch mode {
	case responseAuto:
		mode = responseText
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" || strings.HasSuffix(mt, "+json") {
			// JSON that breaks the rule for values fails as below; text
			// that is not JSON at all is taken as text.
			if parsed, err = value.FromJSON(body); err == nil || errors.Is(err, value.ErrInvalid) {
				mode = responseJSON
			}
		}
	case responseJSON:
		if len(bytes.TrimSpace(body)) > 0 {
			if parsed, err = value.FromJSON(body); err != nil && !errors.Is(err, value.ErrInvalid) {
				return executor.NonRetryable(executor.NewError(executor.ErrTypeOutput,
					"HTTP %d response body is not JSON (%v): set response to text or bytes", resp.StatusCode, err))
			}
		}
	}
	switch mode {
	case responseJSON:
		if err == nil {
			err = value.Check("body", parsed, value.Limits{})
		}
		if err != nil {
			return executor.NonRetryable(executor.NewError(executor.ErrTypeOutput,
				"HTTP %d response %v; set response: text to get the body as text", resp.StatusCode, err))
		}
		out["body"] = parsed
	case responseText:
		if utf8.Valid(body) {
			out["body"] = string(body)
			break
		}
		fallthrough
	default:
		out["body_base64"] = base64.StdEncoding.EncodeToString(body)
	}
	return nil
}

// newRequest builds the request the task's input describes, and returns
// the response mode it asks for.
func newRequest(ctx context.Context, t *executor.Task) (*http.Request, string, error) {
	in, err := inputMap(t)
	if err != nil {
		return nil, "", err
	}
	mode, err := str(in, "response")
	if err != nil {
		return nil, "", err
	}
	switch mode {
	case responseAuto, responseJSON, responseText, responseBytes:
	default:
		return nil, "", invalid("response %q is not one of json, text, bytes", mode)
	}
	method, err := str(in, "method")
	if err != nil {
		return nil, "", err
	}
	if method = strings.ToUpper(method); method == "" {
		method = http.MethodGet
	} else if !methods[method] {
		return nil, "", invalid("method %q is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", method)
	}
	u, err := requestURL(in)
	if err != nil {
		return nil, "", err
	}
	headers, err := headerMap(in)
	if err != nil {
		return nil, "", err
	}
	for k, v := range headers {
		// What net/http refuses to send, refused here as the input it is.
		if i := strings.IndexFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }); i >= 0 {
			return nil, "", invalid("header %s must not contain control characters (byte 0x%02x at offset %d)", k, v[i], i)
		}
	}
	var body io.Reader
	contentType := ""
	if b := in["body"]; b != nil {
		data, isString, err := encode(b)
		if err != nil {
			return nil, "", err
		}
		body, contentType = bytes.NewReader(data), "application/json"
		if isString {
			contentType = "text/plain; charset=utf-8"
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, "", invalid("bad request: %v", err)
	}
	req.Header.Set("User-Agent", "weft")
	// The attempt's span is the request's parent.
	telemetry.Propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if t.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", t.IdempotencyKey)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
		}
		req.Header.Set(k, v)
	}
	return req, mode, nil
}

// requestURL returns the URL an http.request input names, with its query
// parameters.
func requestURL(in map[string]any) (*url.URL, error) {
	raw, err := str(in, "url")
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, invalid("url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalid("url %q does not parse: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, invalid("url %q must be an absolute http:// or https:// URL", raw)
	}
	query, err := stringMap(in, "query")
	if err != nil {
		return nil, err
	}
	if len(query) > 0 {
		q := u.Query()
		for k, v := range query {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	return u, nil
}

// transportError classifies a failure to get or read a response.
func transportError(ctx context.Context, err error) error {
	var ne net.Error
	typ := "network"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout():
		typ = "timeout"
	case errors.Is(err, context.Canceled):
		typ = "canceled"
	}
	return &executor.Error{Type: typ, Message: err.Error(), Err: err}
}

// statusError turns a 4xx or 5xx response into a typed error.
func statusError(resp *http.Response, body []byte) error {
	code := resp.StatusCode
	typ, ok := statusTypes[code]
	if !ok {
		typ = "client_error"
		if code >= 500 {
			typ = "server_error"
		}
	}
	msg := "HTTP " + resp.Status
	if ex := excerpt(body); ex != "" {
		msg += ": " + ex
	}
	err := &executor.Error{Type: typ, Message: msg}
	switch {
	case code == 429 || code == 503:
		if s, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && s > 0 {
			return executor.RetryAfter(time.Duration(s)*time.Second, err)
		}
		return err
	case code >= 500:
		return err
	}
	return executor.NonRetryable(err)
}

// excerpt returns at most 200 bytes of a body's text, as valid UTF-8.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
