package api

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
)

// Search attributes go out as a Struct: numbers, strings and bools as they
// are, a time as an RFC 3339 string in UTC; in a listing entry with who
// started the run, and in the history event that recorded them.
func TestSearchAttributesRender(t *testing.T) {
	due := time.Date(2025, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	attrs := map[string]any{"customer": "ann", "n": int64(3), "ratio": 0.5, "vip": true, "due": due}
	want := `{"customer":"ann","due":"2025-03-01T12:00:00.000000005Z","n":3,"ratio":0.5,"vip":true}`
	var w structpb.Struct
	if err := protojson.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	check := func(what string, s *structpb.Struct) {
		t.Helper()
		if !proto.Equal(s, &w) {
			b, _ := protojson.Marshal(s)
			t.Errorf("%s: %s\nwant %s", what, b, want)
		}
	}
	check("searchProto", searchProto(attrs))
	if searchProto(nil) != nil || searchProto(map[string]any{}) != nil {
		t.Error("no search attributes render as a Struct")
	}

	sum := summaryProto(eventstore.Summary{ID: "wf", Status: "RUNNING", Identity: "alice", Search: attrs})
	if sum.GetIdentity() != "alice" {
		t.Errorf("summary identity %q, want alice", sum.GetIdentity())
	}
	check("summary", sum.GetSearchAttributes())

	pe, err := eventProto(2, events.Event{Type: events.TypeSearchAttributesSet, Time: due,
		SearchAttributesSet: &events.SearchAttributesSet{Path: "a", Attributes: attrs}})
	if err != nil {
		t.Fatal(err)
	}
	if pe.GetStepPath() != "a" || pe.GetType() != "SearchAttributesSet" {
		t.Errorf("event at %q of type %q", pe.GetStepPath(), pe.GetType())
	}
	check("event", pe.GetData().GetStructValue().GetFields()["attributes"].GetStructValue())
}
