package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/eventstore/events"
	"github.com/weftworks/weft/orchestrator/runs"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// Retention: a closed run is deleted once it has been closed for its
// retention (its definition revision's retention:, else Config.Retention).
// The deadline is a function of the folded state, so reconcile schedules it
// whenever it sees a closed run (eventstore.ScheduleDeletion, replacing any
// earlier schedule: a run retried and closed again moves it on). When it
// comes due, expire reads the run again and deletes it only if it is still
// closed and closed long enough; first it appends WorkflowExpired,
// conditional on what it read, so that nothing (a retry) is appended to
// what it deletes. The delivery is acked only once all of it is gone, so
// an orchestrator that dies midway leaves it to the next.

// retentionOf returns how long st, once closed, is kept (0: for ever).
func (sh *shard) retentionOf(ctx context.Context, st *workflow.State) (time.Duration, error) {
	def, _, err := sh.o.defs.Load(ctx, st.Definition, st.Revision)
	if err != nil {
		return 0, fmt.Errorf("load definition %s revision %d: %w", st.Definition, st.Revision, err)
	}
	if def.Retention > 0 {
		return def.Retention, nil
	}
	return sh.o.cfg.Retention, nil
}

// scheduleDeletion schedules the deletion of a closed st at its close plus
// its retention, when it has one. One whose deletion began (a late input
// recorded on top of its WorkflowExpired) is finished by the delivery
// that began it, which comes back until it does: scheduled again, it
// would be due at once, and a second deletion would run beside the first.
func (sh *shard) scheduleDeletion(ctx context.Context, wf string, st *workflow.State) error {
	if !st.Status.Terminal() || st.Closed.IsZero() || st.Expired {
		return nil
	}
	keep, err := sh.retentionOf(ctx, st)
	if err != nil || keep <= 0 {
		return err
	}
	return sh.o.store.ScheduleDeletion(ctx, wf, st.Closed.Add(keep))
}

// expire deletes wf if it is still closed and has been for its retention;
// one not yet due has its deletion scheduled again, and one running again
// (retried) is left alone: its next close schedules it anew. A child run
// is kept while its parent's history exists. One whose deletion began
// (WorkflowExpired) is deleted without looking again.
func (sh *shard) expire(ctx context.Context, wf string) error {
	sh.forget(wf)
	l, err := runs.ReadFromSnapshot(ctx, sh.o.store, wf)
	if err != nil {
		return err
	}
	st := l.State
	if broken := runs.FoldMessages(st, l.Msgs); errors.Is(broken, events.ErrNewer) {
		return errNewer{fmt.Errorf("workflow %s: %w", wf, broken)} // not this build's to judge
	}
	if st.Events == 0 {
		// Its history is gone, which is purged last: deleted already (this
		// delivery's ack was lost). An earlier version purged it first, and
		// a deletion of its cut short left the entry: that goes, unless a
		// run was started under the id since. Or it holds only what a
		// deletion cut short between its purges of the history left (a
		// record appended after the deletion read the run): that goes too.
		// A history that does not fold from its start is kept.
		return sh.deleteRunErr(wf, sh.o.store.DeleteLeftovers(ctx, wf))
	}
	if st.Expired {
		// Its deletion began (WorkflowExpired, appended once the checks
		// below passed) and was cut short. The record refuses every retry
		// from then on, so the run is finished now, whatever this
		// orchestrator would judge of it (its --retention, its clock): kept,
		// it would be kept for good, and could never run again.
		if err := sh.followUpLast(ctx, wf, st); err != nil {
			return err
		}
		return sh.deleteRun(ctx, wf, st.LastSeq)
	}
	if !st.Status.Terminal() || st.Closed.IsZero() {
		return nil
	}
	keep, err := sh.retentionOf(ctx, st)
	if err != nil || keep <= 0 {
		return err
	}
	due := st.Closed.Add(keep)
	if wait := due.Sub(sh.o.cfg.Now()); wait > 0 {
		if wait < time.Minute {
			// Clocks that differ a little: come back when due.
			return errNotDue{max(wait, minTimerWait)}
		}
		// A later close (after a retry) moved the deadline on.
		return sh.o.store.ScheduleDeletion(ctx, wf, due)
	}
	if p := st.Parent; p != nil {
		// A child is kept while its parent's run is: a parent read afresh
		// starts any recorded child that has no history (that is how a
		// child whose start was lost gets started), so a deleted child
		// would run again. It is looked at again a retention later. A run
		// started under the parent's id since the parent was deleted
		// keeps nothing: it never takes this child.
		first, err := sh.o.store.First(ctx, p.WorkflowID)
		if err != nil && !errors.Is(err, eventstore.ErrNotFound) {
			return err
		}
		if err == nil && parentRun(first, p) {
			return sh.o.store.ScheduleDeletion(ctx, wf, sh.o.cfg.Now().Add(max(keep, time.Minute)))
		}
	}
	if err := sh.followUpLast(ctx, wf, st); err != nil {
		return err
	}
	if sh.o.expireRead != nil {
		sh.o.expireRead(wf)
	}
	last := st.LastSeq
	if !sh.o.store.PurgeDenied() {
		// A retry appended since the read would be deleted with the run,
		// answered as applied and lost. WorkflowExpired, appended only if
		// nothing was since, closes the history: a retry whose read came
		// before it fails its conditional append, and one after it is
		// refused. A retry that came first is seen at the next look.
		ev := events.Event{Type: events.TypeWorkflowExpired, Time: sh.o.cfg.Now().UTC(),
			WorkflowExpired: &events.WorkflowExpired{Retention: keep}}
		var err error
		if last, err = sh.o.store.Append(ctx, wf, st.LastSeq, ev); errors.Is(err, eventstore.ErrConflict) {
			return errNotDue{minTimerWait}
		} else if err != nil {
			return err
		}
	}
	return sh.deleteRun(ctx, wf, last)
}

