package api

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
)

// A request's identity is its token's name, else its verified client
// certificate's subject, else anonymous; nothing the caller writes in the
// request counts.
func TestRequestIdentity(t *testing.T) {
	var got string
	h := identify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = identity(r.Context()) }))
	withTokens := RequireTokens(Tokens{"alice": {Hash: HashToken("alice-secret"), Role: RoleAdmin}}, nil, h)
	alice := &x509.Certificate{Subject: pkix.Name{CommonName: "alice", Organization: []string{"Example"}}}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice}, VerifiedChains: [][]*x509.Certificate{{alice}}}
	presented := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice}}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		path    string
		token   string
		tls     *tls.ConnectionState
		want    string
	}{
		{"a token", withTokens, "/weft.v1.WorkflowService/StartWorkflow", "alice-secret", nil, "alice"},
		{"a token over mTLS", withTokens, "/weft.v1.WorkflowService/StartWorkflow", "alice-secret", verified, "alice"},
		{"a verified certificate", h, "/weft.v1.WorkflowService/StartWorkflow", "", verified, "cert:CN=alice,O=Example"},
		{"an unverified certificate", h, "/weft.v1.WorkflowService/StartWorkflow", "", presented, Anonymous},
		{"nothing", h, "/weft.v1.WorkflowService/StartWorkflow", "", nil, Anonymous},
		{"a token the API does not check", h, "/weft.v1.WorkflowService/StartWorkflow", "alice-secret", nil, Anonymous},
		{"a webhook with tokens", withTokens, "/hooks/x", "", nil, Anonymous},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = ""
			r := httptest.NewRequest(http.MethodPost, tc.path, nil)
			r.TLS = tc.tls
			r.Header.Set("X-Weft-Identity", "mallory")
			r.Header.Set("Identity", "mallory")
			if tc.token != "" {
				r.Header.Set("Authorization", "Bearer "+tc.token)
			}
			w := httptest.NewRecorder()
			tc.handler.ServeHTTP(w, r)
			if w.Code != http.StatusOK || got != tc.want {
				t.Errorf("identity %q (status %d), want %q", got, w.Code, tc.want)
			}
		})
	}
	if id := identity(t.Context()); id != Anonymous {
		t.Errorf("identity of a context without one = %q, want %q", id, Anonymous)
	}
}

// No request message of the API's services has a field through which a
// caller could name who it is: the server records that itself.
func TestNoRequestCarriesIdentity(t *testing.T) {
	forbidden := map[protoreflect.Name]bool{"identity": true, "put_by": true}
	seen := map[protoreflect.FullName]bool{}
	var walk func(path string, md protoreflect.MessageDescriptor)
	walk = func(path string, md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		fields := md.Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			if forbidden[f.Name()] {
				t.Errorf("%s has a field %s: a caller could set who it is", path, f.Name())
			}
			if f.Message() != nil {
				walk(path+"."+string(f.Name()), f.Message())
			}
		}
	}
	methods := 0
	for _, fd := range []protoreflect.FileDescriptor{weftv1.File_weft_v1_workflow_proto,
		weftv1.File_weft_v1_definition_proto, weftv1.File_weft_v1_trigger_proto} {
		services := fd.Services()
		for i := range services.Len() {
			ms := services.Get(i).Methods()
			for j := range ms.Len() {
				m := ms.Get(j)
				methods++
				walk(string(m.FullName())+"("+string(m.Input().Name())+")", m.Input())
			}
		}
	}
	if methods < 14 || !seen["weft.v1.StartWorkflowRequest"] || !seen["weft.v1.SignalWorkflowRequest"] || !seen["weft.v1.PutDefinitionRequest"] {
		t.Fatalf("walked %d methods and %d messages: the services were not all found", methods, len(seen))
	}
	// The fields are where the server shows them: in responses.
	if weftv1.File_weft_v1_workflow_proto.Messages().ByName("HistoryEvent").Fields().ByName("identity") == nil ||
		weftv1.File_weft_v1_definition_proto.Messages().ByName("DefinitionInfo").Fields().ByName("put_by") == nil {
		t.Error("HistoryEvent.identity or DefinitionInfo.put_by is missing")
	}
}
