// Package definition parses and validates workflow definitions (YAML or
// JSON) and compiles them into immutable plans that the workflow core walks.
//
// It owns the definition language: its fields, their defaults, the duration
// syntax (Go durations plus days, e.g. "3d"), and templates, which are JSON
// values whose strings may hold CEL expressions written as ${ expr }.
//
// Invariants:
//   - The package is pure: no NATS, no network, no clock. Evaluation sees
//     only the Scope it is given.
//   - Parse reports every problem it finds at once, as an *Error.
//   - Every expression is compiled and type-checked by Parse, and every
//     reference to a step's output names an earlier step, so a running
//     workflow never meets a syntax error or a dangling reference.
//   - A Definition and its Templates are immutable once compiled and safe
//     for concurrent use; evaluation is bounded by DefaultCostLimit.
package definition
