// Package orchestrator runs Weft's decisions: it consumes what happens to
// workflows (API starts, signals and cancels; executors' results; fired
// timers), folds each into the workflow's cached state (package workflow)
// and appends the resulting events to the workflow's history. It is the
// engine and nothing else: starting and reading runs, and the cache of
// compiled definitions, belong to package runs, which the API, the trigger
// engine and the doctor use without importing this one.
//
// Invariants:
//   - History is the truth: the cache is dropped on any doubt and rebuilt
//     from the stream.
//   - Every append carries the workflow's expected last sequence; a
//     conflict means another writer won, and the input is decided again.
//   - An input is acked only after its consequences are appended; a crash
//     before that redelivers it, and the fold finds it already applied.
//   - Step commands are history records on task subjects, delivered to
//     executors by durable consumers over the history stream: there is no
//     second write, so no window between deciding and dispatching.
//   - Timers are scheduled (idempotently) before the record that needs
//     them is appended.
package orchestrator