// followUpLast runs the follow-ups of closed st, about to be deleted, that
// nothing could run once it is gone: its children it no longer needs are
// canceled and its concurrency slot is given back. An orchestrator that
// recorded the close and died before its follow-ups leaves them to its
// input coming back, which a run deleted meanwhile never does. (A child
// run goes only once its parent is gone: there is no one to tell. Its
// listing entry goes with it. A failed run's recorded children are not
// started for a run that goes.)
func (sh *shard) followUpLast(ctx context.Context, wf string, st *workflow.State) error {
	e := &entry{st: st}
	if err := sh.cancelUnneeded(ctx, e); err != nil {
		return err
	}
	err := sh.reconcileSlot(ctx, wf, e)
	if errors.Is(err, runs.ErrNoLongerCompiles) {
		// The give-back needs the revision's limit. Left held by a run
		// that is gone, the slot is given back by the key's look at its
		// holders (freeClosedHolders) once a run waits for it; failing,
		// the deletion would fail for as long as the revision stays.
		sh.o.log.Warn("cannot give the slot of a run being deleted back", "workflow", wf, "err", err)
		return nil
	}
	return err
}

// parentRun reports whether first, the first record of a run of p's id,
// may be p's run: it is, or cannot be told apart from it (unreadable, or
// p from a record that did not name the parent's start).
func parentRun(first eventstore.Message, p *events.ParentRef) bool {
	if first.Err != nil || p.Created.IsZero() {
		return true
	}
	ev := first.Record.Events[0]
	return ev.WorkflowStarted == nil || ev.Time.Equal(p.Created)
}

// deleteRun deletes what is stored of wf, read up to sequence upTo; a
// history stream that denies purges is reported and the deletion tried
// again an hour later, and one that holds more than was read is looked at
// again.
func (sh *shard) deleteRun(ctx context.Context, wf string, upTo uint64) error {
	return sh.deleteRunErr(wf, sh.o.store.DeleteRun(ctx, wf, upTo))
}

// deleteRunErr settles err, the outcome of a deletion of wf, as deleteRun
// says.
func (sh *shard) deleteRunErr(wf string, err error) error {
	if errors.Is(err, eventstore.ErrConflict) {
		return errNotDue{minTimerWait}
	}
	if errors.Is(err, eventstore.ErrPurgeDenied) {
		sh.o.log.Warn("cannot delete a run past its retention", "workflow", wf, "err", err)
		return errNotDue{time.Hour}
	}
	if err == nil {
		sh.o.log.Debug("deleted a run past its retention", "workflow", wf)
	}
	return err
}
