package workflow

// Error types Weft itself assigns to failed steps and workflows (the
// events.Error Type a catch matches and `weft` shows). They are defined
// here, in the core, once: the orchestrator and the executor use these
// names (the executor keeps its own for handler authors as aliases).
// docs/language.md lists them with their causes.
const (
	// ErrTypeExpression: an expression failed at run time.
	ErrTypeExpression = "expression"
	// ErrTypeLimit: an expression would pass its memory limits, a history
	// would pass MaxHistoryEvents, or a decision is too large to store.
	ErrTypeLimit = "limit"
	// ErrTypeTimeout: a task attempt, a wait or the workflow ran out of time.
	ErrTypeTimeout = "timeout"
	// ErrTypeMaxIterations: a repeat's until was still false after
	// max_iterations.
	ErrTypeMaxIterations = "max_iterations"
	// ErrTypeCanceled: a child workflow was canceled, or a step was
	// canceled with its workflow.
	ErrTypeCanceled = "canceled"
	// ErrTypeChild: a child workflow failed.
	ErrTypeChild = "child_failed"
	// ErrTypeInvalidInput: a child workflow's input does not match its
	// definition's input_schema; the child is not started.
	ErrTypeInvalidInput = "invalid_input"
	// ErrTypeInvalidOutput: a step's output cannot be recorded (no JSON
	// form, against the rule for values, too large to store).
	ErrTypeInvalidOutput = "invalid_output"
	// ErrTypeInvalidSearch: a search attribute's value cannot be recorded
	// (not a string, number, bool or timestamp, or a string longer than
	// definition.MaxSearchString); it fails the workflow.
	ErrTypeInvalidSearch = "invalid_search_attribute"
	// ErrTypeCorruptHistory: a workflow's history cannot be folded (a
	// record that cannot be decoded or applied).
	ErrTypeCorruptHistory = "corrupt_history"
	// ErrTypePanic: a Go task handler panicked.
	ErrTypePanic = "panic"
	// ErrTypeExhausted: history already records every attempt the retry
	// policy allows (left by an earlier version, which counted deliveries).
	ErrTypeExhausted = "attempts_exhausted"
	// ErrTypeWrongTaskType: a step's command reached the executor of
	// another task type, and was not run.
	ErrTypeWrongTaskType = "wrong_task_type"
	// ErrTypeHandler: a Go task handler returned an error without a type.
	ErrTypeHandler = "error"
)
