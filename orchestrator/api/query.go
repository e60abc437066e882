package api

import (
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
	"connectrpc.com/connect"

	"github.com/weftworks/weft/eventstore"
)

// Bounds of a ListWorkflows query: its length, the cost of evaluating it
// for one run, and how many runs one call looks at, for how long.
const (
	maxQueryBytes = 4 << 10
	queryCost     = 10_000
	scanBudget    = 50_000
	scanTime      = 2 * time.Second
)

// queryEnv declares what a query sees of each run.
var queryEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("status", cel.StringType),
		cel.Variable("definition", cel.StringType),
		cel.Variable("revision", cel.IntType),
		cel.Variable("created", cel.TimestampType),
		cel.Variable("closed", cel.TimestampType),
		cel.Variable("identity", cel.StringType),
		cel.Variable("search", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// listQuery is a compiled ListWorkflows query.
type listQuery struct {
	prg cel.Program
}

// compileQuery checks and compiles a query, or says what to fix.
func compileQuery(src string) (*listQuery, error) {
	if len(src) > maxQueryBytes {
		return nil, errorf(connect.CodeInvalidArgument, "query is %d bytes; the limit is %d", len(src), maxQueryBytes)
	}
	ast, iss := queryEnv.Compile(src)
	if iss.Err() != nil {
		return nil, errorf(connect.CodeInvalidArgument, "query: %s (it may use status, definition, revision, created, closed, identity and search)",
			strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, errorf(connect.CodeInvalidArgument, "query must be true or false for a run; it gives %s", t)
	}
	prg, err := queryEnv.Program(ast, cel.CostLimit(queryCost), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "query: %v", err)
	}
	return &listQuery{prg: prg}, nil
}

// match reports whether the query is true for sum; a run it cannot be
// evaluated for does not match (a missing attribute, say). A query over
// its cost limit for a run is an error: it would match no run and look at
// every one.
func (q *listQuery) match(sum eventstore.Summary) (bool, error) {
	out, _, err := q.prg.Eval(summaryVars{sum: &sum})
	if err != nil && strings.Contains(err.Error(), "cost limit exceeded") {
		return false, errorf(connect.CodeInvalidArgument, "query: over its cost limit (%d) for run %s; make it simpler", queryCost, sum.ID)
	}
	return err == nil && out == types.True, nil
}

// summaryVars resolves a query's variables from one index entry, without
// building a map per run.
type summaryVars struct{ sum *eventstore.Summary }

var _ interpreter.Activation = summaryVars{}

// ResolveName returns the value of a query variable.
func (a summaryVars) ResolveName(name string) (any, bool) {
	s := a.sum
	switch name {
	case "status":
		return strings.ToLower(s.Status), true
	case "definition":
		return s.Definition, true
	case "revision":
		return int64(s.Revision), true
	case "created":
		return s.Created, true
	case "closed":
		if s.Closed.IsZero() {
			return time.Time{}, true
		}
		return s.Closed, true
	case "identity":
		return s.Identity, true
	case "search":
		if s.Search == nil {
			return map[string]any{}, true
		}
		return s.Search, true
	}
	return nil, false
}

// Parent returns nil: there is no enclosing scope.
func (summaryVars) Parent() interpreter.Activation { return nil }

// String names the run, for debugging.
func (a summaryVars) String() string { return fmt.Sprintf("run %s", a.sum.ID) }
