package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
//
// Starts go the same two ways. The API sends a new workflow's
// WorkflowStarted event as a core NATS request on weft.ds.<workflow>; an
// orchestrator decides what follows and, when that is a single step
// command, appends the start and the command as the workflow's first
// record (AppendStart), then replies. Otherwise, or when none answers in
// time, the API appends the start itself (AppendExternal) and the
// orchestrators consume it from the history stream. Both ways use the
// start's message id, so a start made both ways is recorded once.
//
// An orchestrator's records name it (header Weft-Orch), and an executor
// sends the results of a command it appended to it first, on
// weft.rdo.<orchestrator>.<workflow>: the orchestrator that decided a
// step has the workflow's state cached. When it is gone (no responders)
// or declines, the result goes to the queue group as above; when it does
// not answer in time, to the results stream.
const (
	directResultsPfx = "weft.rd."
	ownResultsPfx    = "weft.rdo."
	// ownerHeader names the orchestrator that appended a record.
	ownerHeader     = "Weft-Orch"
	directStartsPfx = "weft.ds."
	directQueue     = "weft-orchestrators"
	replyOK         = "+OK"
	replyRetry      = "-RETRY"
	// startIDHeader carries a direct start's message id.
	startIDHeader = "Weft-Start-Id"
)

// DirectSub is an orchestrator's subscription to inputs sent directly
// (results or starts).
type DirectSub struct{ sub *nats.Subscription }

// Stop ends the subscription; inputs already received still go through
// the callback (which may decline them), so no sender waits in vain.
func (r *DirectSub) Stop() { _ = r.sub.Drain() }

// DirectStart is a new workflow's start handed straight to an orchestrator.
type DirectStart struct {
	// Event is the WorkflowStarted event.
	Event events.Event
	// MsgID is the start's message id (AppendStart's msgID).
	MsgID string
}

// DirectStarts subscribes fn to starts the API sends directly. Each
// delivery (Source SourceStart) must be settled: Ack once its first
// record is appended, Nak to make the API append the start itself. fn
// runs on the subscription's goroutine and must not block.
func (s *Store) DirectStarts(fn func(*Delivery)) (*DirectSub, error) {
	return s.subscribeDirect(directStartsPfx, func(m *nats.Msg, d *Delivery) error {
		d.Source = SourceStart
		rec, err := events.Decode(m.Data)
		switch {
		case err != nil:
			return err
		case len(rec.Events) != 1 || rec.Events[0].WorkflowStarted == nil || rec.Events[0].WorkflowStarted.WorkflowID != d.WorkflowID:
			return fmt.Errorf("%w: a direct start on %s holds no WorkflowStarted of that workflow", events.ErrCorrupt, m.Subject)
		case m.Header.Get(startIDHeader) == "":
			return fmt.Errorf("%w: a direct start on %s has no %s", events.ErrCorrupt, m.Subject, startIDHeader)
		}
		d.Start = &DirectStart{Event: rec.Events[0], MsgID: m.Header.Get(startIDHeader)}
		return nil
	}, fn)
}

// StartDirect hands a new workflow's WorkflowStarted event (appended
// under msgID) to an orchestrator, which records it together with the
// first step command. It reports whether one did; when not (none answered
// within the store's ResultReplyWait, or the start needs more than one
// record), the caller appends the start with AppendExternal under the same
// msgID, which finds a start recorded meanwhile.
func (s *Store) StartDirect(ctx context.Context, wf, msgID string, ev events.Event) bool {
	if s.cfg.ResultReplyWait <= 0 || !ValidWorkflowID(wf) {
		return false
	}
	data, err := events.Encode(ev)
	if err != nil {
		return false
	}
	req := nats.NewMsg(directStartsPfx + wf)
	req.Data = data
	req.Header.Set(startIDHeader, msgID)
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ResultReplyWait)
	defer cancel()
	reply, err := s.nc.RequestMsgWithContext(rctx, req)
	return err == nil && string(reply.Data) == replyOK
}

// subscribeDirect subscribes the orchestrators' queue group to pfx+"*";
// decode fills each delivery from its message.
func (s *Store) subscribeDirect(pfx string, decode func(*nats.Msg, *Delivery) error, fn func(*Delivery)) (*DirectSub, error) {
	return s.subscribeDirectOn(pfx, directQueue, decode, fn)
}

