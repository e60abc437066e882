package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// Every procedure of Weft's services has a role in the table, every one
// that declares no side effects is RoleRead, and the table names no
// procedure the services do not have.
func TestEveryProcedureHasARole(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range []protoreflect.FileDescriptor{weftv1.File_weft_v1_workflow_proto, weftv1.File_weft_v1_definition_proto, weftv1.File_weft_v1_trigger_proto} {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				p := "/" + string(svc.FullName()) + "/" + string(m.Name())
				seen[p] = true
				role, ok := procedureRoles[p]
				if !ok {
					t.Errorf("%s has no role in procedureRoles", p)
					continue
				}
				opts, _ := m.Options().(*descriptorpb.MethodOptions)
				if opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS && role != RoleRead {
					t.Errorf("%s declares no side effects, yet needs role %s", p, role)
				}
			}
		}
	}
	for p := range procedureRoles {
		if !seen[p] {
			t.Errorf("procedureRoles names %s, which no service has", p)
		}
	}
}

// A token may call what its role allows, and is answered PermissionDenied,
// saying which role the call needs, for the rest; server reflection needs
// only RoleRead, and any path not in the table (a procedure added later,
// anything mounted beside the API) needs RoleAdmin. A token made without
// a role has the least: it may only read.
func TestTokenRoles(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+TokenName(r.Context()))
	})
	srv := httptest.NewServer(RequireTokens(Tokens{
		"boss": {Hash: HashToken("boss-secret"), Role: RoleAdmin},
		"bot":  {Hash: HashToken("bot-secret"), Role: RoleRun},
		"wall": {Hash: HashToken("wall-secret"), Role: RoleRead},
		"bare": {Hash: HashToken("bare-secret")},
	}, slog.New(slog.DiscardHandler), next))
	defer srv.Close()
	call := func(path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const (
		get    = "/weft.v1.WorkflowService/GetWorkflow"
		watch  = "/weft.v1.WorkflowService/WatchWorkflow"
		start  = "/weft.v1.WorkflowService/StartWorkflow"
		cancel = "/weft.v1.WorkflowService/CancelWorkflow"
		put    = "/weft.v1.DefinitionService/PutDefinition"
		pause  = "/weft.v1.DefinitionService/PauseDefinition"
		newer  = "/weft.v1.WorkflowService/DeleteWorkflow"
		reflec = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
		alpha  = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
		other  = "/weftadmin.v1.Ops/Wipe"
	)
	allowed := map[string][]string{
		"boss": {get, watch, start, cancel, put, pause, newer, reflec, alpha, other, "/debug/vars"},
		"bot":  {get, watch, start, cancel, reflec},
		"wall": {get, watch, reflec, alpha},
		"bare": {get, watch, reflec},
	}
	refused := map[string]map[string]string{
		"bot":  {put: "admin", pause: "admin", newer: "admin", other: "admin", "/assets/../weft.v1.DefinitionService/PutDefinition": "admin"},
		"bare": {start: "run", put: "admin", other: "admin"},
		"wall": {start: "run", cancel: "run", put: "admin", newer: "admin", other: "admin", "/debug/vars": "admin", "/grpc.reflection.v1.ServerReflection/../x": "admin"},
	}
	for name, paths := range allowed {
		for _, p := range paths {
			if code, body := call(p, name+"-secret"); code != http.StatusOK || body != "ok "+name {
				t.Errorf("%s calling %s: %d %s", name, p, code, body)
			}
		}
	}
	for name, paths := range refused {
		for p, needs := range paths {
			code, body := call(p, name+"-secret")
			var e struct{ Code, Message string }
			_ = json.Unmarshal([]byte(body), &e)
			if code != http.StatusForbidden || e.Code != "permission_denied" || !strings.Contains(e.Message, "needs role "+needs) || !strings.Contains(e.Message, "token "+name) {
				t.Errorf("%s calling %s: %d %s; want permission_denied naming role %s", name, p, code, body, needs)
			}
		}
	}
}
