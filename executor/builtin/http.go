package builtin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/value"
)

var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

var statusTypes = map[int]string{
	400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
	409: "conflict", 410: "gone", 422: "unprocessable", 429: "rate_limited", 503: "unavailable",
}

func (c Config) http(ctx context.Context, t *executor.Task) (any, error) {
	req, err := newRequest(ctx, t)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
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
	headers := make(map[string]any, len(resp.Header))
	for k, v := range resp.Header {
		headers[k] = strings.Join(v, ", ")
	}
	var out any = string(body)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" || strings.HasSuffix(mt, "+json") {
		if v, err := value.FromJSON(body); err == nil {
			out = v
		}
	}
	return map[string]any{"status": int64(resp.StatusCode), "headers": headers, "body": out}, nil
}

// newRequest builds the request the task's input describes.
func newRequest(ctx context.Context, t *executor.Task) (*http.Request, error) {
	in, err := inputMap(t)
	if err != nil {
		return nil, err
	}
	method, err := str(in, "method")
	if err != nil {
		return nil, err
	}
	if method = strings.ToUpper(method); method == "" {
		method = http.MethodGet
	} else if !methods[method] {
		return nil, invalid("method %q is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS", method)
	}
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
	headers, err := headerMap(in)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	contentType := ""
	if b := in["body"]; b != nil {
		data, isString, err := encode(b)
		if err != nil {
			return nil, err
		}
		body, contentType = bytes.NewReader(data), "application/json"
		if isString {
			contentType = "text/plain; charset=utf-8"
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, invalid("bad request: %v", err)
	}
	req.Header.Set("User-Agent", "weft")
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
	return req, nil
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

// excerpt returns at most 200 bytes of a body's text.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}
