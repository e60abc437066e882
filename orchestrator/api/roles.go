package api

import (
	"fmt"
	"path"
	"strings"

	"connectrpc.com/grpcreflect"

	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
)

// Role is what a bearer token may do. The zero Role is RoleRead, the
// least: a Token made in code without a role may only read. (A
// tokens-file line that names no role, as every line did before roles,
// is RoleAdmin: LoadTokens says so explicitly.)
type Role int

// The roles, each allowing what the ones before it allow and more.
const (
	// RoleRead may only read: runs, histories, definitions, triggers and
	// schedules, and await or watch runs.
	RoleRead Role = iota
	// RoleRun may start, signal, cancel, retry and resume runs, and read
	// everything RoleRead may.
	RoleRun
	// RoleAdmin may call everything: definitions put, paused and resumed
	// besides what RoleRun may.
	RoleAdmin
)

// roleNames are the roles as a tokens file names them.
var roleNames = map[Role]string{RoleAdmin: "admin", RoleRun: "run", RoleRead: "read"}

// String returns the role's name in a tokens file.
func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole returns the role a tokens file or `weft token create --role`
// names: admin, run or read.
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if s == n {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: use admin (everything), run (start, signal, cancel, retry and resume runs, and read) or read (read only)", s)
}

// allows reports whether r may make a request to path.
func (r Role) allows(path string) bool { return r >= pathRole(path) }

// procedureRoles is the least role each procedure of Weft's services
// needs: RoleRead for what only reads, RoleRun for what acts on runs.
// Others (definitions put, paused, resumed; a procedure added without a
// line here) need RoleAdmin. TestEveryProcedureHasARole checks the table
// against the services' descriptors.
var procedureRoles = map[string]Role{
	weftv1connect.WorkflowServiceGetWorkflowProcedure:        RoleRead,
	weftv1connect.WorkflowServiceAwaitWorkflowProcedure:      RoleRead,
	weftv1connect.WorkflowServiceGetHistoryProcedure:         RoleRead,
	weftv1connect.WorkflowServiceWatchWorkflowProcedure:      RoleRead,
	weftv1connect.WorkflowServiceListWorkflowsProcedure:      RoleRead,
	weftv1connect.WorkflowServiceCountWorkflowsProcedure:     RoleRead,
	weftv1connect.DefinitionServiceGetDefinitionProcedure:    RoleRead,
	weftv1connect.DefinitionServiceListDefinitionsProcedure:  RoleRead,
	weftv1connect.TriggerServiceListTriggerFailuresProcedure: RoleRead,
	weftv1connect.TriggerServiceListSchedulesProcedure:       RoleRead,
	weftv1connect.WorkflowServiceStartWorkflowProcedure:      RoleRun,
	weftv1connect.WorkflowServiceSignalWorkflowProcedure:     RoleRun,
	weftv1connect.WorkflowServiceCancelWorkflowProcedure:     RoleRun,
	weftv1connect.WorkflowServiceRetryWorkflowProcedure:      RoleRun,
	weftv1connect.WorkflowServiceResumeWorkflowProcedure:     RoleRun,
	weftv1connect.DefinitionServicePutDefinitionProcedure:    RoleAdmin,
	weftv1connect.DefinitionServicePauseDefinitionProcedure:  RoleAdmin,
	weftv1connect.DefinitionServiceResumeDefinitionProcedure: RoleAdmin,
}

// pathRole is the least role a request to path needs: a Weft procedure's
// from the table, RoleRead for server reflection (which describes the
// services), and RoleAdmin for any other path: a procedure added without
// a line in the table, anything mounted beside the API later, a path not
// in its clean form. (Health checks, /metrics, webhooks and the console's
// files are served without a token, before any role is asked for.)
func pathRole(p string) Role {
	if r, ok := procedureRoles[p]; ok {
		return r
	}
	if path.Clean(p) == p && (strings.HasPrefix(p, "/"+grpcreflect.ReflectV1ServiceName+"/") || strings.HasPrefix(p, "/"+grpcreflect.ReflectV1AlphaServiceName+"/")) {
		return RoleRead
	}
	return RoleAdmin
}
