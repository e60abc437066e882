package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats-server/v2/server"

	weftv1 "github.com/weftworks/weft/gen/weft/v1"
	"github.com/weftworks/weft/gen/weft/v1/weftv1connect"
	"github.com/weftworks/weft/orchestrator/api"
)

func TestTokenCreate(t *testing.T) {
	out, err := runCLI(t, "token", "create", "ci-bot")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	var token, line string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "token:"); ok {
			token = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "auth-tokens line:"); ok {
			line = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(token, "weft_") || len(token) < 40 {
		t.Fatalf("token %q\n%s", token, out)
	}
	h := api.HashToken(token)
	if line != "ci-bot:"+hex.EncodeToString(h[:]) {
		t.Fatalf("line %q for token %q", line, token)
	}
	file := writeTestFile(t, "tokens", line+"\n")
	if tokens, err := api.LoadTokens(file); err != nil || tokens["ci-bot"] != (api.Token{Hash: h, Role: api.RoleAdmin}) {
		t.Fatalf("LoadTokens of the printed line: %v %v", tokens, err)
	}
	if out2, _ := runCLI(t, "token", "create", "ci-bot"); strings.Contains(out2, token) {
		t.Fatal("token create printed the same token twice")
	}
	if _, err := runCLI(t, "token", "create", "bad name"); err == nil || !strings.Contains(err.Error(), "token name") {
		t.Fatalf("token create with a bad name: %v", err)
	}

	// A role other than admin is on the line, and read back.
	out, err = runCLI(t, "token", "create", "wall", "--role", "read")
	if err != nil {
		t.Fatalf("token create --role read: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "auth-tokens line:"); ok {
			line = strings.TrimSpace(v)
		}
	}
	if !strings.HasPrefix(line, "wall:") || !strings.HasSuffix(line, ":read") {
		t.Fatalf("token create --role read printed the line %q", line)
	}
	if tokens, err := api.LoadTokens(writeTestFile(t, "tokens", line+"\n")); err != nil || tokens["wall"].Role != api.RoleRead {
		t.Fatalf("LoadTokens of the printed line: %v %v", tokens, err)
	}
	if _, err := runCLI(t, "token", "create", "x", "--role", "root"); err == nil || !strings.Contains(err.Error(), "--role: role \"root\"") {
		t.Fatalf("token create --role root: %v", err)
	}
}

