// Package value holds the JSON-like values that flow through workflows
// (inputs, outputs, signal payloads) and converts them at the edges:
// protobuf Values at the API, JSON text, and whatever a decoder produced.
//
// A normalized value is one of: nil, bool, int64, float64, string, []any,
// map[string]any. Whole JSON numbers stay int64 so that CEL arithmetic on
// counts and indexes works; other numbers are float64.
//
// It sits beside eventstore/events, which stores these values in history
// records; the definition compiler, the deterministic core and the
// executor use it too, so it depends on nothing of Weft's.
package value
