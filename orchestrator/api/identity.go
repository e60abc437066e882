package api

import (
	"context"
	"net/http"
)

// Anonymous is the identity of a request that carried neither a bearer
// token nor a verified client certificate.
const Anonymous = "anonymous"

type identityKey struct{}

// identify wraps next so that every request's context carries the identity
// of whoever sent it (see requestIdentity); the handlers read it with
// identity. It runs inside RequireTokens, which names the token.
func identify(next http.Handler) http.Handler { return identified{next} }

// identified is identify's handler: a type of its own rather than a
// closure, which saves a frame on every call's stack.
type identified struct{ next http.Handler }

// A request from no one in particular (most, without tokens or client
// certificates) goes on as it came: identity reads Anonymous from a
// context without one, and a copy of the request and its context for
// each call is memory every open await would hold.
func (h identified) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id := requestIdentity(r); id != Anonymous {
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, id))
	}
	h.next.ServeHTTP(w, r)
}

// requestIdentity says who sent r: the name of the bearer token
// RequireTokens accepted, else "cert:" and the subject of the client
// certificate the TLS handshake verified (e.g. "cert:CN=alice"), else
// Anonymous. Nothing else in the request counts, so a caller cannot choose
// it. A certificate that was presented but not verified (a server that
// only requests one) names no one.
func requestIdentity(r *http.Request) string {
	if name := TokenName(r.Context()); name != "" {
		return name
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return "cert:" + r.TLS.VerifiedChains[0][0].Subject.String()
	}
	return Anonymous
}

// identity returns the identity identify put in ctx: Anonymous for a
// context without one (a handler called directly, not through Handler).
func identity(ctx context.Context) string {
	if id, _ := ctx.Value(identityKey{}).(string); id != "" {
		return id
	}
	return Anonymous
}