// subscribeDirectOn subscribes to pfx+"*" in queue group queue ("": a
// plain subscription); the workflow id is the subject's last token.
func (s *Store) subscribeDirectOn(pfx, queue string, decode func(*nats.Msg, *Delivery) error, fn func(*Delivery)) (*DirectSub, error) {
	at := strings.Count(pfx, ".")
	sub, err := s.nc.QueueSubscribe(pfx+"*", queue, func(m *nats.Msg) {
		d := &Delivery{WorkflowID: token(m.Subject, at), NumDelivered: 1, Subject: m.Subject}
		d.reply = func(ok bool) {
			if ok {
				_ = m.Respond([]byte(replyOK))
			} else {
				_ = m.Respond([]byte(replyRetry))
			}
		}
		if err := decode(m, d); err != nil {
			d.Err = err
		}
		fn(d)
	})
	if err != nil {
		return nil, fmt.Errorf("eventstore: subscribe to %s*: %w", pfx, err)
	}
	// A slow orchestrator drops direct inputs rather than buffering without
	// bound; their senders time out and fall back to the streams.
	_ = sub.SetPendingLimits(4096, 64<<20)
	if err := s.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("eventstore: subscribe to %s*: %w", pfx, err)
	}
	return &DirectSub{sub: sub}, nil
}

// DirectResults subscribes fn to results executors send directly to any
// orchestrator (the queue group). Each delivery must be settled: Ack (or
// Term) tells the executor the outcome is recorded, Nak makes it publish
// the result to the results stream. fn runs on the subscription's
// goroutine and must not block.
func (s *Store) DirectResults(fn func(*Delivery)) (*DirectSub, error) {
	return s.subscribeDirect(directResultsPfx, decodeDirectResult, fn)
}

// OwnResults subscribes fn to the results executors send to the
// orchestrator named owner (the AppendOpts.Owner of the records it
// appends; letters, digits, '-' and '_'). Deliveries are settled as with
// DirectResults, except that Nak makes the executor ask the queue group.
func (s *Store) OwnResults(owner string, fn func(*Delivery)) (*DirectSub, error) {
	if !ValidWorkflowID(owner) {
		return nil, fmt.Errorf("eventstore: invalid orchestrator name %q", owner)
	}
	return s.subscribeDirectOn(ownResultsPfx+owner+".", "", decodeDirectResult, fn)
}

func decodeDirectResult(m *nats.Msg, d *Delivery) error {
	d.Source = SourceResults
	r, err := events.DecodeResult(m.Data)
	if err == nil && r.WorkflowID != d.WorkflowID {
		err = fmt.Errorf("%w: result for %s sent on %s", events.ErrCorrupt, r.WorkflowID, m.Subject)
	}
	if err != nil {
		return err
	}
	d.Result = &r
	return nil
}

// ReportResult hands a task attempt's outcome to the orchestrators: directly
// when one answers within the store's ResultReplyWait (first owner, the
// orchestrator that appended the command, if it is running; each request
// waits up to ResultReplyWait), else through the results stream. It
// returns nil once the outcome is in history or stored in the results
// stream, so the caller may ack its command.
func (s *Store) ReportResult(ctx context.Context, r events.Result, owner string) error {
	data, err := events.EncodeResult(r)
	if err != nil {
		return fmt.Errorf("eventstore: encode result: %w", err)
	}
	if s.cfg.ResultReplyWait > 0 {
		subjects := []string{directResultsPfx + r.WorkflowID}
		if owner != "" && ValidWorkflowID(owner) {
			subjects = append([]string{ownResultsPfx + owner + "." + r.WorkflowID}, subjects...)
		}
		for _, subj := range subjects {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.ResultReplyWait)
			reply, err := s.nc.RequestWithContext(rctx, subj, data)
			cancel()
			switch {
			case err == nil && string(reply.Data) == replyOK:
				return nil
			case errors.Is(err, nats.ErrMaxPayload):
				return natsErr(err)
			case err != nil && !errors.Is(err, nats.ErrNoResponders):
				// Unanswered in time: an orchestrator may be busy with it
				// still; the results stream is the safe way on.
				return s.publishResult(ctx, r, data)
			}
			// No such orchestrator any more, or it declined: ask the others.
		}
	}
	return s.publishResult(ctx, r, data)
}

// directDefaultWait is how long an executor waits for an orchestrator to
// record a result it sent directly before it uses the results stream.
const directDefaultWait = 2 * time.Second
