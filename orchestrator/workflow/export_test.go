package workflow

// WithoutLoopProgress returns a copy of st without what decisions learned
// about its loops, which a state folded afresh has not learned yet, nor
// its Bytes, which count how it was read.
func WithoutLoopProgress(st *State) *State {
	c := *st
	c.loops = nil
	c.Bytes = 0 // a measure of the state, not part of it
	return &c
}
