package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// challengeParam picks one quoted parameter out of a Bearer challenge.
func challengeParam(challenge, key string) string {
	m := regexp.MustCompile(key + `="([^"]*)"`).FindStringSubmatch(challenge)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestDockerLogin replays docker login's requests to check what a real
// docker engine cannot show: the exact shape of the /v2/ challenge and of
// the token reply to the token GET with Basic auth and offline_token, and
// the JSON error of a refresh_token grant. It also checks the reply to
// containerd's POST password grant. TestDocker drives the real engine
// through login, pulls and refusals.
func TestDockerLogin(t *testing.T) {
	e := sharedEnv(t)

	r := e.api(t, http.MethodGet, "/v2/", "", nil, nil)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without a token: status %d, want 401", r.status)
	}
	challenge := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(challenge, "Bearer ") {
		t.Fatalf("challenge %q is not Bearer", challenge)
	}
	realm, service := challengeParam(challenge, "realm"), challengeParam(challenge, "service")
	if realm != e.realm() || service != e.service() {
		t.Fatalf("challenge realm %q service %q, want %q and %q", realm, service, e.realm(), e.service())
	}

	// docker login: account, client_id, offline_token, service; Basic auth.
	q := url.Values{"account": {"user1"}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {service}}
	req := newRequest(t, http.MethodGet, realm+"?"+q.Encode(), nil)
	req.SetBasicAuth("user1", e.passwords["user1"])
	r = e.do(t, req)
	if r.status != http.StatusOK {
		t.Fatalf("docker login token GET: status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("token reply Content-Type %q, want application/json", ct)
	}
	var tr tokenReply
	if err := json.Unmarshal(r.body, &tr); err != nil {
		t.Fatalf("token reply: %v: %s", err, r.body)
	}
	if tr.Token == "" || tr.AccessToken != tr.Token {
		t.Errorf("token %q and access_token %q: want both, equal", abbrev(tr.Token), abbrev(tr.AccessToken))
	}
	if tr.ExpiresIn < 60 {
		t.Errorf("expires_in %d, want at least 60", tr.ExpiresIn)
	}
	issued, err := time.Parse(time.RFC3339, tr.IssuedAt)
	if err != nil {
		t.Errorf("issued_at %q is not RFC 3339: %v", tr.IssuedAt, err)
	} else if d := time.Since(issued); d < -time.Minute || d > time.Minute {
		t.Errorf("issued_at %s is %v away from now", tr.IssuedAt, d)
	}
	c := decodeClaims(t, tr.Token)
	if c.Subject != "user1" {
		t.Errorf("token subject %q, want user1", c.Subject)
	}
	if len(c.Access) != 0 {
		t.Errorf("a login token without scope grants %v, want nothing", c.Access)
	}

	// A docker refresh with a token the server never issued: a JSON 401
	// invalid_grant. TestRefreshTokens and TestDocker cover real refresh
	// tokens.
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {"not-a-refresh-token"},
		"client_id": {"docker"}, "service": {service}, "scope": {"repository:user1/app:pull"},
	}
	r = e.postForm(t, form)
	if r.status != http.StatusUnauthorized {
		t.Errorf("refresh_token grant: status %d, want 401: %s", r.status, r.body)
	}
	if code, ok := jsonError(r); !ok {
		t.Errorf("refresh_token grant: not a JSON error: %s", r.body)
	} else {
		t.Logf("refresh_token grant answered %d %q", r.status, code)
	}

	// containerd's password grant: the reply carries the granted scope.
	form = url.Values{
		"grant_type": {"password"}, "username": {"user1"}, "password": {e.passwords["user1"]},
		"client_id": {"containerd-client"}, "service": {service},
		"scope": {"repository:user1/app:pull,push repository:user2/app:pull"},
	}
	r = e.postForm(t, form)
	if r.status != http.StatusOK {
		t.Fatalf("password grant: status %d: %s", r.status, r.body)
	}
	var pr tokenReply
	if err := json.Unmarshal(r.body, &pr); err != nil {
		t.Fatalf("password grant reply: %v: %s", err, r.body)
	}
	if pr.AccessToken == "" || pr.Scope == nil {
		t.Fatalf("password grant reply lacks access_token or scope: %s", r.body)
	}
	if *pr.Scope != "repository:user1/app:pull,push" {
		t.Errorf("password grant scope %q, want %q (nothing on user2/app)", *pr.Scope, "repository:user1/app:pull,push")
	}
}

// postForm POSTs form to the token endpoint as containerd does.
func (e *env) postForm(t testing.TB, form url.Values) reply {
	t.Helper()
	req := newRequest(t, http.MethodPost, e.realm(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return e.do(t, req)
}

// abbrev shows the start of a token in a failure message, never all of it.
func abbrev(s string) string {
	if len(s) > 12 {
		return s[:12] + "..."
	}
	return s
}
