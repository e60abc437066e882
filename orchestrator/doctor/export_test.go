package doctor

import (
	"testing"
	"time"
)

// SetTestHookTry makes f called before each attempt at a run, for the
// length of t; an error it returns is the attempt's.
func SetTestHookTry(t *testing.T, f func(id string) error) {
	testHookTry = f
	t.Cleanup(func() { testHookTry = nil })
}

// SetLookAgain makes the pauses before the looks again at an
// orchestrators' consumer that none asks for inputs d, for the length of t.
func SetLookAgain(t *testing.T, d ...time.Duration) {
	old := lookAgain
	lookAgain = d
	t.Cleanup(func() { lookAgain = old })
}
