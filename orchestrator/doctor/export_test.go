package doctor

import "testing"

// SetTestHookTry makes f called before each attempt at a run, for the
// length of t; an error it returns is the attempt's.
func SetTestHookTry(t *testing.T, f func(id string) error) {
	testHookTry = f
	t.Cleanup(func() { testHookTry = nil })
}
