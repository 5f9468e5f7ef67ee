package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"stx-registry/token/authn"
	"stx-registry/token/internal/fixture"
	"stx-registry/token/keystone"
	"stx-registry/token/keystone/keystonetest"
	"stx-registry/token/refresh"
)

const otherService = "other.test:9001"

// newRefreshServer is newTestServer with a refresh store on a fake clock.
func newRefreshServer(t *testing.T, auth authn.Authenticator, ttl time.Duration) (*Server, *strings.Builder, *fixture.Clock) {
	t.Helper()
	s, logs := newTestServer(t, auth)
	clock := fixture.NewClock()
	store := newStore(t, fixture.StateDir(t), 100, clock)
	s.refresh, s.refreshTTL, s.now = store, ttl, clock.Now
	s.services[otherService] = true
	return s, logs, clock
}

// login is docker login's GET; it returns the refresh token.
func login(t *testing.T, h http.Handler, user, pass string) string {
	t.Helper()
	q := url.Values{"account": {user}, "client_id": {"docker"}, "offline_token": {"true"}, "service": {testService}}
	r := do(t, h, get(q.Encode(), basic(user, pass)))
	rt, _ := r.body["refresh_token"].(string)
	if r.status != 200 || rt == "" {
		t.Fatalf("offline login: status %d, body %v: want a refresh_token", r.status, r.body)
	}
	return rt
}

// refreshForm is docker's refresh grant.
func refreshForm(token, service, scope string) *http.Request {
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"docker"},
		"service": {service}, "scope": {scope}}
	return post(f.Encode(), "application/x-www-form-urlencoded")
}

func TestRefreshGrant(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	s, logs, clock := newRefreshServer(t, auth, time.Hour)
	h := s.Handler()
	rt := login(t, h, "alice", "pw-a")

	// containerd's form of the offline login: POST with access_type=offline.
	f := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw-a"}, "access_type": {"offline"},
		"client_id": {"containerd-client"}, "service": {testService}}
	if r := do(t, h, post(f.Encode(), "application/x-www-form-urlencoded")); r.status != 200 || r.body["refresh_token"] == nil || r.body["refresh_token"] == rt {
		t.Fatalf("POST access_type=offline: %d %v; want a new refresh_token", r.status, r.body)
	}
	// Without offline_token, no refresh token.
	if r := do(t, h, get("service="+testService, basic("alice", "pw-a"))); r.body["refresh_token"] != nil {
		t.Errorf("a login without offline_token got a refresh_token")
	}
	calls := auth.calls.Load()

	// docker pulls twice with the same refresh token: both work, and the
	// reply carries the same token again (never rotated) and the scope.
	for i := range 2 {
		clock.Add(10 * time.Minute)
		r := do(t, h, refreshForm(rt, testService, "repository:alice/app:pull,push repository:bob/app:pull"))
		if r.status != 200 {
			t.Fatalf("refresh %d: %d %v", i, r.status, r.body)
		}
		if r.body["refresh_token"] != rt {
			t.Fatalf("refresh %d returned another refresh token", i)
		}
		if r.body["scope"] != "repository:alice/app:pull,push" {
			t.Errorf("scope %v", r.body["scope"])
		}
		c := claims(t, r.body["access_token"].(string))
		if c["sub"] != "alice" || c["aud"] != testService {
			t.Errorf("claims %v", c)
		}
	}
	if auth.calls.Load() != calls {
		t.Errorf("a refresh asked the password backend")
	}
	if strings.Contains(logs.String(), rt) {
		t.Fatal("the refresh token was logged")
	}
	if !strings.Contains(logs.String(), `"grant_type":"refresh_token"`) || !strings.Contains(logs.String(), `"refresh_id":"`+refresh.Hash(rt)[:8]+`"`) {
		t.Errorf("no refresh audit line: %s", logs)
	}

	// Refused: another service, an unknown token, and after expiry.
	deny := []struct {
		name string
		req  *http.Request
	}{
		{"other service", refreshForm(rt, otherService, "repository:alice/app:pull")},
		{"unknown", refreshForm(strings.Repeat("x", 43), testService, "")},
		{"password as token", refreshForm("pw-a", testService, "")},
	}
	for _, tt := range deny {
		r := do(t, h, tt.req)
		if r.status != 401 || r.body["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v; want 401 invalid_grant", tt.name, r.status, r.body)
		}
	}
	clock.Add(time.Hour)
	if r := do(t, h, refreshForm(rt, testService, "")); r.status != 401 || r.body["error"] != "invalid_grant" {
		t.Errorf("expired: %d %v; want 401 invalid_grant", r.status, r.body)
	}
	if r := do(t, h, post("grant_type=refresh_token&service="+testService, "application/x-www-form-urlencoded")); r.status != 400 {
		t.Errorf("no refresh_token: %d %v", r.status, r.body)
	}
}

