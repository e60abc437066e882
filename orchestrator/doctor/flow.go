package doctor

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/weftworks/weft/eventstore"
	"github.com/weftworks/weft/orchestrator/workflow"
)

// stepSlots checks the concurrency slots of task steps (the weft-flow
// bucket, read once a check). A slot held at the check's time by an
// attempt that is over, which nothing will give back, keeps every other
// attempt of its step's key waiting until its lease ends: the step's
// timeout and a minute after the attempt's last heartbeat, however long
// that is. One whose lease ends within ExecutorGrace is left alone. It is reported as stuck on the attempt's run (a follow-up of
// the attempt missed); it returns the runs with no history that hold one,
// so reported.
func (c *checker) stepSlots(ctx context.Context) ([]*run, error) {
	leases, err := c.store.SlotLeases(ctx, c.now)
	if err != nil {
		return nil, err
	}
	var gone []*run
	for _, l := range leases {
		wf, path, gen, attempt, cmd, ok := parseHolder(l.Holder)
		if !ok {
			continue // not named by this version
		}
		if l.End.Sub(c.now) <= c.opts.ExecutorGrace {
			// It ends by itself within the grace an executor has: a
			// delay, not a slot lost (an executor killed between its
			// result and giving the slot back leaves one like it).
			continue
		}
		r := c.runs[wf]
		var why string
		switch {
		case r == nil:
			// Not read: started since the index was read, or gone.
			if _, err := c.store.LastSeq(ctx, wf); !errors.Is(err, eventstore.ErrNotFound) {
				if err != nil {
					return nil, err
				}
				continue
			}
			r = &run{Run: Run{ID: wf, Verdict: Gone}}
			c.runs[wf] = r
			gone = append(gone, r)
			why = "is of a run that has no history (deleted)"
		case r.unchecked != nil || r.deleting:
			continue // unchecked is reported as such; a deletion under way takes its slots' leases with it
		case r.st == nil:
			if r.Verdict == "" {
				r.Verdict = Gone
			}
			why = "is of a run that has no history (deleted)"
		case cmd > 0 && cmd < r.st.FirstSeq:
			// Named by a command stored before this run's first record:
			// an attempt of an earlier run of the id, deleted since.
			why = "is of an earlier run of its id (deleted since)"
		default:
			if why, err = c.slotOver(ctx, r, path, gen, attempt); err != nil {
				return nil, err
			}
			if why == "" {
				continue
			}
		}
		r.add(FindingStuck, "step %s: attempt %d (scheduling %d) %s, but still holds a concurrency slot of key %q of step %s until %s: every other attempt of the key waits for it meanwhile",
			path, attempt, gen, why, l.Key, l.Scope, l.End.UTC().Format(time.RFC3339))
	}
	return gone, nil
}

// slotOver says why the attempt of r's step at path (scheduling gen) is
// over and nothing will give its slot back; "" when it may still run, or
// an executor will give it back yet.
func (c *checker) slotOver(ctx context.Context, r *run, path string, gen, attempt int) (string, error) {
	if c.now.Sub(r.LastChange) < max(c.opts.ExecutorGrace, c.opts.Grace) {
		// A settled attempt's slot is given back just after its result is
		// reported; one its executor died before giving back comes back
		// with its command, within the task ack wait.
		return "", nil
	}
	s := r.st.Steps[path]
	switch {
	case s == nil || s.Kind != "task":
		return "is of no task step of its run", nil
	case attempt <= s.Attempts:
		// Attempts are numbered on across schedulings: this one's
		// result, or a later one's, is recorded.
		return "is over (its result, or a later attempt's, is recorded)", nil
	case gen == s.Gen && s.Status == workflow.StepRunning && open(r.Status):
		return "", nil // the attempt its step runs, or is about to
	}
	// Cut off by a cancel, the run's close or a later scheduling, with no
	// result: its handler may still run (nothing stops it), and its
	// executor gives the slot back when it returns, or the command
	// delivered again does. Left over only once no command of the run's
	// task type is unsettled.
	tq, err := c.taskQueue(ctx, s.Task)
	if err != nil {
		return "", err
	}
	if tq.err == nil {
		last, err := c.store.LastTaskCommand(ctx, r.ID, s.Task)
		switch {
		case errors.Is(err, eventstore.ErrNotFound):
		case err != nil:
			return "", err
		case last > tq.q.AckFloor:
			return "", nil
		}
	}
	return fmt.Sprintf("was cut off (the step is %s, the run %s) and its command is settled", s.Status, r.Status), nil
}

