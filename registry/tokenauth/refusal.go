package tokenauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/auth/token"

	"stx-registry/registry/frontdoor"
)

// Bounds on what a refusal quotes from a token.
const (
	// maxWhyBytes is the longest reason quoted, the token server's own
	// bound on a reason.
	maxWhyBytes = 512
	// maxSubjectBytes is the longest subject quoted.
	maxSubjectBytes = 64
)

// refusal is distribution's insufficient_scope challenge, telling why: the
// token was verified but does not grant the access the request needs.
// The reason is the token server's, from the token's stx_refused claim
// (the policy lives there, not here), else a plain statement of what the
// token lacks.
//
// It sets two challenges. Clients read them differently: containerd
// prints the error of the first challenge only, so the first carries the
// reason as its error; docker and containers/image skip a challenge whose
// error they do not know and read the second, the standard one, with the
// reason as its error_description. The status stays 401: with 403,
// containers/image loses the reason of a HEAD, and so does containerd.
type refusal struct {
	realm, service string
	scope          string // the scope parameter, as distribution writes it
	why            string // printable ASCII without '"' or '\'
}

// Error is distribution's: its logs keep their words.
func (c refusal) Error() string { return token.ErrInsufficientScope.Error() }

// SetHeaders adds both challenges to w.
func (c refusal) SetHeaders(_ *http.Request, w http.ResponseWriter) {
	base := fmt.Sprintf("Bearer realm=%q,service=%q", c.realm, c.service)
	if c.scope != "" {
		base += fmt.Sprintf(",scope=%q", c.scope)
	}
	w.Header().Add("WWW-Authenticate", base+fmt.Sprintf(",error=%q", c.why))
	w.Header().Add("WWW-Authenticate", base+fmt.Sprintf(",error=%q,error_description=%q", "insufficient_scope", c.why))
}

// isInsufficientScope reports distribution's refusal of a verified token
// that lacks access. Its challenge type is not exported and errors.Is
// does not see through it, so the message is compared.
func isInsufficientScope(err error) bool {
	_, ok := err.(auth.Challenge)
	return ok && err.Error() == token.ErrInsufficientScope.Error()
}

// refuse builds the refusal of r, whose token distribution has verified
// and found short of access, and records why for the front door, which
// answers with a DENIED error carrying it.
func (tc *Controller) refuse(r *http.Request, access []auth.Access) refusal {
	why := explain(r.Header.Get("Authorization"), access)
	frontdoor.Deny(r.Context(), why)
	return refusal{realm: tc.realm, service: tc.service, scope: scopeParam(access), why: why}
}

// verifiedClaims are the claims a refusal reads from a token distribution
// has already verified: nothing here is trusted before that.
type verifiedClaims struct {
	Subject string `json:"sub"`
	Access  []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	} `json:"access"`
	// Refused is the token server's stx_refused claim: per resource, the
	// actions its policy refused and why.
	Refused []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
		Reason  string   `json:"reason"`
	} `json:"stx_refused"`
}

// explain says why the verified bearer token in authorization does not
// grant access: the token server's reason for the first access it lacks,
// else "token for SUBJECT grants no ACTION on NAME". The result is
// quotable and at most maxWhyBytes.
func explain(authorization string, access []auth.Access) string {
	var c verifiedClaims
	_, raw, _ := strings.Cut(authorization, " ")
	if _, rest, ok := strings.Cut(raw, "."); ok {
		if payload, _, ok := strings.Cut(rest, "."); ok {
			if b, err := base64.RawURLEncoding.DecodeString(payload); err == nil {
				_ = json.Unmarshal(b, &c) // unreadable: the plain statement below
			}
		}
	}
	if len(access) == 0 {
		return "the token does not grant this request"
	}
	missing := access[0]
	for _, a := range access {
		if !c.grants(a) {
			missing = a
			break
		}
	}
	for _, f := range c.Refused {
		if f.Type == missing.Type && f.Name == missing.Name && slices.Contains(f.Actions, missing.Action) && f.Reason != "" {
			return quotable(f.Reason, maxWhyBytes)
		}
	}
	who := "the token"
	if c.Subject != "" {
		who = "token for " + quotable(c.Subject, maxSubjectBytes)
	}
	return who + " grants no " + quotable(missing.Action, maxSubjectBytes) + " on " + quotable(missing.Name, maxWhyBytes/2)
}

// grants reports whether the access claim holds a, as distribution reads
// it: the action or "*" on the same type and name.
func (c *verifiedClaims) grants(a auth.Access) bool {
	for _, g := range c.Access {
		if g.Type == a.Type && g.Name == a.Name && (slices.Contains(g.Actions, a.Action) || slices.Contains(g.Actions, "*")) {
			return true
		}
	}
	return false
}

// scopeParam writes access as a challenge's scope: one TYPE:NAME:ACTIONS
// per resource, in the order first asked, separated by spaces.
func scopeParam(access []auth.Access) string {
	var scopes []string
	actions := map[string][]string{}
	for _, a := range access {
		key := a.Type + ":" + a.Name
		if _, ok := actions[key]; !ok {
			scopes = append(scopes, key)
		}
		if !slices.Contains(actions[key], a.Action) {
			actions[key] = append(actions[key], a.Action)
		}
	}
	for i, key := range scopes {
		scopes[i] = key + ":" + strings.Join(actions[key], ",")
	}
	return strings.Join(scopes, " ")
}

// quotable is s fit for a quoted header parameter and a client's screen:
// printable ASCII without '"' or '\' (others become '?'), at most max
// bytes (a longer s is cut and ends in "...").
func quotable(s string, max int) string {
	if len(s) > max {
		s = s[:max-3] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}
