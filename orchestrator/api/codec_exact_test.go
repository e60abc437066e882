package api

import (
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A whole number beyond 2^53 that a float64 carries exactly (2^53+2,
// 1e20) is taken by the binary API (the web console's, Go clients'), and
// JSON.stringify writes it in plain digits (every integer below 1e21): the
// JSON codec refused it, "it would read back as 9.007199254740994e+15",
// the number sent. A number protojson reads as itself is not one it would
// round.
func TestAJSONNumberAFloat64CarriesExactlyIsTakenAsTheBinaryAPITakesIt(t *testing.T) {
	ctx, _, s := startGate(t, "gate-1", "go")
	for i, n := range []float64{9007199254740994, 1e20} {
		if _, err := s.StartWorkflow(ctx, connect.NewRequest(&weftv1.StartWorkflowRequest{Definition: "w",
			WorkflowId: "bin-" + string(rune('a'+i)), Input: structpb.NewNumberValue(n)})); err != nil {
			t.Fatalf("binary start with %v: %v", n, err)
		}
	}
	for _, body := range []string{`{"definition": "w", "input": 9007199254740994}`, `{"definition": "w", "input": 100000000000000000000}`} {
		var m weftv1.StartWorkflowRequest
		if err := (jsonCodec{"json"}).Unmarshal([]byte(body), &m); err != nil {
			t.Errorf("JSON %s: %v; the binary API takes the same number", body, err)
		}
	}
}
