package e2e

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// maxReplyBytes bounds a reply body read by the tests.
const maxReplyBytes = 1 << 20

// reply is one HTTP answer, body read.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends req and reads the answer; a transport error fails the test.
func (e *env) do(t testing.TB, req *http.Request) reply {
	t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Redacted(), err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func newRequest(t testing.TB, method, rawURL string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return req
}

// tokenReply is the token server's JSON answer.
type tokenReply struct {
	Token       string  `json:"token"`
	AccessToken string  `json:"access_token"`
	ExpiresIn   int     `json:"expires_in"`
	IssuedAt    string  `json:"issued_at"`
	Scope       *string `json:"scope"`
	Error       string  `json:"error"`
}

// tokenGet asks for a token the way docker and skopeo do: GET with Basic
// auth, one scope parameter per scope.
func (e *env) tokenGet(t testing.TB, user, password string, scopes ...string) (reply, tokenReply) {
	t.Helper()
	q := url.Values{"service": {e.service()}, "account": {user}, "client_id": {"e2e"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req := newRequest(t, http.MethodGet, e.realm()+"?"+q.Encode(), nil)
	req.SetBasicAuth(user, password)
	r := e.do(t, req)
	var tr tokenReply
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &tr); err != nil {
			t.Fatalf("token reply: %v: %s", err, r.body)
		}
	}
	return r, tr
}

// tokenFor returns a token for user with the given scopes, failing the test
// unless the token server answers 200. What is granted is up to the policy.
func (e *env) tokenFor(t testing.TB, user string, scopes ...string) string {
	t.Helper()
	r, tr := e.tokenGet(t, user, e.passwords[user], scopes...)
	if r.status != http.StatusOK || tr.Token == "" {
		t.Fatalf("token for %s %v: status %d: %s", user, scopes, r.status, r.body)
	}
	return tr.Token
}

// access is one entry of a token's "access" claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claims decodes a JWT's payload without checking the signature: the
// registry checks that, the tests only read what was granted.
type claims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience any      `json:"aud"`
	Access   []access `json:"access"`
}

func decodeClaims(t testing.TB, jwt string) claims {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return c
}

// granted returns the actions the token grants on typ:name, sorted.
func granted(t testing.TB, jwt, typ, name string) []string {
	t.Helper()
	var acts []string
	for _, a := range decodeClaims(t, jwt).Access {
		if a.Type == typ && a.Name == name {
			acts = append(acts, a.Actions...)
		}
	}
	slices.Sort(acts)
	return acts
}

// api sends method on https://REG+path with the bearer token (none
// when token is empty).
func (e *env) api(t testing.TB, method, path, token string, body io.Reader, header http.Header) reply {
	t.Helper()
	req := newRequest(t, method, "https://"+e.registryAddr+path, body)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(t, req)
}

// isJSON reports whether the reply says it is JSON and parses as an object
// with a non-empty "error".
func jsonError(r reply) (string, bool) {
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return "", false
	}
	var v struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(r.body, &v) != nil || v.Error == "" {
		return "", false
	}
	return v.Error, true
}
