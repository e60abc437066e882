// Package trigger starts workflows from outside events: messages that
// producers publish on NATS subjects (captured in a JetStream stream, so
// none is lost while Weft is down), cron schedules (durable ticks, each
// handled once however many engines run) and webhooks (served by the API
// through Registry).
//
// All three fire a start one way, Fire: it evaluates the trigger's filter,
// id and input for the event, starts the run through package runs and
// says whether the event was refused (RefusedError: the engine records a
// trigger failure, a webhook answers 422, or 503 for a definition revision
// that is gone) or the start is worth retrying.
//
// Invariants:
//   - Exactly one workflow per event: the workflow id comes from the
//     trigger's id template, else from the event's identity (RunID:
//     "<definition>-<trigger key>-<identity>", the identity being the tick
//     time for cron, else a hash of the producer's Nats-Msg-Id or the
//     message's place in the trigger stream, or of the webhook's
//     Idempotency-Key), so redelivery and restarts find the workflow
//     already started. A webhook delivery without an Idempotency-Key has
//     no identity and starts a run of its own.
//   - Bad input never blocks: a malformed payload, a failing expression or
//     an unknown definition is recorded as a trigger failure and the event
//     acked.
//   - Trigger changes take effect without a restart: the registry follows
//     the definitions bucket.
package trigger