// parseHolder reads a slot holder as the executor names it:
// "<run>/<step path>/<scheduling>/<attempt>/<command's sequence>", or, as
// an earlier version named it, without the sequence (cmd 0). A run id and
// a step path hold no "/".
func parseHolder(h string) (wf, path string, gen, attempt int, cmd uint64, ok bool) {
	parts := strings.Split(h, "/")
	switch len(parts) {
	case 4:
	case 5:
		c, err := strconv.ParseUint(parts[4], 10, 64)
		if err != nil {
			return "", "", 0, 0, 0, false
		}
		cmd = c
	default:
		return "", "", 0, 0, 0, false
	}
	a, err := strconv.Atoi(parts[3])
	if err != nil {
		return "", "", 0, 0, 0, false
	}
	g, err := strconv.Atoi(parts[2])
	if err != nil || !eventstore.ValidWorkflowID(parts[0]) {
		return "", "", 0, 0, 0, false
	}
	return parts[0], parts[1], g, a, cmd, true
}

// runSlots checks the slots of definitions' concurrency keys (the
// weft-slots bucket, read once a check). A run's close gives its slot
// back; a slot still held, past the grace, by a run that closed, by a run
// with no history, or in the name of an earlier run of the id (deleted
// since), is a give-back that was missed. Nothing frees it until a run
// waits on the key (an orchestrator then looks at the key's holders, at
// most every 30 s, and slot reports that run stuck meanwhile), so it is
// reported as drifted on the run that holds it: the slots disagree with
// history. It returns the runs with no history that hold one, so reported.
func (c *checker) runSlots(ctx context.Context) ([]*run, error) {
	entries, err := c.store.SlotEntries(ctx)
	if err != nil {
		return nil, err
	}
	var gone []*run
	for _, e := range entries {
		for _, h := range e.Slots.Holders {
			held, _, known := e.Slots.Holder(h)
			r := c.runs[h]
			var why string
			switch {
			case r == nil:
				// Not read: started since the index was read, or gone.
				if _, err := c.store.LastSeq(ctx, h); !errors.Is(err, eventstore.ErrNotFound) {
					if err != nil {
						return nil, err
					}
					continue
				}
				r = &run{Run: Run{ID: h, Verdict: Gone}}
				c.runs[h] = r
				gone = append(gone, r)
				why = "has no history (deleted)"
			case r.unchecked != nil || r.deleting:
				continue // unchecked is reported as such; a deletion under way gives its slot back
			case r.st == nil:
				if r.Verdict == "" {
					r.Verdict = Gone
				}
				why = "has no history (deleted)"
			case c.recent(r):
				continue // a close's give-back follows it
			case known && held.Created != r.st.Created.UnixNano():
				why = fmt.Sprintf("is held in the name of an earlier run of the id (started %s, deleted since)",
					time.Unix(0, held.Created).UTC().Format(time.RFC3339))
			case r.st.Status.Terminal():
				why = fmt.Sprintf("is held by the run, %s at %s", strings.ToLower(string(r.st.Status)), r.LastChange.UTC().Format(time.RFC3339))
			default:
				continue // an open run's
			}
			if r.st != nil {
				// Judged on the history as read: one that moved since (a
				// redrive queued the run again, say) is judged next time.
				if moved, err := c.moved(ctx, r); err != nil || moved {
					if err != nil {
						return nil, err
					}
					continue
				}
			}
			r.add(FindingDrifted, "a concurrency slot of key %q of definition %q %s: its give-back was missed, and it is held until a run waits on the key (an orchestrator then frees it, looking at most every 30 s)",
				e.Key, e.Definition, why)
		}
	}
	// An admitted run that has not closed holds a slot of its key: it took
	// it before its admission was recorded, and gives it back only after
	// its close. One that holds none (the slots bucket restored from a
	// backup older than the history, say) lets the key's other runs take
	// its slot while it runs, past the limit.
	holding := map[string]bool{}
	for _, e := range entries {
		for _, h := range e.Slots.Holders {
			holding[h] = true
		}
	}
	for _, r := range c.runs {
		st := r.st
		if st == nil || r.unchecked != nil || r.deleting || r.partial || !st.Queued || !st.Admitted || st.Status.Terminal() || c.recent(r) {
			continue
		}
		if holding[r.ID] && slotsHold(entries, r.ID, eventstore.RunOf(st.Created, st.Retries)) {
			continue
		}
		if moved, err := c.moved(ctx, r); err != nil || moved {
			if err != nil {
				return nil, err
			}
			continue
		}
		r.add(FindingDrifted, "admitted, it runs, but holds no concurrency slot of key %q of definition %q: the key's other runs may take its slot, past the limit, until it closes (the slots bucket is behind the history)",
			st.QueueKey, st.Definition)
	}
	return gone, nil
}

// slotsHold reports whether an entry of entries holds a slot for run of id.
func slotsHold(entries []eventstore.KeySlots, id string, run eventstore.SlotRun) bool {
	for i := range entries {
		if entries[i].Slots.Holds(id, run) {
			return true
		}
	}
	return false
}
