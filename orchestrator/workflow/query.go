package workflow

// SignalSeen reports whether a signal with request id reqID was recorded.
func (st *State) SignalSeen(reqID string) bool { return st.signalIDs[reqID] }
