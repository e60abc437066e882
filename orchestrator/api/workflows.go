package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/orchestrator/definition"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// maxHistoryPageBytes bounds a page of history in bytes as well: events
// carry inputs, outputs and payloads of up to MaxPayloadBytes each, and a
// thousand of them would be an answer of a gigabyte, held in memory and
// refused by gRPC clients (4 MiB by default). A page holds one event at
// least, whatever its size.
const maxHistoryPageBytes = 3 << 20

// StartWorkflow appends WorkflowStarted to a new history. A start with the
// id and request id of an existing run returns it with started=false.
func (s *Server) StartWorkflow(ctx context.Context, req *connect.Request[weftv1.StartWorkflowRequest]) (*connect.Response[weftv1.StartWorkflowResponse], error) {
	m := req.Msg
	if m.Definition == "" {
		return nil, errorf(connect.CodeInvalidArgument, "definition is required: name a definition put with PutDefinition")
	}
	if m.Revision < 0 {
		return nil, errorf(connect.CodeInvalidArgument, "revision must be 0 (latest) or positive, got %d", m.Revision)
	}
	if m.WorkflowId != "" {
		if err := checkWorkflowID(m.WorkflowId); err != nil {
			return nil, err
		}
	}
	if err := checkLen("request_id", m.RequestId, maxKey); err != nil {
		return nil, err
	}
	if err := s.checkPayload("input", m.Input); err != nil {
		return nil, err
	}
	input, err := checkValue("input", m.Input)
	if err != nil {
		return nil, err
	}
	start := runs.StartRequest{Definition: m.Definition, Revision: int(m.Revision),
		Input: input, WorkflowID: m.WorkflowId, RequestID: m.RequestId, Time: s.cfg.Now(), Identity: identity(ctx), SameInput: true}
	start.WorkflowID = start.ID()
	// While the follower runs, the new run's state is folded from its
	// first record as the follower passes it on: the await and the polls
	// that follow a start read nothing from the stream.
	ep := s.interest.running.Load()
	expected := ep != 0 && s.states.expect(start.WorkflowID, ep)
	res, err := runs.Start(ctx, s.store, s.defs, start)
	if expected && (err != nil || !res.Started) {
		s.states.unexpect(start.WorkflowID)
	}
	var od *runs.OtherDefinitionError
	var oi *runs.OtherInputError
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		if m.Revision > 0 {
			return nil, errorf(connect.CodeNotFound, "definition %q has no revision %d", m.Definition, m.Revision)
		}
		return nil, errorf(connect.CodeNotFound, "definition %q not found: put it first (weft def apply -f FILE, or PutDefinition)", m.Definition)
	case errors.As(err, &od):
		return nil, errorf(connect.CodeAlreadyExists, "workflow %q already exists and is a run of definition %q, not of %q; choose another workflow_id", m.WorkflowId, od.Definition, od.Want)
	case errors.As(err, &oi):
		return nil, errorf(connect.CodeAlreadyExists, "request_id %q started workflow %q with another input; a request id names one start: give this one a request_id of its own", oi.RequestID, oi.WorkflowID)
	case errors.Is(err, runs.ErrAlreadyExists):
		return nil, errorf(connect.CodeAlreadyExists, "workflow %q already exists (started by another request); choose another workflow_id or reuse its request_id", m.WorkflowId)
	case err != nil:
		return nil, toConnect(err)
	}
	if res.Started {
		s.metrics.workflows.Started(m.Definition)
	}
	resp := &weftv1.StartWorkflowResponse{WorkflowId: res.WorkflowID, Started: res.Started, Revision: int32(res.Revision)}
	return connect.NewResponse(resp), nil
}

