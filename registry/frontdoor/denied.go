package frontdoor

import (
	"context"
	"encoding/json"
	"net/http"
)

// deniedMessage is the message of a DENIED error: the words docker and
// c/image print for it, with the reason in its detail.
const deniedMessage = "requested access to the resource is denied"

// Deny records why the token of ctx's request does not grant the access
// the request needs. The access controller calls it when its challenge
// says so (insufficient_scope); distribution then answers 401 with an
// UNAUTHORIZED error that says nothing more, and the front door answers
// that 401 with a DENIED error carrying why instead, keeping the
// challenge. why must be fit for a client to print: the access controller
// builds it. For a request that did not come through the front door it
// does nothing.
func Deny(ctx context.Context, why string) {
	if g, ok := ctx.Value(gateKey{}).(*gate); ok {
		g.denied.Store(&why)
	}
}

// denial returns what Deny recorded, or "".
func (g *gate) denial() string {
	if why := g.denied.Load(); why != nil {
		return *why
	}
	return ""
}

// serveDenied writes the DENIED registry error for why, with the headers
// distribution puts on its own errors (and its challenge, already set).
func serveDenied(w http.ResponseWriter, why string) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "application/json")
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: "DENIED", Message: deniedMessage, Detail: why}}})
}
