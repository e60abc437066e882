package builtin

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// refusals records the errors a NATS connection is told of, in the order
// the server sent them, so that a publish can tell whether the server
// refused it although another refusal came in the same moments: the
// connection itself keeps only its last error (nats.Conn.LastError).
//
// nats.go hands those errors to the connection's error handler one at a
// time on a goroutine of its own, in the order it read them, after it has
// made each the last error. So once the handler has been given the last
// error a publish's flush left, it has been given every error sent before
// the flush's answer, the publish's own refusal among them.
type refusals struct {
	mu      sync.Mutex
	told    uint64  // errors handed over so far
	recent  []error // the last maxRefusals of them, the newest last
	changed chan struct{}
}

// maxRefusals is how many of a connection's latest errors are kept.
const maxRefusals = 256

// refusalWait bounds how long a publish waits for the error handler to be
// given the connection's last error.
const refusalWait = 2 * time.Second

// watchRefusals records nc's errors from now on; the error handler nc had
// is still called after.
func watchRefusals(nc *nats.Conn) *refusals {
	r := &refusals{changed: make(chan struct{})}
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		r.add(err)
		if prev != nil {
			prev(c, s, err)
		}
	})
	return r
}

func (r *refusals) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.told++
	r.recent = append(r.recent, err)
	if len(r.recent) > maxRefusals {
		r.recent = r.recent[len(r.recent)-maxRefusals:]
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// mark is where the errors told from now on begin.
func (r *refusals) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.told
}

// since returns the errors told after mark that the handler has been
// given by the time it has been given last (or refusalWait has passed),
// the oldest first.
func (r *refusals) since(mark uint64, last error) []error {
	deadline := time.NewTimer(refusalWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		reached := last == nil
		for i := len(r.recent) - 1; i >= 0 && !reached && r.told-uint64(len(r.recent)-i) >= mark; i-- {
			reached = r.recent[i] == last
		}
		n := min(r.told-mark, uint64(len(r.recent)))
		errs := append([]error(nil), r.recent[uint64(len(r.recent))-n:]...)
		changed := r.changed
		r.mu.Unlock()
		if reached {
			return errs
		}
		select {
		case <-changed:
		case <-deadline.C:
			return errs
		}
	}
}

// refusedPublish reports whether err is the server's refusal of a publish
// to subject.
func refusedPublish(err error, subject string) bool {
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "Publish to \""+subject+"\"")
}
