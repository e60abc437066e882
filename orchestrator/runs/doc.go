// Package runs is how Weft's parts start and read workflow runs without
// running the engine: it starts a run (Start: the WorkflowStarted event,
// recorded by an orchestrator with its first step command or appended for
// the orchestrators to consume), reads a run's history from its latest
// snapshot on (ReadFromSnapshot) and folds stored records into a state
// (Fold, FoldMessages), and loads compiled definitions (Definitions, one
// cache per node shared by its parts).
//
// The API, the trigger engine, the doctor and the orchestrator use it;
// the first three never import the orchestrator package.
//
// Invariants:
//   - A start is idempotent: the same workflow id and request id find the
//     run already started; another request's run is ErrAlreadyExists.
//   - A snapshot is only a shortcut: one that cannot be read is passed by
//     and the whole history folded.
//   - A history that stops folding early shows FAILED with error type
//     corrupt_history, as the orchestrator records it.
package runs