// TestRefreshOff: without state_directory an offline login simply gets no
// refresh token, and a refresh grant says why it is refused.
func TestRefreshOff(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{users: map[string]string{"alice": "pw-a"}})
	h := s.Handler()
	r := do(t, h, get("offline_token=true&service="+testService, basic("alice", "pw-a")))
	if r.status != 200 || r.body["refresh_token"] != nil {
		t.Fatalf("offline login without a store: %d %v", r.status, r.body)
	}
	r = do(t, h, refreshForm("x", testService, ""))
	if r.status != 400 || r.body["error"] != "unsupported_grant_type" || !strings.Contains(r.body["error_description"].(string), "state_directory") {
		t.Errorf("refresh grant without a store: %d %v", r.status, r.body)
	}
}

// TestRefreshUsersFileRecheck: a user deleted from the users file can no
// longer refresh, and their refresh tokens are revoked.
func TestRefreshUsersFileRecheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	for _, u := range []string{"alice", "bob"} {
		if err := authn.SetPassword(path, u, []byte("pw-"+u)); err != nil {
			t.Fatal(err)
		}
	}
	uf, err := authn.NewUsersFile(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, _, _ := newRefreshServer(t, uf, time.Hour)
	s.users = authn.NewUsersFileChecker(uf)
	h := s.Handler()
	alice, bob := login(t, h, "alice", "pw-alice"), login(t, h, "bob", "pw-bob")
	if r := do(t, h, refreshForm(alice, testService, "")); r.status != 200 {
		t.Fatalf("refresh: %d %v", r.status, r.body)
	}
	if err := authn.SetPassword(path, "alice", nil); err != nil {
		t.Fatal(err)
	}
	uf.Recheck() // skip the once-a-second stat limit
	if r := do(t, h, refreshForm(alice, testService, "")); r.status != 401 {
		t.Fatalf("refresh of a deleted user: %d %v; want 401", r.status, r.body)
	}
	if _, err := s.refresh.Lookup(alice, testService, s.now()); err == nil {
		t.Error("the deleted user's refresh token was not revoked")
	}
	if r := do(t, h, refreshForm(bob, testService, "")); r.status != 200 {
		t.Errorf("bob: %d %v", r.status, r.body)
	}
}

