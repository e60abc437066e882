package api

import (
	"context"
	"sync"

	"connectrpc.com/connect"
	lru "github.com/hashicorp/golang-lru/v2"
)

// states keeps the folded states of recently read workflows, so that a
// read costs a request for what was appended since (usually nothing), not
// a read and fold of the history.
type states struct {
	runs *lru.Cache[string, *cachedRun]
	mu   sync.Mutex // makes get-or-add one step
}

// cachedRun is one workflow's folded state; mu serializes its reads.
type cachedRun struct {
	mu   sync.Mutex
	view *stateView // nil until first read
}

func newStates(size int) *states {
	c, err := lru.New[string, *cachedRun](size)
	if err != nil {
		panic(err) // size is checked positive by Config
	}
	return &states{runs: c}
}

func (c *states) entry(wf string) *cachedRun {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.runs.Get(wf)
	if !ok {
		e = &cachedRun{}
		c.runs.Add(wf, e)
	}
	return e
}

// withState calls fn with wf's current state: the cached fold brought up to
// date with the records appended since, or a fresh read. fn must not keep
// or change the state: it is shared, and read under the entry's lock.
func (s *Server) withState(ctx context.Context, wf string, fn func(*stateView) error) error {
	if err := checkWorkflowID(wf); err != nil {
		return err
	}
	e := s.states.entry(wf)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.view == nil {
		v, err := s.readState(ctx, wf)
		if err != nil {
			if connect.CodeOf(err) == connect.CodeNotFound {
				s.states.runs.Remove(wf)
			}
			return err
		}
		e.view = v
	} else {
		msgs, err := s.store.Read(ctx, wf, e.view.st.LastSeq)
		if err != nil {
			return toConnect(err)
		}
		if len(msgs) > 0 {
			v, err := foldMessages(e.view.st, msgs)
			if err != nil {
				e.view = nil
				return err
			}
			e.view = v
		}
	}
	// A history that does not fold to its end is read afresh each time.
	if e.view.broken {
		defer func() { e.view = nil }()
	}
	return fn(e.view)
}
