package server

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"reflect"
	"testing"
	"time"

	"stx-registry/token/authn"
)

// TestErrorsForDocker checks that every error reply carries, next to the
// OAuth2 error, the same message as a registry error: docker prints only
// that one.
func TestErrorsForDocker(t *testing.T) {
	svc := "service=" + url.QueryEscape(testService)
	users := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	tests := []struct {
		name   string
		auth   authn.Authenticator
		req    string // query of a GET, or a path
		creds  string
		status int
		code   string
		msg    string
	}{
		{"wrong password", users, svc, basic("alice", "nope"), 401, "UNAUTHORIZED", "invalid username or password"},
		{"no credentials", users, svc, "", 401, "UNAUTHORIZED", "credentials required: log in first (docker login, podman login) with your user name and password"},
		{"slow down", &fakeAuth{err: &authn.RetryAfterError{After: 30 * time.Second}}, svc, basic("alice", "x"), 429, "TOOMANYREQUESTS", "too many failed logins, retry after 30s"},
		{"backend down", &fakeAuth{err: authn.ErrUnavailable}, svc, basic("alice", "x"), 503, "UNAVAILABLE", "authentication backend unavailable, try again later"},
		{"bad request", users, "service=evil", basic("alice", "pw-a"), 400, "UNKNOWN", `unknown service "evil"`},
		{"not found", users, "/nowhere", "", 404, "UNKNOWN", "no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, tt.auth)
			req := get(tt.req, tt.creds)
			if tt.req[0] == '/' {
				req = httptest.NewRequest("GET", tt.req, nil)
			}
			r := do(t, s.Handler(), req)
			want := []any{map[string]any{"code": tt.code, "message": tt.msg}}
			if r.status != tt.status || r.body["error_description"] != tt.msg || !reflect.DeepEqual(r.body["errors"], want) {
				t.Errorf("got %d %v, want %d with errors %v", r.status, r.body, tt.status, want)
			}
		})
	}
}

// TestTokenCarriesRefusals checks that what the policy refuses, and why,
// goes into the token for the registry, and that a full grant carries no
// stx_refused claim.
func TestTokenCarriesRefusals(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{users: map[string]string{"alice": "pw-a"}})
	q := url.Values{"service": {testService}, "scope": {"repository:bob/app:pull,push repository:public/base:pull,push repository:alice/app:pull"}}
	r := do(t, s.Handler(), get(q.Encode(), basic("alice", "pw-a")))
	if r.status != 200 {
		t.Fatalf("status %d: %v", r.status, r.body)
	}
	got, _ := json.Marshal(claims(t, r.body["token"].(string))["stx_refused"])
	want := `[{"actions":["pull","push"],"name":"bob/app","reason":"alice may not pull from or push to bob/app: alice may push only to alice/..., and pull from there and from public namespaces","type":"repository"},` +
		`{"actions":["push"],"name":"public/base","reason":"alice may not push to public/base: public/ is read-only, alice may push only to alice/...","type":"repository"}]`
	if string(got) != want {
		t.Errorf("stx_refused %s\nwant        %s", got, want)
	}
	q.Set("scope", "repository:alice/app:pull,push")
	r = do(t, s.Handler(), get(q.Encode(), basic("alice", "pw-a")))
	if c, ok := claims(t, r.body["token"].(string))["stx_refused"]; ok {
		t.Errorf("full grant carries stx_refused %v", c)
	}
}

// TestRefreshGrantCarriesRefusals checks the same for docker's refresh
// grant, which is how docker gets every token after docker login.
func TestRefreshGrantCarriesRefusals(t *testing.T) {
	s, _, _ := newRefreshServer(t, &fakeAuth{users: map[string]string{"alice": "pw-a"}}, time.Hour)
	h := s.Handler()
	rt := login(t, h, "alice", "pw-a")
	r := do(t, h, refreshForm(rt, testService, "repository:bob/app:pull"))
	if r.status != 200 {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	got, _ := json.Marshal(claims(t, r.body["token"].(string))["stx_refused"])
	want := `[{"actions":["pull"],"name":"bob/app","reason":"alice may not pull from bob/app: alice may pull only from alice/... and public namespaces","type":"repository"}]`
	if string(got) != want {
		t.Errorf("stx_refused %s\nwant        %s", got, want)
	}
}

// TestReuseKeepsRefusalsApart: two requests granted the same but refused
// differently get different tokens, each carrying its own refusals, and an
// identical one gets the kept token.
func TestReuseKeepsRefusalsApart(t *testing.T) {
	s, _, clock := newReuseServer(t, &fakeAuth{users: map[string]string{"alice": "pw-alice"}}, 5*time.Minute, 30*time.Second)
	h := s.Handler()
	plain := pullAs(t, h, "alice", "repository:alice/app:pull").body["token"].(string)
	clock.Add(time.Second)
	refused := pullAs(t, h, "alice", "repository:alice/app:pull repository:bob/app:pull").body["token"].(string)
	if refused == plain {
		t.Fatal("a request refused bob/app got the token of one that asked for nothing refused")
	}
	if _, ok := claims(t, refused)["stx_refused"]; !ok {
		t.Error("the token of the refused request carries no stx_refused")
	}
	clock.Add(time.Second)
	if again := pullAs(t, h, "alice", "repository:bob/app:pull repository:alice/app:pull").body["token"]; again != refused {
		t.Error("an identical request, refusals included, was not given the kept token")
	}
}
