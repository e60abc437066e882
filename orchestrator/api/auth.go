package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
)

// Tokens maps a bearer token's name to the token as the API knows it.
type Tokens map[string]Token

// Token is an accepted bearer token: the SHA-256 of the token (only the
// hashes are kept, so a tokens file is no secret by itself) and what it
// may do.
type Token struct {
	Hash [32]byte
	Role Role
}

// TokenPrefix starts every token NewToken makes, so a leaked one is easy to
// recognise.
const TokenPrefix = "weft_"

// NewToken returns a new random bearer token: TokenPrefix followed by 32
// random bytes in unpadded base64url.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken returns the SHA-256 of token, as kept in Tokens.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// TokenLine returns the tokens-file line for a token named name:
// "name:<sha256 hex>", and ":<role>" after it for a role other than
// RoleAdmin.
func TokenLine(name, token string, role Role) string {
	h := HashToken(token)
	line := name + ":" + hex.EncodeToString(h[:])
	if role != RoleAdmin {
		line += ":" + role.String()
	}
	return line
}

// CheckTokenName reports whether name can name a token: 1-64 letters,
// digits, '.', '_', '-' or '@'.
func CheckTokenName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("token name %q must be 1-64 characters long", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Errorf("token name %q: use letters, digits, '.', '_', '-' or '@'", name)
		}
	}
	if name == Anonymous {
		return fmt.Errorf("token name %q is what histories record for callers without a token: choose another", name)
	}
	return nil
}

// LoadTokens reads a tokens file: one "name:<sha256 hex of the token>" per
// line, with ":<role>" after it for a token that may do less than
// everything (ParseRole); blank lines and lines starting with '#' are
// ignored. A malformed line, an unknown role, a repeated name or hash, or a
// file without tokens is an error naming the file and the line.
func LoadTokens(file string) (Tokens, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tokens := Tokens{}
	seen := map[[32]byte]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, sum, ok := strings.Cut(line, ":")
		sum, roleText, hasRole := strings.Cut(sum, ":")
		name, sum = strings.TrimSpace(name), strings.TrimSpace(sum)
		if !ok {
			return nil, fmt.Errorf("%s line %d: want name:<sha256 hex of the token>[:role] (`weft token create NAME` prints one)", file, n)
		}
		if err := CheckTokenName(name); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", file, n, err)
		}
		b, err := hex.DecodeString(sum)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("%s line %d: token %s: the hash must be 64 hex digits (the SHA-256 of the token), not the token itself", file, n, name)
		}
		h := [32]byte(b)
		role := RoleAdmin
		if hasRole {
			if role, err = ParseRole(strings.TrimSpace(roleText)); err != nil {
				return nil, fmt.Errorf("%s line %d: token %s: %w", file, n, name, err)
			}
		}
		if _, dup := tokens[name]; dup {
			return nil, fmt.Errorf("%s line %d: token name %q appears twice", file, n, name)
		}
		if other, dup := seen[h]; dup {
			return nil, fmt.Errorf("%s line %d: token %s has the same hash as token %s", file, n, name, other)
		}
		tokens[name], seen[h] = Token{Hash: h, Role: role}, name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%s: no tokens (add lines name:<sha256 hex>; `weft token create NAME` prints one)", file)
	}
	return tokens, nil
}

// tokenEntry is one accepted token.
type tokenEntry struct {
	name string
	Token
}

// tokenChecker finds which token, if any, a presented bearer token is.
type tokenChecker []tokenEntry

func newTokenChecker(tokens Tokens) tokenChecker {
	c := make(tokenChecker, 0, len(tokens))
	for name, t := range tokens {
		c = append(c, tokenEntry{name, t})
	}
	sort.Slice(c, func(i, j int) bool { return c[i].name < c[j].name })
	return c
}

