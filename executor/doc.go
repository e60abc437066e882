// Package executor is the worker side of Weft and its Go SDK: register a
// Handler per task type, Start a Worker, and it runs the step commands
// Weft dispatches to that type.
//
// Guarantees: a handler runs at least once per step; Weft's own state
// changes happen exactly once; an outside effect is exactly-once when its
// receiver honours Task.IdempotencyKey, which is the same for every
// attempt and redelivery of a step (workflow id + step path).
//
// Retries belong to JetStream: a failed attempt is reported and its
// command nak'ed with the retry policy's delay; a worker that dies stops
// heartbeating and its command is redelivered to another worker after the
// task ack wait. Attempts are counted from history, not from deliveries:
// a delivery that ends without a recorded result (its worker stopped or
// died, history could not be read, the result could not be reported)
// runs the same attempt again and does not use up the policy's budget.
// Errors steer retries: a plain error is retried per the step's policy,
// NonRetryable fails the step at once, RetryAfter sets the next delay, and
// a panic is recovered into a failed attempt.
//
// A command of a paused definition (weft def pause) is given back
// unstarted at each delivery, with a delay of up to 5 s, and runs at its
// first delivery after the resume; holding uses no attempt. Each worker
// watches the pauses and keeps a copy in memory.
package executor
