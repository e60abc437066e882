// Package definition parses and validates workflow definitions (YAML or
// JSON) and compiles them into immutable plans that the workflow core walks.
//
// It owns the definition language: its fields, their defaults, the duration
// syntax (Go durations plus days, e.g. "3d"), templates, which are JSON
// values whose strings may hold CEL expressions written as ${ expr }, and
// expression fields (if, foreach, filter, until, set values), which hold one
// CEL expression, bare or as one ${ }.
//
// Steps nest: switch cases, foreach and repeat bodies, parallel branches,
// a wait's timeout_steps and catch clauses hold lists of steps. Step ids are
// unique across the whole definition. Expressions see input, steps, vars
// and workflow, and inside loops the loop variables: a foreach's item
// variable (as, default item) and index, and a repeat's iteration.
//
// Search attributes (search:, on the definition or on a step) name values
// a run is found by: the definition's are evaluated when the run starts, a
// step's each time it completes (they see its output); a value is a
// string, number, bool or timestamp.
//
// Triggers (triggers:) start workflows of a definition from outside: a NATS
// subject or wildcard (subject:), a schedule (cron:, in timezone:, default
// UTC) or a named webhook (webhook:). Their filter, id and input see only
// the event: event, headers and subject, and for cron tick; not input,
// steps, vars or workflow, which do not exist yet.
//
// Invariants:
//   - The package is pure: no NATS, no network, no clock. Evaluation sees
//     only the Scope it is given.
//   - Parse reports every problem it finds at once, as an *Error.
//   - Every expression is compiled and type-checked by Parse. Every
//     reference to a step's output names a step that exists and is not the
//     step itself, one containing it, one inside it (but a repeat's until
//     may read its body) or a later one in a list both share; every
//     vars.<name> is set by some set step. So a running workflow never
//     meets a syntax error or a dangling reference.
//   - A Definition and its Templates are immutable once compiled and safe
//     for concurrent use; evaluation is bounded in work by
//     DefaultCostLimit and in memory by MaxValueBytes and MaxEvalBytes
//     (breaches match ErrLimit).
package definition
