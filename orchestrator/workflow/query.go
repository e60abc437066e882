package workflow

import (
	"strconv"
	"strings"
)

// SignalSeen reports whether a signal with request id reqID was recorded.
func (st *State) SignalSeen(reqID string) bool { return st.signalIDs[reqID] }

// RequestSeen reports whether a request of kind cancel, retry or resume
// with request id reqID was recorded (never for an empty reqID).
func (st *State) RequestSeen(kind, reqID string) bool {
	return reqID != "" && st.requestIDs[kind+"/"+reqID]
}

// iterations returns which iterations of the loop at path have a task,
// child, wait or sleep in flight (busy), and which hold a step a redrive
// runs again (rerun).
func (st *State) iterations(path string) (busy, rerun map[int]bool) {
	busy, rerun = map[int]bool{}, map[int]bool{}
	prefix := path + "["
	for _, p := range st.Order {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		s := st.Steps[p]
		inFlight := (s.Status == StepRunning || s.Status == StepWaiting) && !s.container()
		if !inFlight && !s.Rerun {
			continue
		}
		end := strings.IndexByte(p[len(prefix):], ']')
		if i, err := strconv.Atoi(p[len(prefix) : len(prefix)+end]); end > 0 && err == nil {
			if inFlight {
				busy[i] = true
			} else {
				rerun[i] = true
			}
		}
	}
	return busy, rerun
}
