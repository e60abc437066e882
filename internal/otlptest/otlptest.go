// Package otlptest receives OTLP/HTTP trace exports in tests: a real HTTP
// listener on loopback that decodes what it is sent and keeps the spans.
package otlptest

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is what the receiver keeps of an exported span: ids in hex,
// attribute values as strings, and the service.name of its resource.
type Span struct {
	Name, TraceID, SpanID, ParentID, Service string
	Attrs                                    map[string]string
	// Links are the trace and span ids ("<trace>/<span>") the span links to.
	Links []string
}

// Receiver accepts exports at POST /v1/traces.
type Receiver struct {
	// URL is the receiver's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it.
	URL   string
	mu    sync.Mutex
	spans []Span
}

// Start runs a Receiver until the test ends.
func Start(t testing.TB) *Receiver {
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.export))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) export(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.ResourceSpans {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, Span{Name: s.Name, TraceID: hex.EncodeToString(s.TraceId), SpanID: hex.EncodeToString(s.SpanId),
					ParentID: hex.EncodeToString(s.ParentSpanId), Service: service, Attrs: attrs(s.Attributes), Links: links(s.Links)})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// attrs renders string and integer attribute values as strings.
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	out := map[string]string{}
	for _, a := range kvs {
		v := a.Value.GetStringValue()
		if iv, ok := a.Value.GetValue().(*commonpb.AnyValue_IntValue); ok {
			v = strconv.FormatInt(iv.IntValue, 10)
		}
		out[a.Key] = v
	}
	return out
}

// Spans returns the spans received so far that match (all of them with a
// nil match).
func (r *Receiver) Spans(match func(Span) bool) []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Span
	for _, s := range r.spans {
		if match == nil || match(s) {
			out = append(out, s)
		}
	}
	return out
}

func links(ls []*tracepb.Span_Link) []string {
	var out []string
	for _, l := range ls {
		out = append(out, hex.EncodeToString(l.TraceId)+"/"+hex.EncodeToString(l.SpanId))
	}
	return out
}
