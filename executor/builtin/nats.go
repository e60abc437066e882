package builtin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"

	"github.com/weftworks/weft/executor"
	"github.com/weftworks/weft/internal/telemetry"
)

// flushTimeout bounds a flush when the attempt's context has no deadline.
const flushTimeout = 10 * time.Second

func (c Config) natsPublish(ctx context.Context, t *executor.Task) (any, error) {
	if c.NATS == nil {
		return nil, executor.NonRetryable(executor.NewError("not_configured", "nats.publish needs a NATS connection"))
	}
	msg, useJS, err := natsMsg(t, c.PublishAllow)
	if err != nil {
		return nil, err
	}
	traceHeaders(ctx, msg)
	if useJS {
		js, err := jetstream.New(c.NATS)
		if err != nil {
			return nil, natsError(err)
		}
		var opts []jetstream.PublishOpt
		if t.IdempotencyKey != "" {
			opts = append(opts, jetstream.WithMsgID(t.IdempotencyKey))
		}
		ack, err := c.jsPublish(ctx, js, msg, opts)
		if err != nil {
			return nil, err
		}
		return map[string]any{"stream": ack.Stream, "seq": int64(ack.Sequence), "duplicate": ack.Duplicate}, nil
	}
	before, mark := c.publishMark() // see refused
	if err := c.NATS.PublishMsg(msg); err != nil {
		return nil, natsError(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if err := c.NATS.FlushWithContext(ctx); err != nil {
		return nil, natsError(err)
	}
	if err := c.refused(msg.Subject, before, mark); err != nil {
		return nil, err
	}
	return map[string]any{"subject": msg.Subject}, nil
}

// refusalPoll is how often a JetStream publish that waits for its ack
// asks the server whether it refused the message.
const refusalPoll = 100 * time.Millisecond

// jsPublish publishes msg to JetStream and waits for its ack. A message
// the server refuses gets no ack, so while it waits it flushes the
// connection now and then: the refusal comes before the flush's answer
// (see refused), and ends the wait with "denied".
func (c Config) jsPublish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, opts []jetstream.PublishOpt) (*jetstream.PubAck, error) {
	before, mark := c.publishMark()
	type result struct {
		ack *jetstream.PubAck
		err error
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan result, 1)
	go func() {
		ack, err := js.PublishMsg(pctx, msg, opts...)
		done <- result{ack, err}
	}()
	tick := time.NewTicker(refusalPoll)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			if r.err != nil {
				if err := c.refused(msg.Subject, before, mark); err != nil {
					return nil, err
				}
				return nil, natsError(r.err)
			}
			return r.ack, nil
		case <-tick.C:
			fctx, fcancel := context.WithTimeout(pctx, flushTimeout)
			err := c.NATS.FlushWithContext(fctx)
			fcancel()
			if err != nil {
				continue // the publish's own wait says what went wrong
			}
			if err := c.refused(msg.Subject, before, mark); err != nil {
				return nil, err
			}
		}
	}
}

// publishMark returns where a publish's refusal is looked for from: the
// connection's last error, and the record of refusals. The record is read
// first: nats.go makes an error the last one before it hands it to the
// error handler, so an error the record holds by then is before, or one
// before it, and a last error newer than before is one the record gets
// after mark (refused waits for it). Read the other way round, an error
// coming in between was newer than before and not after mark: refused
// waited for it for refusalWait.
func (c Config) publishMark() (before error, mark uint64) {
	mark = c.refusals.mark()
	if testHookPublishMark != nil {
		testHookPublishMark()
	}
	return c.NATS.LastError(), mark
}

// testHookPublishMark, when set by a test, is called between the two
// reads of publishMark.
var testHookPublishMark func()

// refused returns the "denied" error of a publish to subject that the
// NATS server refused since the connection's last error was before and
// its record of refusals stood at mark, or nil. The server answers a
// publish its user may not make with an error of the connection's, sent
// before it answers a flush that follows: one naming the subject is this
// refusal, or another step's to the same subject, which is denied all the
// same. The connection keeps only its last error, which another subject's
// refusal may have taken the place of: the record of refusals keeps them
// all (see refusals).
func (c Config) refused(subject string, before error, mark uint64) error {
	last := c.NATS.LastError()
	if last == before {
		return nil
	}
	var wait error // the last error, when the error handler is given it
	if errors.Is(last, nats.ErrPermissionViolation) {
		wait = last
	}
	errs := append(c.refusals.since(mark, wait), last)
	for _, err := range errs {
		if refusedPublish(err, subject) {
			return executor.NonRetryable(&executor.Error{Type: "denied", Err: err, Message: fmt.Sprintf(
				"the NATS server refused the publish to %q: the executor's NATS user may not publish there (%v)", subject, err)})
		}
	}
	return nil
}

// natsMsg builds the message the task's input describes and reports
// whether it goes to JetStream; a reserved subject must match allow.
func natsMsg(t *executor.Task, allow []string) (*nats.Msg, bool, error) {
	in, err := inputMap(t)
	if err != nil {
		return nil, false, err
	}
	subject, err := str(in, "subject")
	if err != nil {
		return nil, false, err
	}
	if subject == "" {
		return nil, false, invalid("subject is required")
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return nil, false, invalid("subject %q must be dot-separated tokens without wildcards or whitespace", subject)
		}
	}
	if err := CheckPublishSubject(subject, allow); err != nil {
		return nil, false, invalid("%v", err)
	}
	useJS, ok := in["jetstream"].(bool)
	if v := in["jetstream"]; v != nil && !ok {
		return nil, false, invalid("jetstream must be true or false, not %T", v)
	}
	headers, err := headerMap(in)
	if err != nil {
		return nil, false, err
	}
	msg := nats.NewMsg(subject)
	if d, ok := in["data"]; ok {
		if msg.Data, _, err = encode(d); err != nil {
			return nil, false, err
		}
	}
	if t.IdempotencyKey != "" && !hasKey(headers, "Idempotency-Key") {
		msg.Header.Set("Idempotency-Key", t.IdempotencyKey)
	}
	for k, v := range headers {
		switch {
		case strings.EqualFold(k, "Nats-Rollup"):
			// A rollup purges the stream's other messages (all of them,
			// or the subject's): a step publishes, never deletes.
			return nil, false, invalid("header %s is refused: a rollup would purge the stream's other messages", k)
		case len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") && !strings.EqualFold(k, jetstream.MsgIDHeader):
			// JetStream's other controls (a schedule that publishes
			// later to another subject, a message's TTL, counters,
			// batches, expectations) are JetStream's API, which a step
			// does not reach.
			return nil, false, invalid("header %s is refused: headers starting Nats- are JetStream's controls, and a step may set only %s", k, jetstream.MsgIDHeader)
		}
		msg.Header.Set(k, v)
	}
	return msg, useJS, nil
}

// traceHeaders sets the attempt span's trace context (traceparent,
// tracestate) on msg, unless the step set those headers itself.
func traceHeaders(ctx context.Context, msg *nats.Msg) {
	c := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, c)
	for k, v := range c {
		if msg.Header.Get(k) == "" {
			msg.Header.Set(k, v)
		}
	}
}

func natsError(err error) error {
	return &executor.Error{Type: "nats", Message: err.Error(), Err: err}
}
