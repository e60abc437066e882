package workflow

// WithoutLoopProgress returns a copy of st without what decisions learned
// about its loops, which a state folded afresh has not learned yet.
func WithoutLoopProgress(st *State) *State {
	c := *st
	c.loops = nil
	return &c
}