// GetWorkflow returns the workflow's current state, holding everything
// stored before the call: a cached fold kept up to date by the follower,
// or brought up to date with what was appended since it was last read.
func (s *Server) GetWorkflow(ctx context.Context, req *connect.Request[weftv1.GetWorkflowRequest]) (*connect.Response[weftv1.GetWorkflowResponse], error) {
	release, err := s.runReads.take(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	var w *weftv1.Workflow
	err = s.withCurrentState(ctx, req.Msg.WorkflowId, func(v *stateView) error {
		var err error
		w, err = s.workflowProto(ctx, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.GetWorkflowResponse{Workflow: w}), nil
}

// GetHistory returns a page of the workflow's events, oldest first. A page
// token names where the page starts (a record's stream sequence, the
// events of that record already sent, and the number of the first event),
// so a page reads just its own records.
func (s *Server) GetHistory(ctx context.Context, req *connect.Request[weftv1.GetHistoryRequest]) (*connect.Response[weftv1.GetHistoryResponse], error) {
	release, err := s.runReads.take(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	m := req.Msg
	if err := checkWorkflowID(m.WorkflowId); err != nil {
		return nil, err
	}
	size, err := pageSize(m.PageSize)
	if err != nil {
		return nil, err
	}
	at, err := historyToken(m.PageToken)
	if err != nil {
		return nil, err
	}
	if at.run != 0 {
		// The token names its run by when its first record was stored: a
		// run started under the id since, in this stream or in one made
		// again (whose sequences start over), is not it.
		first, err := s.store.First(ctx, m.WorkflowId)
		switch {
		case errors.Is(err, eventstore.ErrNotFound):
			return nil, errorf(connect.CodeNotFound, "workflow %q not found", m.WorkflowId)
		case err != nil:
			return nil, toConnect(err)
		case first.Time.UnixNano() != at.run:
			return nil, tokenOfGone(m.PageToken, m.WorkflowId)
		}
	}
	resp := &weftv1.GetHistoryResponse{}
	next, n := at, at.n
	var sendErr error
	var gone bool
	// cut: the page ended before event next.skip of record next.seq.
	cut, bytes := false, 0
	last, err := s.store.ReadFrom(ctx, m.WorkflowId, at.seq, func(msg eventstore.Message) bool {
		if m.PageToken != "" && msg.Seq != at.seq && msg.StartsRun() {
			// The run the token was given for was deleted, and its id
			// names a run started since.
			gone = true
			return false
		}
		if m.PageToken == "" && next.run == 0 {
			next.run = msg.Time.UnixNano()
		}
		evs, _ := eventsOf([]eventstore.Message{msg})
		skip := 0
		if msg.Seq == at.seq {
			skip = at.skip
		}
		for i := skip; i < len(evs); i++ {
			if len(resp.Events) == size {
				next, cut = historyPos{seq: msg.Seq, skip: i, n: n, run: next.run}, true
				return false
			}
			pe, err := eventProto(n, evs[i])
			if err != nil {
				sendErr = err
				return false
			}
			b := proto.Size(pe)
			if len(resp.Events) > 0 && bytes+b > maxHistoryPageBytes {
				next, cut = historyPos{seq: msg.Seq, skip: i, n: n, run: next.run}, true
				return false
			}
			bytes += b
			resp.Events = append(resp.Events, pe)
			n++
		}
		next = historyPos{seq: msg.Seq + 1, n: n, run: next.run}
		return len(resp.Events) < size
	})
	switch {
	case errors.Is(err, eventstore.ErrNotFound):
		return nil, errorf(connect.CodeNotFound, "workflow %q not found", m.WorkflowId)
	case err != nil:
		return nil, toConnect(err)
	case sendErr != nil:
		return nil, toConnect(sendErr)
	case gone:
		return nil, tokenOfGone(m.PageToken, m.WorkflowId)
	}
	if cut || next.seq <= last && len(resp.Events) == size {
		resp.NextPageToken = next.String()
	}
	return connect.NewResponse(resp), nil
}

// tokenOfGone is the error for a page token of a run that wf does not
// name now: another workflow's, or a run of wf deleted since.
func tokenOfGone(tok, wf string) error {
	return errorf(connect.CodeNotFound, "page_token %q is not of the run workflow %q names now (a token of another workflow, or of a run of the id deleted since): ask for the first page", tok, wf)
}

// historyPos is where a page of history starts: the record at stream
// sequence seq (or the workflow's first after it), past its first skip
// events; n is the history number of the first event returned. run names
// the run: when its first record was stored, in Unix nanoseconds (0 in a
// token of an earlier version, which names none).
type historyPos struct {
	seq  uint64
	skip int
	n    uint64
	run  int64
}

func (p historyPos) String() string {
	if p.run == 0 {
		return fmt.Sprintf("%d.%d.%d", p.seq, p.skip, p.n)
	}
	return fmt.Sprintf("%d.%d.%d.%d", p.seq, p.skip, p.n, p.run)
}

func historyToken(tok string) (historyPos, error) {
	if tok == "" {
		return historyPos{seq: 1, n: 1}, nil
	}
	var p historyPos
	parts := strings.Split(tok, ".")
	var err1, err2, err3, err4 error
	if len(parts) == 3 || len(parts) == 4 {
		p.seq, err1 = strconv.ParseUint(parts[0], 10, 64)
		var skip uint64
		skip, err2 = strconv.ParseUint(parts[1], 10, 31)
		p.skip = int(skip)
		p.n, err3 = strconv.ParseUint(parts[2], 10, 64)
	}
	if len(parts) == 4 {
		p.run, err4 = strconv.ParseInt(parts[3], 10, 64)
		if err4 == nil && p.run == 0 {
			err4 = errors.New("no run")
		}
	}
	if len(parts) != 3 && len(parts) != 4 || errors.Join(err1, err2, err3, err4) != nil || p.seq == 0 || p.n == 0 {
		return historyPos{}, errorf(connect.CodeInvalidArgument, "page_token %q is invalid: pass the next_page_token of the previous page", tok)
	}
	return p, nil
}

// WatchWorkflow streams the workflow's events from the start until it
// closes: what is stored when the call comes, then what is appended, read
// each time the API's one follower of the histories sees the workflow's
// history grow (no JetStream consumer per call).
func (s *Server) WatchWorkflow(ctx context.Context, req *connect.Request[weftv1.WatchWorkflowRequest], stream *connect.ServerStream[weftv1.WatchWorkflowResponse]) error {
	wf := req.Msg.WorkflowId
	if err := checkWorkflowID(wf); err != nil {
		return err
	}
	reg := s.interest.add(wf, false)
	defer s.interest.remove(reg)
	// A history stream made again while it is watched has none of the
	// records it was sent, unless the run's first record is the one sent
	// (the watch began on the new stream): it ends, as for a run deleted.
	replacements := s.interest.replacements.Load()
	var first eventstore.Message // the first record sent
	var after, n uint64
	var behind time.Duration // the wait before the next read of a read behind the follower
	// closed: the events sent close the run (a close not followed by a
	// redrive; a failed run's late results, or a cancel or admission that
	// raced the close, may come after it and leave it closed).
	closed := false
	for {
		if r := s.interest.replacements.Load(); r != replacements {
			if after > 0 {
				now, err := s.store.First(ctx, wf)
				if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
					return toConnect(err)
				}
				if err != nil || now.Seq != first.Seq || !now.Time.Equal(first.Time) {
					return errorf(connect.CodeNotFound, "workflow %q: the history stream was made again while it was watched", wf)
				}
			}
			replacements = r
			// The records woken for were of the old stream.
			reg.need.Store(0)
		}
		// send sends a record's events, the record after the last sent.
		send := func(msg eventstore.Message) error {
			if after > 0 && msg.StartsRun() {
				return errorf(connect.CodeNotFound, "workflow %q was deleted while it was watched (its id names a run started since)", wf)
			}
			if msg.Err != nil {
				return connect.NewError(connect.CodeDataLoss, msg.Err)
			}
			if after == 0 {
				first = msg
			}
			for _, ev := range msg.Record.Events {
				n++
				pe, err := eventProto(n, ev)
				if err != nil {
					return toConnect(err)
				}
				if err := stream.Send(&weftv1.WatchWorkflowResponse{Event: pe}); err != nil {
					return err
				}
				switch {
				case ev.Terminal():
					closed = true
				case ev.Type == events.TypeWorkflowRetried:
					closed = false
				}
			}
			after = msg.Seq
			return nil
		}
		// What the read must reach: the last record of wf the follower
		// passed on, as its table remembers it or as the wakes of this
		// call said (the table forgets a run a minute after its last
		// record, or sooner when records come faster than it keeps).
		followed := max(s.interest.followed.of(wf), reg.need.Load())
		msgs, err := s.store.ReadLiveWithin(ctx, wf, after, watchReadBytes)
		if errors.Is(err, eventstore.ErrTooLong) {
			// More than a watch holds at once (a long history, a caller
			// that reads slowly): read and sent a part at a time.
			var sendErr error
			_, err = s.store.ReadFrom(ctx, wf, after+1, func(msg eventstore.Message) bool {
				sendErr = send(msg)
				return sendErr == nil
			})
			if sendErr != nil {
				return sendErr
			}
		}
		switch {
		case errors.Is(err, eventstore.ErrNotFound) && after == 0:
			return errorf(connect.CodeNotFound, "workflow %q not found", wf)
		case errors.Is(err, eventstore.ErrNotFound):
			return errorf(connect.CodeNotFound, "workflow %q was deleted while it was watched", wf)
		case err != nil:
			return toConnect(err)
		}
		for _, msg := range msgs {
			if err := send(msg); err != nil {
				return err
			}
		}
		if closed {
			return nil
		}
		// A read must reach the last record the follower passed on before
		// it began (whose wake has come already): one that returns less
		// (a stream leader still storing what its quorum had) is read
		// again, a while later each time, as withState does.
		var again <-chan time.Time
		if followed > after {
			if behind == 0 {
				s.readMetrics.Behind()
				s.log.Info("a watch's read of a workflow's history was behind records already followed; reading it again",
					"workflow_id", wf, "read_seq", after, "followed_seq", followed)
			}
			behind = nextBehindWait(behind)
			again = time.After(behind)
		} else {
			behind = 0
		}
		select {
		case <-reg.wake:
		case <-again:
		case <-ctx.Done():
			return toConnect(ctx.Err())
		}
	}
}

// watchReadBytes is the most of a history a watch reads at once: past
// it, it reads and sends a part at a time, so watches of long histories
// hold no more than this each, however slowly their callers read.
const watchReadBytes = 1 << 20

// ListWorkflows lists indexed workflows, newest first.
func (s *Server) ListWorkflows(ctx context.Context, req *connect.Request[weftv1.ListWorkflowsRequest]) (*connect.Response[weftv1.ListWorkflowsResponse], error) {
	release, err := s.listReads.take(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	m := req.Msg
	size, err := pageSize(m.PageSize)
	if err != nil {
		return nil, err
	}
	cur, err := listCursor(m.PageToken)
	if err != nil {
		return nil, err
	}
	want := ""
	if m.Status != weftv1.WorkflowStatus_WORKFLOW_STATUS_UNSPECIFIED {
		want = strings.TrimPrefix(m.Status.String(), "WORKFLOW_STATUS_")
	}
	var q *listQuery
	if m.Query != "" {
		if q, err = compileQuery(m.Query); err != nil {
			return nil, err
		}
	}
	l, err := s.freshListing(ctx)
	if err != nil {
		return nil, err
	}
	// A page looks at scanBudget runs at most, for scanTime at most, and
	// for no more than three quarters of what its caller waits: a
	// next_page_token goes on.
	var qerr error
	now := time.Now()
	until := now.Add(scanTime)
	if dl, ok := ctx.Deadline(); ok {
		if t := now.Add(dl.Sub(now) * 3 / 4); t.Before(until) {
			until = t
		}
	}
	page, resume := l.Scan(cur.created, cur.id, size, scanBudget, func(sum eventstore.Summary) bool {
		if m.Definition != "" && sum.Definition != m.Definition || want != "" && sum.Status != want || !strings.HasPrefix(sum.ID, m.IdPrefix) {
			return false
		}
		if q == nil {
			return true
		}
		ok, err := q.match(sum)
		if err != nil && qerr == nil {
			qerr = err
		}
		return ok
	}, func() bool { return qerr != nil || ctx.Err() != nil || time.Now().After(until) })
	switch {
	case qerr != nil:
		return nil, qerr
	case ctx.Err() != nil:
		return nil, toConnect(ctx.Err())
	}
	resp := &weftv1.ListWorkflowsResponse{}
	for _, sum := range page {
		resp.Workflows = append(resp.Workflows, summaryProto(sum))
	}
	if resume != nil {
		resp.NextPageToken = strconv.FormatInt(resume.Created.UnixNano(), 10) + "." + resume.ID
	}
	return connect.NewResponse(resp), nil
}

// freshListing returns the live copy of the index once it reflects every
// entry stored before this call, waiting (briefly, listingWait) for it to
// apply the index's latest write; after that it serves what it has.
func (s *Server) freshListing(ctx context.Context) (*eventstore.Listing, error) {
	seq, err := s.store.IndexSeq(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	for try := 0; ; try++ {
		l, err := s.currentListing(ctx)
		if err != nil {
			return nil, toConnect(err)
		}
		wctx, cancel := context.WithTimeout(ctx, listingWait)
		err = l.WaitFor(wctx, seq)
		cancel()
		if err == nil || errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return l, nil // caught up, or serve what it has
		}
		if ctx.Err() != nil {
			return nil, toConnect(ctx.Err())
		}
		if try > 0 {
			return nil, toConnect(err)
		}
		// Its watcher ended: a new copy is made.
	}
}

// listingWait bounds how long a ListWorkflows call waits for the listing
// to catch up with the index; after that it serves what it has.
const listingWait = 2 * time.Second

// cursor is where a page of the listing ends: the creation time and id of
// its last workflow. The next page starts after it in the listing's order
// (newest first, ties by id), so workflows started between two calls do
// not shift a page onto the one before. The zero cursor is the start.
type cursor struct {
	created int64
	id      string
}

func listCursor(tok string) (cursor, error) {
	if tok == "" {
		return cursor{}, nil
	}
	ns, id, ok := strings.Cut(tok, ".")
	created, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || !eventstore.ValidWorkflowID(id) {
		return cursor{}, errorf(connect.CodeInvalidArgument, "page_token %q is invalid: pass the next_page_token of the previous page", tok)
	}
	return cursor{created: created, id: id}, nil
}

// SignalWorkflow records a signal for a running workflow. A signal that
// arrives before its wait is kept until the wait takes it.
func (s *Server) SignalWorkflow(ctx context.Context, req *connect.Request[weftv1.SignalWorkflowRequest]) (*connect.Response[weftv1.SignalWorkflowResponse], error) {
	m := req.Msg
	if m.Name == "" {
		return nil, errorf(connect.CodeInvalidArgument, "name is required: the signal name a wait step waits for")
	}
	if err := checkLen("name", m.Name, definition.MaxSignalName); err != nil {
		return nil, err
	}
	if !definition.ValidSignalName(m.Name) {
		// No wait can wait for it: recorded, it would be kept for ever.
		return nil, errorf(connect.CodeInvalidArgument, "invalid signal name %q: a wait's signal is letters, digits, _ and -, in parts separated by single dots", m.Name)
	}
	if err := checkLen("request_id", m.RequestId, maxKey); err != nil {
		return nil, err
	}
	if err := s.checkPayload("payload", m.Payload); err != nil {
		return nil, err
	}
	payload, err := checkValue("payload", m.Payload)
	if err != nil {
		return nil, err
	}
	reqID := m.RequestId
	if reqID == "" {
		reqID = randomID()
	}
	ev := events.Event{Type: events.TypeSignalReceived, Time: s.cfg.Now().UTC(), Identity: identity(ctx),
		SignalReceived: &events.SignalReceived{Name: m.Name, Payload: payload, RequestID: reqID}}
	// A repeat of a signal recorded before the workflow closed is answered
	// as it was the first time.
	seen := func(st *workflow.State) bool { return m.RequestId != "" && st.SignalSeen(m.RequestId) }
	if err := s.appendWhileRunning(ctx, m.WorkflowId, "signals", "signal/"+m.WorkflowId, reqID, "weft.signal", ev, seen); err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.SignalWorkflowResponse{}), nil
}

// CancelWorkflow asks a running workflow to stop.
func (s *Server) CancelWorkflow(ctx context.Context, req *connect.Request[weftv1.CancelWorkflowRequest]) (*connect.Response[weftv1.CancelWorkflowResponse], error) {
	m := req.Msg
	if err := checkLen("reason", m.Reason, maxReason); err != nil {
		return nil, err
	}
	if err := checkLen("request_id", m.RequestId, maxKey); err != nil {
		return nil, err
	}
	ev := events.Event{Type: events.TypeCancelRequested, Time: s.cfg.Now().UTC(), Identity: identity(ctx),
		CancelRequested: &events.CancelRequested{Reason: m.Reason, RequestID: m.RequestId}}
	// A repeat of a cancel recorded is answered as the first was, even
	// once the run closed.
	seen := func(st *workflow.State) bool { return st.RequestSeen("cancel", m.RequestId) }
	if err := s.appendWhileRunning(ctx, m.WorkflowId, "cancel requests", "cancel/"+m.WorkflowId, m.RequestId, "weft.cancel", ev, seen); err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.CancelWorkflowResponse{}), nil
}

// appendWhileRunning appends ev to wf's history while it runs: the append
// is conditional on the history read to check that, and read again when
// it moved, so nothing is appended after the workflow closed. A workflow
// that is not running refuses with FailedPrecondition (what names the
// input). Whatever its status, an input recorded says is in its history
// already is not appended again. The
// request shows in the run's trace as a span named span.
//
// The append's message id is kind, the run's creation and redrive, and
// reqID: the same request made twice to a run is recorded once, and one
// made to a run started under the id of a deleted run, or redriven since,
// is recorded again (the stream's duplicate window would drop it).
//
// A refusal is made only from a read that reaches the last record of the
// run this process's follower has passed on (a redrive, say): a read
// behind it is made again, 10 ms later and then twice as long each time,
// and one still behind after maxBehindWait is answered Unavailable.
func (s *Server) appendWhileRunning(ctx context.Context, wf, what, kind, reqID, span string, ev events.Event, recorded func(*workflow.State) bool) error {
	v, err := s.readState(ctx, wf)
	if err != nil {
		return err
	}
	st := v.st
	s.traceRun(ctx, st, span)
	behind := time.Duration(0)
	for try := 0; ; try++ {
		if recorded != nil && recorded(st) {
			return nil // whenever it was made: the duplicate window is minutes
		}
		if st.Status != workflow.StatusRunning {
			followed := s.interest.followed.of(wf)
			switch {
			case followed <= st.LastSeq:
				return errorf(connect.CodeFailedPrecondition, "workflow %q is %s; %s are only accepted while it runs", wf, st.Status, what)
			case behind >= maxBehindWait:
				return errBehind(wf, followed, st.LastSeq)
			}
			behind = nextBehindWait(behind)
			select {
			case <-ctx.Done():
				return toConnect(ctx.Err())
			case <-time.After(behind):
			}
			if err := s.foldSince(ctx, wf, st); err != nil {
				return err
			}
			continue
		}
		// Named by the run's redrive as read: a request made again after a
		// redrive is another request to another generation.
		msgID := fmt.Sprintf("%s/%d.%d/%s", kind, st.Created.UnixNano(), st.Retries, eventstore.MsgIDPart(reqID))
		last := st.LastSeq
		_, err = s.store.AppendExternal(ctx, wf, &last, msgID, ev)
		switch {
		case err == nil, errors.Is(err, eventstore.ErrDuplicate):
			return nil
		case !errors.Is(err, eventstore.ErrConflict):
			return toConnect(err)
		}
		// Another writer came first: fold what it appended and try again,
		// for as long as the caller waits (many writers at once, say).
		if try >= 8 {
			pause := time.Duration(mrand.Int64N(int64(min(try, 50)) * int64(time.Millisecond)))
			select {
			case <-ctx.Done():
				return toConnect(ctx.Err())
			case <-time.After(pause):
			}
		}
		if err := s.foldSince(ctx, wf, st); err != nil {
			return err
		}
	}
}

// errBehind answers a request whose read of wf stayed behind the records
// of it this process's follower had passed on: Unavailable, never a
// refusal the run may not deserve.
func errBehind(wf string, followed, read uint64) error {
	return errorf(connect.CodeUnavailable, "workflow %q: its history could not be read to its end (records up to %d were seen, %d read): try again", wf, followed, read)
}

// foldSince folds into st what wf's history holds after it.
func (s *Server) foldSince(ctx context.Context, wf string, st *workflow.State) error {
	msgs, err := s.store.Read(ctx, wf, st.LastSeq)
	if err != nil {
		return toConnect(err)
	}
	if broken := runs.FoldMessages(st, msgs); errors.Is(broken, events.ErrNewer) {
		return newerHistory(broken)
	}
	return nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, errorf(connect.CodeInvalidArgument, "page_size must not be negative, got %d", n)
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return int(n), nil
}

// RetryWorkflow redrives a failed workflow from its failed steps.
func (s *Server) RetryWorkflow(ctx context.Context, req *connect.Request[weftv1.RetryWorkflowRequest]) (*connect.Response[weftv1.RetryWorkflowResponse], error) {
	m := req.Msg
	if err := checkLen("reason", m.Reason, maxReason); err != nil {
		return nil, err
	}
	if err := checkLen("request_id", m.RequestId, maxKey); err != nil {
		return nil, err
	}
	ev := events.Event{Type: events.TypeWorkflowRetried, Time: s.cfg.Now().UTC(), Identity: identity(ctx),
		WorkflowRetried: &events.WorkflowRetried{Reason: m.Reason, RequestID: m.RequestId}}
	if err := s.appendWhen(ctx, m.WorkflowId, workflow.StatusFailed, "retry", "retried", m.RequestId, ev, s.neededChild); err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.RetryWorkflowResponse{}), nil
}

// ResumeWorkflow gives a suspended workflow's suspended steps fresh
// attempts, and the workflow goes on.
func (s *Server) ResumeWorkflow(ctx context.Context, req *connect.Request[weftv1.ResumeWorkflowRequest]) (*connect.Response[weftv1.ResumeWorkflowResponse], error) {
	m := req.Msg
	if err := checkLen("reason", m.Reason, maxReason); err != nil {
		return nil, err
	}
	if err := checkLen("request_id", m.RequestId, maxKey); err != nil {
		return nil, err
	}
	ev := events.Event{Type: events.TypeWorkflowResumed, Time: s.cfg.Now().UTC(), Identity: identity(ctx),
		WorkflowResumed: &events.WorkflowResumed{Reason: m.Reason, RequestID: m.RequestId}}
	if err := s.appendWhen(ctx, m.WorkflowId, workflow.StatusSuspended, "resume", "resumed", m.RequestId, ev, nil); err != nil {
		return nil, err
	}
	return connect.NewResponse(&weftv1.ResumeWorkflowResponse{}), nil
}

// neededChild refuses the retry of child, a run started by the parent
// step p names, that its parent no longer needs: the parent canceled the
// step, closed (completed or canceled) while it ran, or started it again
// under another child (Superseded). Retried, it would run for no one, and
// nothing would cancel it: the parent asks a child to cancel only while
// it runs. A parent that failed keeps its children (its own retry may
// take their results), and one that is gone asks nothing.
func (s *Server) neededChild(ctx context.Context, child string, p *events.ParentRef) error {
	var why string
	err := s.withState(ctx, p.WorkflowID, 0, func(v *stateView) error {
		if !p.Created.IsZero() && !v.st.Created.Equal(p.Created) {
			return nil // another run under the parent's id
		}
		for _, st := range workflow.AbandonedSteps(v.st) {
			if st.ChildID == child {
				why = fmt.Sprintf("its parent, workflow %q, no longer needs it (step %s is %s, the workflow %s)",
					p.WorkflowID, st.Path, st.Status, v.st.Shown())
			}
		}
		return nil
	})
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil || why == "" {
		return err
	}
	return errorf(connect.CodeFailedPrecondition, "workflow %q is not retried: %s, so it would run for no one; "+
		"start a new run of its definition to run it again", child, why)
}

// appendWhen appends ev (a retry or a resume: verb, done) to wf's history if the
// workflow is shown with status want, conditional on the history read: it
// applies to the state that was seen. A repeat of the same request on the
// same history is a duplicate, answered as the first; so is a repeat of a
// request with request id reqID that the history records, whatever the
// run did since (it may have failed or been suspended again: applied
// again, the request would redrive or resume it twice).
//
// The state is read as GetWorkflow reads it (withState): a read must
// reach every record of the run this process's follower has passed on,
// so a run an await through this process saw fail is not refused as still
// running by a read that came back behind; one that stays behind is
// answered Unavailable (its append would only conflict). Another API
// process knows only what its own follower passed on.
//
// refuse, if not nil, is asked of a child run (one with a parent) once
// its status allows ev: an error it returns refuses the request.
func (s *Server) appendWhen(ctx context.Context, wf string, want workflow.Status, verb, done, reqID string, ev events.Event,
	refuse func(ctx context.Context, wf string, p *events.ParentRef) error) error {
	var (
		seen, expired bool
		shown         workflow.Status
		last          uint64
		created       time.Time
		st            workflow.State
		parent        *events.ParentRef
	)
	err := s.withState(ctx, wf, 0, func(v *stateView) error {
		seen, expired, shown = v.st.RequestSeen(verb, reqID), v.st.Expired, v.st.Shown()
		last, created = v.st.LastSeq, v.st.Created
		st = workflow.State{ID: v.st.ID, Definition: v.st.Definition, Trace: v.st.Trace}
		if v.st.Parent != nil {
			p := *v.st.Parent
			parent = &p
		}
		return nil
	})
	if err != nil {
		return err
	}
	if seen {
		return nil
	}
	if followed := s.interest.followed.of(wf); followed > last {
		return errBehind(wf, followed, last)
	}
	if expired {
		return errorf(connect.CodeFailedPrecondition, "workflow %q is past its retention and being deleted; it cannot be %s", wf, done)
	}
	if shown != want {
		return errorf(connect.CodeFailedPrecondition, "workflow %q is %s; only %s workflows can be %s", wf, shown, want, done)
	}
	if refuse != nil && parent != nil {
		if err := refuse(ctx, wf, parent); err != nil {
			return err
		}
	}
	s.traceRun(ctx, &st, "weft."+verb)
	msgID := verb + "/" + wf + "/" + strconv.FormatUint(last, 10)
	if reqID != "" {
		msgID = fmt.Sprintf("%s/%s/%d/%s", verb, wf, created.UnixNano(), eventstore.MsgIDPart(reqID))
	}
	_, err = s.store.AppendExternal(ctx, wf, &last, msgID, ev)
	switch {
	case err == nil, errors.Is(err, eventstore.ErrDuplicate):
		return nil
	case errors.Is(err, eventstore.ErrConflict):
		return errorf(connect.CodeAborted, "workflow %q changed while it was read to %s it; read it again", wf, verb)
	}
	return toConnect(err)
}

// CountWorkflows counts the listed runs by status, of a definition or
// all, from the live copy of the index: without an id prefix from the
// counts it keeps, with one by looking at every run.
func (s *Server) CountWorkflows(ctx context.Context, req *connect.Request[weftv1.CountWorkflowsRequest]) (*connect.Response[weftv1.CountWorkflowsResponse], error) {
	release, err := s.listReads.take(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	l, err := s.freshListing(ctx)
	if err != nil {
		return nil, err
	}
	// Statuses that have no WorkflowStatus (none today) count as UNSPECIFIED.
	byStatus := map[weftv1.WorkflowStatus]int64{}
	for status, n := range l.Count(req.Msg.Definition, req.Msg.IdPrefix) {
		byStatus[weftv1.WorkflowStatus(weftv1.WorkflowStatus_value["WORKFLOW_STATUS_"+status])] += int64(n)
	}
	resp := &weftv1.CountWorkflowsResponse{}
	for status, n := range byStatus {
		resp.Counts = append(resp.Counts, &weftv1.WorkflowStatusCount{Status: status, Count: n})
		resp.Total += n
	}
	slices.SortFunc(resp.Counts, func(a, b *weftv1.WorkflowStatusCount) int { return cmp.Compare(a.Status, b.Status) })
	return connect.NewResponse(resp), nil
}
