package workflow

// ErrTypeInvalidOutput is the error type of a step whose output cannot be
// recorded (too large to store, say).
const ErrTypeInvalidOutput = "invalid_output"