func TestRefreshKeystoneRecheck(t *testing.T) {
	fk := &keystonetest.Fake{Users: map[string]bool{"alice": true, "bob": true, "carol": true}}
	ts := httptest.NewServer(fk)
	defer ts.Close()
	ks, err := keystone.New(keystone.Config{
		URL: ts.URL + "/v3", UserDomain: "Default", Timeout: 2 * time.Second,
		Service: keystone.Service{User: "svc", Password: "svc-secret", Project: "services", Domain: "Default"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	auth := &fakeAuth{users: map[string]string{"alice": "a", "bob": "b", "carol": "c"}}
	s, logs, clock := newRefreshServer(t, auth, 24*time.Hour)
	s.users, s.recheck = ks, 15*time.Minute
	h := s.Handler()
	alice, bob, carol := login(t, h, "alice", "a"), login(t, h, "bob", "b"), login(t, h, "carol", "c")
	refresh := func(tok string) int { return do(t, h, refreshForm(tok, testService, "")).status }

	// Checked at login: no Keystone call until the interval has passed.
	if st := refresh(alice); st != 200 || fk.Lookups.Load() != 0 {
		t.Fatalf("fresh token: %d, %d lookups; want 200 and none", st, fk.Lookups.Load())
	}
	clock.Add(15 * time.Minute)
	if st := refresh(alice); st != 200 || fk.Lookups.Load() != 1 {
		t.Fatalf("due token: %d, %d lookups; want 200 and one", st, fk.Lookups.Load())
	}
	if st := refresh(alice); st != 200 || fk.Lookups.Load() != 1 {
		t.Fatalf("just re-checked: %d, %d lookups; want 200 and still one", st, fk.Lookups.Load())
	}

	// Disabled and deleted users are refused, their tokens revoked.
	fk.Set(func() { fk.Users["bob"] = false; delete(fk.Users, "carol") })
	for name, tok := range map[string]string{"disabled": bob, "deleted": carol} {
		if st := refresh(tok); st != 401 {
			t.Errorf("%s user: %d, want 401", name, st)
		}
		if _, err := s.refresh.Lookup(tok, testService, clock.Now()); err == nil {
			t.Errorf("%s user's refresh token not revoked", name)
		}
	}

	// Keystone down: allowed while the last check is within 2×interval,
	// then 503.
	fk.Set(func() { fk.Down = true })
	clock.Add(20 * time.Minute) // 20m since alice's last check: due, within 30m
	if st := refresh(alice); st != 200 {
		t.Errorf("Keystone down, last check 20m ago: %d, want 200", st)
	}
	clock.Add(11 * time.Minute) // 31m
	if st := refresh(alice); st != 503 {
		t.Errorf("Keystone down, last check 31m ago: %d, want 503", st)
	}
	fk.Set(func() { fk.Down = false })
	if st := refresh(alice); st != 200 {
		t.Errorf("Keystone back: %d, want 200", st)
	}
	if fk.Logins.Load() != 1 {
		t.Errorf("%d service logins, want 1 (the token is cached)", fk.Logins.Load())
	}
	if strings.Contains(logs.String(), "svc-secret") || strings.Contains(logs.String(), "service-token") {
		t.Error("a service credential was logged")
	}
}

// TestRefreshKeystoneUserReplaced: a user deleted in Keystone and created
// again under the same name is another user: the old user's refresh token
// is refused and revoked at its next re-check, the new user's is not
// touched. A token bound to no user ID (from before the binding) is refused
// too.
func TestRefreshKeystoneUserReplaced(t *testing.T) {
	fk := &keystonetest.Fake{Users: map[string]bool{"dave": true, "erin": true}}
	ts := httptest.NewServer(fk)
	defer ts.Close()
	ks, err := keystone.New(keystone.Config{
		URL: ts.URL + "/v3", UserDomain: "Default", Timeout: 2 * time.Second,
		Service: keystone.Service{User: "svc", Password: "svc-secret", Project: "services", Domain: "Default"},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	auth := &fakeAuth{users: map[string]string{"dave": "d", "erin": "e"}}
	s, logs, clock := newRefreshServer(t, auth, 24*time.Hour)
	s.users, s.recheck = ks, 15*time.Minute
	h := s.Handler()
	old := login(t, h, "dave", "d")
	// An entry written before refresh tokens carried the user ID.
	legacy, err := s.refresh.Issue(refresh.Entry{Subject: "erin", Service: testService, Created: clock.Now(), Expires: clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// dave is deleted and the name given to a new user, who logs in.
	fk.Set(func() { fk.IDs = map[string]string{"dave": "id-dave-2"} })
	auth.idOverride = map[string]string{"dave": "id-dave-2"}
	cur := login(t, h, "dave", "d")
	clock.Add(15 * time.Minute)
	refresh := func(tok string) int { return do(t, h, refreshForm(tok, testService, "")).status }
	if st := refresh(old); st != 401 {
		t.Errorf("the old dave's refresh token: %d, want 401", st)
	}
	if _, err := s.refresh.Lookup(old, testService, clock.Now()); err == nil {
		t.Error("the old dave's refresh token was not revoked")
	}
	if st := refresh(cur); st != 200 {
		t.Errorf("the new dave's refresh token: %d, want 200", st)
	}
	if st := refresh(legacy); st != 401 {
		t.Errorf("a refresh token bound to no user ID: %d, want 401", st)
	}
	if !strings.Contains(logs.String(), "now belongs to another user") {
		t.Errorf("the audit line lacks the reason:\n%s", logs)
	}
}
