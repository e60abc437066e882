package workflow

import (
	"strconv"
	"strings"
)

// SignalSeen reports whether a signal with request id reqID was recorded.
func (st *State) SignalSeen(reqID string) bool { return st.signalIDs[reqID] }

// busyIterations returns the iterations of the loop at path that have a
// task, child, wait or sleep in flight.
func (st *State) busyIterations(path string) map[int]bool {
	busy := map[int]bool{}
	prefix := path + "["
	for _, p := range st.Order {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		s := st.Steps[p]
		if s.Status != StepRunning && s.Status != StepWaiting || s.container() {
			continue
		}
		end := strings.IndexByte(p[len(prefix):], ']')
		if i, err := strconv.Atoi(p[len(prefix) : len(prefix)+end]); end > 0 && err == nil {
			busy[i] = true
		}
	}
	return busy
}
