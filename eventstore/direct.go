package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/weftworks/weft/eventstore/events"
)

// Results reach an orchestrator one of two ways.
//
// Directly: the executor sends the result as a core NATS request on
// weft.rd.<workflow> to any orchestrator (one queue group). The
// orchestrator folds it, appends the outcome to the workflow's history and
// only then replies; the executor acks its step command after the reply,
// when the outcome is in history itself. This skips a stream write, a
// consumer delivery and an ack per step.
//
// Durably: when no orchestrator answers in time (none running, one busy or
// killed mid-way), the executor publishes the result to the results stream
// instead and acks its command once that is stored; an orchestrator
// consumes it from there. A result that arrives both ways is recorded once:
// the fold sees it is already in history.
const (
	directResultsPfx = "weft.rd."
	directQueue      = "weft-orchestrators"
	replyOK          = "+OK"
	replyRetry       = "-RETRY"
)

// DirectResults is an orchestrator's subscription to results sent directly.
type DirectResults struct{ sub *nats.Subscription }

// Stop ends the subscription; results already received still go through
// the callback (which may decline them), so no executor waits in vain.
func (r *DirectResults) Stop() { _ = r.sub.Drain() }

// DirectResults subscribes fn to results executors send directly. Each
// delivery must be settled: Ack (or Term) tells the executor the outcome is
// recorded, Nak makes it publish the result to the results stream. fn runs
// on the subscription's goroutine and must not block.
func (s *Store) DirectResults(fn func(*Delivery)) (*DirectResults, error) {
	sub, err := s.nc.QueueSubscribe(directResultsPfx+"*", directQueue, func(m *nats.Msg) {
		d := &Delivery{Source: SourceResults, WorkflowID: token(m.Subject, 2), NumDelivered: 1, Subject: m.Subject}
		d.reply = func(ok bool) {
			if ok {
				_ = m.Respond([]byte(replyOK))
			} else {
				_ = m.Respond([]byte(replyRetry))
			}
		}
		r, err := events.DecodeResult(m.Data)
		if err == nil && r.WorkflowID != d.WorkflowID {
			err = fmt.Errorf("%w: result for %s sent on %s", events.ErrCorrupt, r.WorkflowID, m.Subject)
		}
		if err != nil {
			d.Err = err
		} else {
			d.Result = &r
		}
		fn(d)
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: subscribe to direct results: %w", err)
	}
	// A slow orchestrator drops direct results rather than buffering without
	// bound; their executors time out and fall back to the results stream.
	_ = sub.SetPendingLimits(4096, 64<<20)
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("eventstore: subscribe to direct results: %w", err)
	}
	return &DirectResults{sub: sub}, nil
}

// ReportResult hands a task attempt's outcome to the orchestrators: directly
// when one answers within the store's ResultReplyWait, else through the
// results stream. It returns nil once the outcome is in history or stored
// in the results stream, so the caller may ack its command.
func (s *Store) ReportResult(ctx context.Context, r events.Result) error {
	data, err := events.EncodeResult(r)
	if err != nil {
		return fmt.Errorf("eventstore: encode result: %w", err)
	}
	if s.cfg.ResultReplyWait > 0 {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.ResultReplyWait)
		reply, err := s.nc.RequestWithContext(rctx, directResultsPfx+r.WorkflowID, data)
		cancel()
		switch {
		case err == nil && string(reply.Data) == replyOK:
			return nil
		case errors.Is(err, nats.ErrMaxPayload):
			return err
		}
	}
	return s.publishResult(ctx, r, data)
}

// directDefaultWait is how long an executor waits for an orchestrator to
// record a result it sent directly before it uses the results stream.
const directDefaultWait = 2 * time.Second
