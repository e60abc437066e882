package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"pgregory.net/rapid"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/eventstore/value"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/internal/natstest"
)

// drawValue draws a value of any shape, good or bad: scalars, strings that
// may not be UTF-8, non-finite numbers, maps with odd keys, and chains of
// lists and maps around the value's depth limits.
func drawValue(t *rapid.T, depth int) any {
	kinds := []string{"null", "bool", "int", "float", "special", "text", "bytes", "list", "map", "chain"}
	if depth > 4 {
		kinds = kinds[:7]
	}
	switch rapid.SampledFrom(kinds).Draw(t, "kind") {
	case "null":
		return nil
	case "bool":
		return rapid.Bool().Draw(t, "bool")
	case "int":
		return rapid.Int64().Draw(t, "int")
	case "float":
		return rapid.Float64().Draw(t, "float")
	case "special":
		return rapid.SampledFrom([]float64{math.NaN(), math.Inf(1), math.Inf(-1), -0.0, 1 << 53, 1e300}).Draw(t, "special")
	case "text":
		return rapid.String().Draw(t, "text")
	case "bytes":
		return string(rapid.SliceOfN(rapid.Byte(), 0, 6).Draw(t, "bytes"))
	case "list":
		n := rapid.IntRange(0, 4).Draw(t, "len")
		l := make([]any, n)
		for i := range l {
			l[i] = drawValue(t, depth+1)
		}
		return l
	case "map":
		n := rapid.IntRange(0, 4).Draw(t, "len")
		m := make(map[string]any, n)
		for range n {
			k := rapid.OneOf(rapid.String(), rapid.StringMatching(`[a-z_]{1,8}`),
				rapid.Custom(func(t *rapid.T) string { return string(rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "key")) })).Draw(t, "key")
			m[k] = drawValue(t, depth+1)
		}
		return m
	}
	// A chain of lists and maps around a value, as deep as the limits.
	levels := rapid.OneOf(rapid.IntRange(0, 300), rapid.IntRange(value.MaxDepth-3, value.MaxDepth+3)).Draw(t, "levels")
	v := drawValue(t, 99)
	for i := range levels {
		if rapid.Bool().Draw(t, fmt.Sprintf("list%d", i)) {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	return v
}

// rawProto builds v's protobuf Value as a client could send it, without
// the checks structpb.NewValue makes (a gRPC client may send NaN, and a
// client in another language strings that are not UTF-8).
func rawProto(v any) *structpb.Value {
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue()
	case bool:
		return structpb.NewBoolValue(x)
	case int64:
		return structpb.NewNumberValue(float64(x))
	case float64:
		return structpb.NewNumberValue(x)
	case string:
		return &structpb.Value{Kind: &structpb.Value_StringValue{StringValue: x}}
	case []any:
		l := &structpb.ListValue{}
		for _, e := range x {
			l.Values = append(l.Values, rawProto(e))
		}
		return structpb.NewListValue(l)
	case map[string]any:
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, e := range x {
			s.Fields[k] = rawProto(e)
		}
		return structpb.NewStructValue(s)
	}
	panic(fmt.Sprintf("rawProto: %T", v))
}

// sameValue reports whether got (read back) is want (accepted): numbers
// compare as the float64 the API carries them as.
func sameValue(want, got any) bool {
	switch w := want.(type) {
	case int64, float64:
		return num(w) == num(got)
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(w[i], g[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, e := range w {
			if ge, ok := g[k]; !ok || !sameValue(e, ge) {
				return false
			}
		}
		return true
	}
	return want == got
}

func num(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return math.NaN()
}

// roundTrip is the property: for any value, either the rule accepts it and
// it reads back through every event that carries it and through the API
// (GetWorkflow and GetHistory, in both wire encodings), or the rule refuses
// it and so does the API, storing nothing.
type roundTrip struct {
	s   *Server
	ids atomic.Int64
}

func newRoundTrip(tb testing.TB) *roundTrip {
	ns := natstest.Start(tb)
	store, err := eventstore.Open(context.Background(), ns.Connect(tb), eventstore.Config{})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(store, Config{})
	if err != nil {
		tb.Fatal(err)
	}
	_, err = s.PutDefinition(context.Background(), connect.NewRequest(&weftv1.PutDefinitionRequest{
		Source: "name: d\nsteps: [ { id: a, wait: { signal: go } } ]"}))
	if err != nil {
		tb.Fatal(err)
	}
	return &roundTrip{s: s}
}

func (r *roundTrip) check(t *rapid.T) {
	v := drawValue(t, 0)
	n, err := value.Normalize(v)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	if value.Check("value", n, value.Limits{}) == nil {
		throughEvents(t, n)
	}
	r.throughAPI(t, rawProto(v))
}

// throughAPI starts a workflow with input pv: the API refuses it when the
// rule refuses the value it converts pv to, else the value reads back.
func (r *roundTrip) throughAPI(t *rapid.T, pv *structpb.Value) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := fmt.Sprintf("v%d", r.ids.Add(1))
	_, startErr := r.s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "d", WorkflowId: id, Input: pv}))
	// What the API takes in: the value as converted from the request.
	in, err := value.FromProto(pv)
	if err != nil {
		t.Fatalf("FromProto: %v", err)
	}
	if checkErr := value.Check("input", in, value.Limits{}); checkErr != nil {
		if connect.CodeOf(startErr) != connect.CodeInvalidArgument || !strings.Contains(startErr.Error(), checkErr.Error()) {
			t.Fatalf("the rule refuses the input (%v); the API answered %v", checkErr, startErr)
		}
		if _, err := r.s.store.First(ctx, id); !errors.Is(err, eventstore.ErrNotFound) {
			t.Fatalf("a refused start stored something: %v", err)
		}
		return
	}
	if startErr != nil {
		t.Fatalf("the rule accepts the input; the API refused it: %v", startErr)
	}
	got, err := r.s.GetWorkflow(ctx, connect.NewRequest(&weftv1.GetWorkflowRequest{WorkflowId: id}))
	if err != nil {
		t.Fatalf("GetWorkflow: %v", err)
	}
	wire(t, got.Msg)
	back, err := value.FromProto(got.Msg.Workflow.Input)
	if err != nil || !sameValue(in, back) {
		t.Fatalf("GetWorkflow input %#v (%v), want %#v", back, err, in)
	}
	h, err := r.s.GetHistory(ctx, connect.NewRequest(&weftv1.GetHistoryRequest{WorkflowId: id}))
	if err != nil {
		t.Fatalf("GetHistory: %v", err)
	}
	wire(t, h.Msg)
	if back, _ := value.FromProto(h.Msg.Events[0].Data.GetStructValue().GetFields()["input"]); !sameValue(in, back) {
		t.Fatalf("GetHistory input %#v, want %#v", back, in)
	}
}