// match returns the entry of token. It compares token's hash with every
// entry in constant time, so its timing tells nothing about the tokens.
func (c tokenChecker) match(token string) (tokenEntry, bool) {
	h := HashToken(token)
	found := -1
	for i := range c {
		if subtle.ConstantTimeCompare(h[:], c[i].Hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return tokenEntry{}, false
	}
	return c[found], true
}

type tokenNameKey struct{}

// TokenName returns the name of the bearer token that authenticated the
// request ctx belongs to, or "" without authentication.
func TokenName(ctx context.Context) string {
	name, _ := ctx.Value(tokenNameKey{}).(string)
	return name
}

// openPath reports whether requests to p need no bearer token: gRPC health
// checks, metrics (which carry no payloads), and webhooks, which have
// their own HMAC signatures.
func openPath(p string) bool {
	if path.Clean(p) != p {
		return false // let the mux redirect to the clean path, then decide
	}
	return strings.HasPrefix(p, "/"+grpchealth.HealthV1ServiceName+"/") || strings.HasPrefix(p, "/hooks/") || p == MetricsPath
}

// howToAuthenticate ends every authentication error.
const howToAuthenticate = `send the header "Authorization: Bearer <token>" (weft CLI: --token or WEFT_TOKEN; grpcurl: -H 'authorization: Bearer <token>')`

// RequireTokens wraps next so that every request needs a bearer token from
// tokens, except gRPC health checks, /metrics and webhooks (/hooks/, which
// check their own HMAC signatures). Rejections are written as Unauthenticated
// errors in the request's protocol (Connect, gRPC or gRPC-Web; other
// requests get a Connect JSON error with status 401) before the body is
// read. A token whose role does not allow the call (Role) is answered
// PermissionDenied the same way. An accepted request's context carries the
// token's name (TokenName).
func RequireTokens(tokens Tokens, log *slog.Logger, next http.Handler) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	checker := newTokenChecker(tokens)
	errs := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		tok, problem := authenticate(checker, r.Header.Get("Authorization"))
		if problem != "" {
			log.Info("API request rejected", "reason", problem, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
			_ = errs.Write(w, r, connect.NewError(connect.CodeUnauthenticated, errors.New(problem+": "+howToAuthenticate)))
			return
		}
		name := tok.name
		if !tok.Role.allows(r.URL.Path) {
			log.Info("API request refused: the token's role does not allow it", "token", name, "role", tok.Role, "path", r.URL.Path, "remote", r.RemoteAddr)
			_ = errs.Write(w, r, connect.NewError(connect.CodePermissionDenied,
				fmt.Errorf("token %s has role %s, which may not call %s (it needs role %s: see weft token create --role)", name, tok.Role, r.URL.Path, pathRole(r.URL.Path))))
			return
		}
		log.Debug("API request authenticated", "token", name, "path", r.URL.Path)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, name)))
	})
}

// authenticate returns the token in an Authorization header value, or
// what is wrong with it.
func authenticate(c tokenChecker, header string) (tok tokenEntry, problem string) {
	if header == "" {
		return tok, "missing bearer token"
	}
	scheme, token, _ := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return tok, "the Authorization header is not a bearer token"
	}
	tok, ok := c.match(token)
	if !ok {
		return tok, "invalid bearer token"
	}
	return tok, ""
}

// RequireLoopbackHost serves only requests that name a loopback host
// (localhost, a name under .localhost, or a loopback address, with any
// port) and answers others 421 Misdirected Request. An API open to anyone
// on a loopback address serves this machine; a web page elsewhere whose
// name resolves to 127.0.0.1 (DNS rebinding) would reach it from the
// browser of someone on it, but names its own host.
func RequireLoopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) {
			http.Error(w, "this API serves requests to localhost only (it has no --auth-tokens or client certificates): use http://localhost:<port> or http://127.0.0.1:<port>", http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !loopbackOrigin(o) {
			// A web page elsewhere names localhost itself: a cross-site
			// POST that needs no preflight (a webhook takes any body)
			// would reach the API from the browser of someone on this
			// machine. Browsers say where such a request comes from;
			// the console's own calls come from a loopback origin, and
			// outside services send no Origin.
			http.Error(w, "this API serves web pages on localhost only (it has no --auth-tokens or client certificates): the request's Origin is another site", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackOrigin reports whether origin (an Origin header: scheme://host[:port])
// is a page served from this machine's loopback interface; "null" and
// anything unparsable are not.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && loopbackHost(u.Host)
}

// loopbackHost reports whether host (a Host header: a name or address,
// with or without a port) names this machine's loopback interface.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