// Bad security flags fail at startup, before anything starts.
func TestTokenAndTLSFlagErrors(t *testing.T) {
	good := api.TokenLine("ci", "x", api.RoleAdmin)
	bad := writeTestFile(t, "tokens", "# tokens\n"+good+"\nops:not-a-hash\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--auth-tokens", bad}, "line 3"},
		{[]string{"api", "--nats-url", "nats://127.0.0.1:1", "--auth-tokens", bad}, "line 3"},
		{[]string{"server", "--auth-tokens", filepath.Join(t.TempDir(), "none")}, "--auth-tokens"},
		{[]string{"server", "--tls-cert", bad}, "--tls-cert and --tls-key go together"},
		{[]string{"server", "--tls-client-ca", bad}, "--tls-client-ca needs --tls-cert"},
		{[]string{"server", "--tls-cert", bad, "--tls-key", bad}, "--tls-cert/--tls-key"},
		{[]string{"server", "--max-reads", "-1"}, "--max-reads -1: give 0"},
		{[]string{"server", "--nats-creds", bad}, "--nats-creds needs --nats-url"},
		{[]string{"executor", "--nats-url", "nats://127.0.0.1:1", "--nats-password", "p"}, "--nats-password needs --nats-user"},
		{[]string{"orchestrator", "--nats-url", "nats://127.0.0.1:1", "--nats-creds", bad, "--nats-user", "u"}, "not both"},
		{[]string{"def", "list", "--tls-ca", bad}, "--tls-ca needs an https:// --server"},
		{[]string{"def", "list", "--server", "https://127.0.0.1:1", "--tls-key", bad}, "--tls-cert and --tls-key go together"},
		{[]string{"get", "x", "--server", "https://127.0.0.1:1", "--tls-ca", bad}, "no PEM certificates"},
	} {
		if _, err := runCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("weft %s: %v; want an error containing %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func writeTestFile(t *testing.T, name, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, as PEM files.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	writeKey := func(name string, k *ecdsa.PrivateKey) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, "PRIVATE KEY", der)
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft test CA " + dir},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, k *ecdsa.PrivateKey) []byte {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	serverKey, clientKey := key(), key()
	return testPKI{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", leaf(2, "weft server", x509.ExtKeyUsageServerAuth, serverKey)),
		serverKey:  writeKey("server-key.pem", serverKey),
		clientCert: write("client.pem", "CERTIFICATE", leaf(3, "weft client", x509.ExtKeyUsageClientAuth, clientKey)),
		clientKey:  writeKey("client-key.pem", clientKey),
	}
}

// `weft server` with TLS, client certificates and tokens, and the CLI
// talking to it.
func TestTLSClientCertsAndTokensCLI(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	other := newTestPKI(t, t.TempDir())
	token, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokens := writeTestFile(t, "tokens", "# CI\n"+api.TokenLine("ci", token, api.RoleAdmin)+"\n")
	addr := freeAddr(t)
	url := "https://" + addr
	client := []string{"--server=" + url, "--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}
	startServer(t, []string{"--addr", addr, "--auth-tokens", tokens,
		"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca},
		append(client, "--token", token))

	file := writeTestFile(t, "greet.yaml", "name: greet\nsteps: [ { id: hi, task: echo, input: \"${ 'hi ' + input.name }\" } ]\n")
	out, err := runCLI(t, append([]string{"def", "apply", "-f", file, "--token", token}, client...)...)
	if err != nil || !strings.Contains(out, "greet revision 1") {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	// --wait follows the run over a stream.
	t.Setenv("WEFT_TOKEN", token)
	out, err = runCLI(t, append([]string{"start", "greet", "--id", "greet-1", "--input", `{"name": "ada"}`, "--wait"}, client...)...)
	if err != nil || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, `"hi ada"`) {
		t.Fatalf("start --wait with WEFT_TOKEN: %v\n%s", err, out)
	}
	// The token names who started the run, over the client certificate.
	out, err = runCLI(t, append([]string{"history", "greet-1"}, client...)...)
	if first, _, _ := strings.Cut(out, "\n"); err != nil || !strings.Contains(first, "WorkflowStarted  by=ci  ") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	t.Setenv("WEFT_TOKEN", "")
	out, err = runCLI(t, append([]string{"def", "list", "--token", token}, client...)...)
	if err != nil || !strings.Contains(out, "greet") {
		t.Fatalf("def list: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		what string
		args []string
		want string // in the error
	}{
		{"no token", append([]string{"def", "list"}, client...), "unauthenticated: missing bearer token"},
		{"a wrong token", append([]string{"def", "list", "--token", "weft_wrong"}, client...), "unauthenticated: invalid bearer token"},
		{"no client certificate", []string{"def", "list", "--server=" + url, "--tls-ca", pki.ca, "--token", token}, "TLS connection failed"},
		{"another CA's client certificate", []string{"def", "list", "--server=" + url, "--tls-ca", pki.ca,
			"--tls-cert", other.clientCert, "--tls-key", other.clientKey, "--token", token}, "TLS connection failed"},
		{"an untrusted server", []string{"def", "list", "--server=" + url, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey,
			"--token", token}, "certificate signed by unknown authority"},
		{"plain HTTP", []string{"def", "list", "--server=http://" + addr, "--token", token}, "400"},
	} {
		out, err := runCLI(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("def list with %s: %v; want an error containing %q\n%s", tc.what, err, tc.want, out)
		}
	}

	// Connect and gRPC clients get HTTP/2 over TLS.
	tc, err := clientTLS(pki.ca, pki.clientCert, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: &bearer{token: token, next: tr}}
	wf := weftv1connect.NewWorkflowServiceClient(hc, url, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := wf.ListWorkflows(ctx, connect.NewRequest(&weftv1.ListWorkflowsRequest{})); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/grpc.health.v1.Health/Check", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("health over TLS: %s %s", resp.Proto, resp.Status)
	}
}

// Over mTLS without tokens, a run's history and its definition name the
// client certificate that started and put them.
func TestClientCertIdentityCLI(t *testing.T) {
	pki := newTestPKI(t, t.TempDir())
	addr := freeAddr(t)
	client := []string{"--server=https://" + addr, "--tls-ca", pki.ca, "--tls-cert", pki.clientCert, "--tls-key", pki.clientKey}
	startServer(t, []string{"--addr", addr, "--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.ca}, client)

	file := writeTestFile(t, "greet.yaml", "name: greet\nsteps: [ { id: hi, task: echo, input: \"${ input }\" } ]\n")
	if out, err := runCLI(t, append([]string{"def", "apply", "-f", file}, client...)...); err != nil {
		t.Fatalf("def apply: %v\n%s", err, out)
	}
	out, err := runCLI(t, append([]string{"def", "list"}, client...)...)
	if err != nil || !regexp.MustCompile(`(?m)^greet\s+1\s+\S+\s+cert:CN=weft client\s+-$`).MatchString(out) {
		t.Fatalf("def list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, append([]string{"start", "greet", "--id", "greet-1", "--wait"}, client...)...); err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"history", "greet-1"}, client...)...)
	if first, _, _ := strings.Cut(out, "\n"); err != nil || !strings.Contains(first, "WorkflowStarted  by=cert:CN=weft client  ") {
		t.Fatalf("history: %v\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"history", "greet-1", "--json"}, client...)...)
	if first, _, _ := strings.Cut(out, "\n"); err != nil || !strings.Contains(first, `"identity":"cert:CN=weft client"`) && !strings.Contains(first, `"identity": "cert:CN=weft client"`) {
		t.Fatalf("history --json: %v\n%s", err, out)
	}
}

// The parts connect to a NATS server that wants a user and password.
func TestNATSUserPasswordFlags(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		Username: "weft", Password: "n4ts-pass", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS not ready")
	}
	natsURL := ns.ClientURL()
	if _, err := runCLI(t, "api", "--nats-url", natsURL, "--nats-user", "weft", "--nats-password", "wrong", "--addr", "127.0.0.1:0", "--log-level", "error"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("api with a wrong NATS password: %v", err)
	}

	t.Setenv("WEFT_NATS_PASSWORD", "n4ts-pass")
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		done <- run(ctx, []string{"api", "--nats-url", natsURL, "--nats-user", "weft", "--addr", addr, "--log-level", "error"}, &out, &out)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("api: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := runCLI(t, "def", "list", "--server", addr)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("api stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("api did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// weft bench against a server that requires tokens sends the client
// commands' --token (or WEFT_TOKEN), and a token of too small a role is
// refused as for those commands.
func TestBenchSendsToken(t *testing.T) {
	admin, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	read, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tokens := writeTestFile(t, "tokens", api.TokenLine("ops", admin, api.RoleAdmin)+"\n"+api.TokenLine("wall", read, api.RoleRead)+"\n")
	addr := freeAddr(t)
	server := "--server=http://" + addr
	startServer(t, []string{"--addr", addr, "--auth-tokens", tokens}, []string{server, "--token", admin})

	bench := []string{"bench", server, "-n", "4", "-c", "2", "--json", "--quiet"}
	out, err := runCLI(t, append(bench, "--token", admin)...)
	if err != nil {
		t.Fatalf("bench --token: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["workflows"] != 4.0 {
		t.Fatalf("bench --token printed %q: %v", out, err)
	}
	t.Setenv("WEFT_TOKEN", admin)
	if out, err := runCLI(t, bench...); err != nil {
		t.Fatalf("bench with WEFT_TOKEN: %v\n%s", err, out)
	}
	t.Setenv("WEFT_TOKEN", "")
	if _, err := runCLI(t, bench...); err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("bench without a token: %v; want unauthenticated", err)
	}
	if _, err := runCLI(t, append(bench, "--token", read)...); err == nil || !strings.Contains(err.Error(), "permission_denied") {
		t.Fatalf("bench with a read token: %v; want permission_denied", err)
	}
	// WEFT_SERVER names the API to measure, as for the other client
	// commands: a bench without --server measures it, not an embedded Weft.
	t.Setenv("WEFT_SERVER", "http://"+addr)
	if _, err := runCLI(t, "bench", "-n", "4", "-c", "2", "--json", "--quiet"); err == nil || !strings.Contains(err.Error(), "unauthenticated") {
		t.Fatalf("bench with WEFT_SERVER and no token: %v; want unauthenticated from that server", err)
	}
}
