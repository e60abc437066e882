// Package workflow is Weft's deterministic core: it folds a workflow's
// history events into a State and decides, from that State and the
// workflow's compiled definition, which events come next. It also defines
// the error types Weft assigns (ErrType*), which the orchestrator and the
// executor use from here.
//
// Invariants:
//   - Pure: no NATS, no network, no clock, no randomness. Time comes from
//     the events (State.Now), so replaying a history decides the same.
//   - Decide only looks at State: any prefix of its decisions that was
//     appended, followed by a crash, is completed by deciding again.
//   - A decided history replays to nothing new: Decide on the folded state
//     of a history that already holds its decisions returns no events
//     beyond what still waits on the outside.
//   - Steps are addressed by path ("approve", later "items[3].charge"), so
//     nested control flow fits the same State.
package workflow
