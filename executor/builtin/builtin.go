package builtin

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore/value"
	"github.com/weftworks/weft/executor"
)

// Config holds what the built-in handlers need. The zero value works for
// every type except nats.publish.
type Config struct {
	// HTTPClient sends http requests. Default: a client with no overall
	// timeout, since the attempt's context bounds each request.
	HTTPClient *http.Client
	// NATS is the connection nats.publish uses. Default: none, and
	// nats.publish then fails with a non-retryable error.
	NATS *nats.Conn
	// Logger receives log records. Default: slog.Default() at call time.
	Logger *slog.Logger
	// MaxBodyBytes caps http response bodies; a larger success body fails
	// with "response_too_large". Default (zero or negative): 1 MiB.
	MaxBodyBytes int64
	// PublishAllow lists subject patterns (NATS wildcards allowed) that
	// nats.publish may send to although they are reserved for NATS or Weft
	// (see CheckPublishSubject). Default: none.
	PublishAllow []string
	// HTTPDeny lists address ranges (see ParseHTTPDeny) the http task must
	// not connect to. The check is on the address being dialed, so it
	// holds for names that resolve to a denied address and for redirects;
	// a denied connection fails the step with "denied". With HTTPDeny the
	// http task uses no proxy (HTTP_PROXY and the like are ignored), and
	// HTTPClient's Transport must be nil or an *http.Transport, whose copy
	// gets a checking dialer; another Transport fails every http step with
	// "not_configured". Default: none.
	HTTPDeny []netip.Prefix

	httpErr  error     // why the http task cannot run (a Transport HTTPDeny cannot wrap)
	refusals *refusals // NATS's errors, for nats.publish to find its refusal in
}

// Handlers returns the built-in handlers keyed by task type: "echo",
// "log", "http" and "nats.publish".
func Handlers(cfg Config) map[string]executor.Handler {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	cfg.HTTPClient = boundHeaders(cfg.HTTPClient)
	if len(cfg.HTTPDeny) > 0 {
		cfg.HTTPClient, cfg.httpErr = denyClient(cfg.HTTPClient, cfg.HTTPDeny)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.NATS != nil {
		cfg.refusals = watchRefusals(cfg.NATS)
	}
	return map[string]executor.Handler{
		"echo":         echo,
		"log":          cfg.log,
		"http":         cfg.http,
		"nats.publish": cfg.natsPublish,
	}
}

func echo(_ context.Context, t *executor.Task) (any, error) { return t.Input, nil }

var levels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

func (c Config) log(ctx context.Context, t *executor.Task) (any, error) {
	logger := c.Logger
	if logger == nil {
		logger = slog.Default()
	}
	attrs := []slog.Attr{
		slog.String("workflow_id", t.WorkflowID), slog.String("step", t.Path), slog.Int("attempt", t.Attempt),
	}
	in, err := value.Normalize(t.Input)
	if err != nil {
		in = t.Input
	}
	m, _ := in.(map[string]any)
	msg, structured := m["message"].(string)
	for k := range m {
		if k != "message" && k != "level" && k != "fields" {
			structured = false
		}
	}
	if !structured {
		logger.LogAttrs(ctx, slog.LevelInfo, "log", append(attrs, slog.Any("value", in))...)
		return nil, nil
	}
	level := slog.LevelInfo
	if l, ok := m["level"]; ok && l != nil {
		s, _ := l.(string)
		var known bool
		if level, known = levels[strings.ToLower(s)]; !known {
			return nil, invalid("level must be debug, info, warn or error, not %v", l)
		}
	}
	if f, ok := m["fields"]; ok && f != nil {
		fields, ok := f.(map[string]any)
		if !ok {
			return nil, invalid("fields must be a map, not %T", f)
		}
		// Under their own key: a field never passes for the record's own
		// workflow_id, step or level.
		var group []any
		for _, k := range value.SortedKeys(fields) {
			group = append(group, slog.Any(k, fields[k]))
		}
		attrs = append(attrs, slog.Group("fields", group...))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
	return nil, nil
}

// invalid returns a non-retryable "invalid_input" error.
func invalid(format string, args ...any) error {
	return executor.NonRetryable(executor.NewError("invalid_input", format, args...))
}

// inputMap returns the task's input as a normalized map.
func inputMap(t *executor.Task) (map[string]any, error) {
	in, err := value.Normalize(t.Input)
	if err != nil {
		return nil, invalid("%s input: %v", t.Type, err)
	}
	m, ok := in.(map[string]any)
	if !ok {
		return nil, invalid("%s input must be a map, not %T", t.Type, in)
	}
	return m, nil
}

// stringMap reads m[key] as an optional map of strings.
func stringMap(m map[string]any, key string) (map[string]string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return nil, nil
	}
	raw, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("%s must be a map of strings, not %T", key, v)
	}
	out := make(map[string]string, len(raw))
	for k, e := range raw {
		s, ok := e.(string)
		if !ok {
			return nil, invalid("%s.%s must be a string, not %T (convert it with string())", key, k, e)
		}
		out[k] = s
	}
	return out, nil
}

// headerMap reads m["headers"] and checks names and values are valid header fields.
func headerMap(m map[string]any) (map[string]string, error) {
	h, err := stringMap(m, "headers")
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		if k == "" || strings.IndexFunc(k, func(r rune) bool {
			return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
		}) >= 0 {
			return nil, invalid("header name %q is not a valid token", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, invalid("header %s must not contain CR, LF or NUL", k)
		}
	}
	return h, nil
}

// hasKey reports whether h has key, ignoring case.
func hasKey(h map[string]string, key string) bool {
	for k := range h {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// encode returns a string as its bytes and any other value as JSON.
func encode(v any) ([]byte, bool, error) {
	if s, ok := v.(string); ok {
		return []byte(s), true, nil
	}
	b, err := value.ToJSON(v)
	if err != nil {
		return nil, false, invalid("cannot encode as JSON: %v", err)
	}
	return b, false, nil
}

// str reads m[key] as an optional string.
func str(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("%s must be a string, not %T", key, v)
	}
	return s, nil
}

// MaxResponseHeaderBytes bounds an http step's response headers, as
// Config.MaxBodyBytes bounds its body.
const MaxResponseHeaderBytes = 256 << 10

// boundHeaders returns c with its transport's response headers bounded by
// MaxResponseHeaderBytes, unless it sets a bound of its own (or its
// transport is not an *http.Transport).
func boundHeaders(c *http.Client) *http.Client {
	var base *http.Transport
	switch t := c.Transport.(type) {
	case nil:
		base, _ = http.DefaultTransport.(*http.Transport)
	case *http.Transport:
		base = t
	}
	if base == nil || base.MaxResponseHeaderBytes > 0 {
		return c
	}
	t := base.Clone()
	t.MaxResponseHeaderBytes = MaxResponseHeaderBytes
	out := *c
	out.Transport = t
	return &out
}