// throughEvents records in, a value the rule accepts, in every event that
// carries a value: each encodes, decodes, renders for the API and goes out
// in both wire encodings, with in read back unchanged.
func throughEvents(t *rapid.T, in any) {
	at := time.Now().UTC()
	for _, ev := range []events.Event{
		{Type: events.TypeSignalReceived, SignalReceived: &events.SignalReceived{Name: "go", Payload: in}},
		{Type: events.TypeStepScheduled, StepScheduled: &events.StepScheduled{Path: "a", Task: "t", Input: in}},
		{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Path: "a", Output: in, Vars: map[string]any{"x": in}}},
		{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: "a", Kind: "foreach", Items: []any{in}}},
		{Type: events.TypeChildStarted, ChildStarted: &events.ChildStarted{Path: "a", WorkflowID: "c", Input: in}},
		{Type: events.TypeWorkflowCompleted, WorkflowCompleted: &events.WorkflowCompleted{Output: in}},
	} {
		ev.Time = at
		b, err := events.Encode(ev)
		if err != nil {
			t.Fatalf("%s: Encode: %v", ev.Type, err)
		}
		rec, err := events.Decode(b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", ev.Type, err)
		}
		pe, err := eventProto(1, rec.Events[0])
		if err != nil {
			t.Fatalf("%s: render: %v", ev.Type, err)
		}
		wire(t, pe)
		data, _ := value.FromProto(pe.Data)
		m := data.(map[string]any)
		var back any
		switch ev.Type {
		case events.TypeSignalReceived:
			back = m["payload"]
		case events.TypeStepCompleted:
			if !sameValue(map[string]any{"x": in}, m["vars"]) {
				t.Fatalf("vars %#v", m["vars"])
			}
			back = m["output"]
		case events.TypeStepStarted:
			back = m["items"].([]any)[0]
		case events.TypeWorkflowCompleted:
			back = m["output"]
		default:
			back = m["input"]
		}
		if !sameValue(in, back) {
			t.Fatalf("%s: read back %#v, want %#v", ev.Type, back, in)
		}
	}
}

// wire checks that m goes out in both of the API's encodings.
func wire(t *rapid.T, m proto.Message) {
	if _, err := proto.Marshal(m); err != nil {
		t.Fatalf("proto: %v", err)
	}
	if _, err := protojson.Marshal(m); err != nil {
		t.Fatalf("protojson: %v", err)
	}
}

func TestValueRoundTripProperty(t *testing.T) {
	r := newRoundTrip(t)
	rapid.Check(t, r.check)
}

// FuzzValueRoundTrip runs the round-trip property on values drawn from the
// fuzzer's bytes.
func FuzzValueRoundTrip(f *testing.F) {
	for _, seed := range [][]byte{nil, {1}, {7, 0, 0, 0, 0, 0, 0, 0, 9}, []byte("\x09\x00\x00\x00\x00\x00\x00\x00\xff\xff")} {
		f.Add(seed)
	}
	r := newRoundTrip(f)
	f.Fuzz(rapid.MakeFuzz(r.check))
}

// A value as deep as Weft records (value.MaxStoredDepth) reads back from
// the events that wrap it most.
func TestStoredDepthReadsBack(t *testing.T) {
	var v any = "leaf"
	for i := range value.MaxStoredDepth {
		if i%2 == 0 {
			v = []any{v}
		} else {
			v = map[string]any{"k": v}
		}
	}
	for _, ev := range []events.Event{
		{Type: events.TypeStepCompleted, StepCompleted: &events.StepCompleted{Path: "a", Output: v, Vars: map[string]any{"x": v}}},
		{Type: events.TypeStepStarted, StepStarted: &events.StepStarted{Path: "a", Kind: "foreach", Items: []any{v}}},
	} {
		b, err := events.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := events.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", ev.Type, err)
		}
		pe, err := eventProto(1, rec.Events[0])
		if err != nil {
			t.Fatal(err)
		}
		b, err = proto.Marshal(pe)
		if err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(b, new(weftv1.HistoryEvent)); err != nil {
			t.Fatal(err)
		}
		if _, err := protojson.Marshal(pe); err != nil {
			t.Fatal(err)
		}
	}
}
