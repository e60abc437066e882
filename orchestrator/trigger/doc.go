// Package trigger starts workflows from outside events: messages that
// producers publish on NATS subjects (captured in a JetStream stream, so
// none is lost while Weft is down), cron schedules (durable ticks, each
// handled once however many engines run) and webhooks (served by the API
// through Registry).
//
// Invariants:
//   - Exactly one workflow per event: the workflow id is derived from the
//     event's identity (the producer's Nats-Msg-Id, else its place in the
//     trigger stream; the tick time for cron; the Idempotency-Key for
//     webhooks) or from the trigger's id template, so redelivery and
//     restarts find the workflow already started.
//   - Bad input never blocks: a malformed payload, a failing expression or
//     an unknown definition is recorded as a trigger failure and the event
//     acked.
//   - Trigger changes take effect without a restart: the registry follows
//     the definitions bucket.
package trigger
