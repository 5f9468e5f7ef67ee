package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/config"
	"stx-registry/token/internal/fixture"
	"stx-registry/token/issuer"
	"stx-registry/token/reuse"
)

// adminAuth is fakeAuth whose backend admin flag can be flipped.
type adminAuth struct {
	fakeAuth
	admin atomic.Bool
}

func (a *adminAuth) Authenticate(ctx context.Context, c authn.Credentials) (access.Identity, error) {
	id, err := a.fakeAuth.Authenticate(ctx, c)
	id.Admin = err == nil && a.admin.Load()
	return id, err
}

// goneChecker says every user is gone.
type goneChecker struct{}

func (goneChecker) CheckUser(context.Context, string, string) error { return authn.ErrUserGone }

// newReuseServer is newRefreshServer with token reuse over window and a
// fresh issuer with ttl, all on one fake clock.
func newReuseServer(t *testing.T, auth authn.Authenticator, ttl, window time.Duration) (*Server, *strings.Builder, *fixture.Clock) {
	t.Helper()
	s, logs, clock := newRefreshServer(t, auth, time.Hour)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := issuer.New("test-issuer", ttl, k)
	if err != nil {
		t.Fatal(err)
	}
	s.issuer.Store(iss)
	s.reuse = reuse.New(window)
	return s, logs, clock
}

// pullAs is a GET for scope with user's password.
func pullAs(t *testing.T, h http.Handler, user, scope string) reply {
	t.Helper()
	q := url.Values{"service": {testService}, "scope": {scope}}
	r := do(t, h, get(q.Encode(), basic(user, "pw-"+user)))
	if r.status != 200 {
		t.Fatalf("GET %s as %s: %d %v", scope, user, r.status, r.body)
	}
	return r
}

// auditLines are the token audit lines logged so far, decoded.
func auditLines(t *testing.T, logs *strings.Builder) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "token" {
			out = append(out, m)
		}
	}
	return out
}

// TestReuseHits: identical requests within the window get the same token,
// with expires_in and issued_at telling its truth, and each an audit line
// saying whether it was reused; anything different, or later, is signed.
func TestReuseHits(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-alice", "bob": "pw-bob"}}
	s, logs, clock := newReuseServer(t, auth, 5*time.Minute, 30*time.Second)
	h := s.Handler()
	const scope = "repository:alice/app:pull,push repository:public/base:pull"
	first := pullAs(t, h, "alice", scope)
	tok := first.body["token"].(string)
	iat := first.body["issued_at"].(string)

	clock.Add(10*time.Second + 400*time.Millisecond)
	again := pullAs(t, h, "alice", "repository:public/base:pull repository:alice/app:push,pull")
	if again.body["token"] != tok {
		t.Fatal("an identical request within the window got a new token")
	}
	if again.body["issued_at"] != iat || again.body["expires_in"].(float64) != 289 {
		t.Errorf("reused token says issued_at %v, expires_in %v; want %s and 289 (the seconds it has left)",
			again.body["issued_at"], again.body["expires_in"], iat)
	}
	if first.body["expires_in"].(float64) != 300 {
		t.Errorf("new token: expires_in %v, want 300", first.body["expires_in"])
	}

	// Different requests: another user, fewer scopes, another service.
	for _, r := range []reply{
		pullAs(t, h, "bob", scope),
		pullAs(t, h, "alice", "repository:alice/app:pull"),
	} {
		if r.body["token"] == tok {
			t.Error("a different request got the kept token")
		}
	}
	// The POST form shares the cache.
	f := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw-alice"},
		"service": {testService}, "scope": {scope}}
	if r := do(t, h, post(f.Encode(), "application/x-www-form-urlencoded")); r.body["access_token"] != tok || r.body["scope"] != "repository:alice/app:pull,push repository:public/base:pull" {
		t.Errorf("POST: %v", r.body)
	}

	// Past the window: a new token.
	clock.Add(20 * time.Second)
	if r := pullAs(t, h, "alice", scope); r.body["token"] == tok {
		t.Error("reused past the window")
	}

	lines := auditLines(t, logs)
	want := []bool{false, true, false, false, true, false}
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines for %d requests", len(lines), len(want))
	}
	jti := claims(t, tok)["jti"]
	for i, l := range lines {
		if l["reused"] != want[i] {
			t.Errorf("audit line %d: reused=%v, want %v", i, l["reused"], want[i])
		}
		if want[i] && l["jti"] != jti {
			t.Errorf("audit line %d: jti %v, want the kept token's %v", i, l["jti"], jti)
		}
	}
}

// TestReuseFloor: a reused token always has at least 60 s left.
func TestReuseFloor(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-alice"}}
	// 50 % of 90 s is a 45 s window, which the 60 s floor cuts to 30 s.
	s, _, clock := newReuseServer(t, auth, 90*time.Second, reuse.Window(90*time.Second, reuse.MaxPercent))
	h := s.Handler()
	tok := pullAs(t, h, "alice", "repository:alice/app:pull").body["token"]
	clock.Add(30 * time.Second)
	r := pullAs(t, h, "alice", "repository:alice/app:pull")
	if r.body["token"] != tok || r.body["expires_in"].(float64) != 60 {
		t.Fatalf("with 60 s left: reused %v, expires_in %v", r.body["token"] == tok, r.body["expires_in"])
	}
	clock.Add(time.Second)
	r = pullAs(t, h, "alice", "repository:alice/app:pull")
	if r.body["token"] == tok || r.body["expires_in"].(float64) != 90 {
		t.Fatalf("with 59 s left: reused %v, expires_in %v", r.body["token"] == tok, r.body["expires_in"])
	}
}

// TestReuseOff: token_reuse_percent 0 signs every token.
func TestReuseOff(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-alice"}}
	s, logs, _ := newReuseServer(t, auth, 5*time.Minute, 0)
	h := s.Handler()
	a := pullAs(t, h, "alice", "repository:alice/app:pull").body["token"]
	if b := pullAs(t, h, "alice", "repository:alice/app:pull").body["token"]; a == b {
		t.Error("reused with reuse off")
	}
	for _, l := range auditLines(t, logs) {
		if l["reused"] != false {
			t.Errorf("reused=%v with reuse off", l["reused"])
		}
	}
}

// TestReuseInvalidation: a SIGHUP (key reload, or a reload that fails), a
// flip of the backend's admin flag, a revoked refresh token and a user
// found gone each stop reuse.
func TestReuseInvalidation(t *testing.T) {
	const scope = "repository:alice/app:pull"
	t.Run("key reload", func(t *testing.T) {
		auth := &fakeAuth{users: map[string]string{"alice": "pw-alice"}}
		s, _, _ := newReuseServer(t, auth, 5*time.Minute, 30*time.Second)
		h := s.Handler()
		dir := t.TempDir()
		k1, _ := fixture.WriteKey(t, dir, "k1.key", 0o600)
		k2, _ := fixture.WriteKey(t, dir, "k2.key", 0o600)
		conf := fixture.KeyConfig(dir, "", k1)
		running, err := config.Load(conf)
		if err != nil {
			t.Fatal(err)
		}
		tok := pullAs(t, h, "alice", scope).body["token"]
		fixture.KeyConfig(dir, "", k2, k1)
		s.ReloadSigningKeys(conf, running)
		after := pullAs(t, h, "alice", scope).body["token"].(string)
		if after == tok {
			t.Fatal("a token of the old key was reused after the reload")
		}
		if got, want := jwtKid(t, after), kidOf(t, s); got != want {
			t.Errorf("kid %s, want the new key's %s", got, want)
		}
		// A reload that fails still drops the kept tokens.
		fixture.KeyConfig(dir, "bogus_keyword 1\n", k2)
		s.ReloadSigningKeys(conf, running)
		if pullAs(t, h, "alice", scope).body["token"] == after {
			t.Error("reused after a failed reload")
		}
	})
	t.Run("admin flip", func(t *testing.T) {
		auth := &adminAuth{fakeAuth: fakeAuth{users: map[string]string{"alice": "pw-alice"}}}
		s, _, _ := newReuseServer(t, auth, 5*time.Minute, 30*time.Second)
		h := s.Handler()
		user := pullAs(t, h, "alice", scope).body["token"]
		auth.admin.Store(true)
		admin := pullAs(t, h, "alice", scope).body["token"]
		if admin == user {
			t.Fatal("an admin got the token kept for the user")
		}
		auth.admin.Store(false)
		if tok := pullAs(t, h, "alice", scope).body["token"]; tok == user || tok == admin {
			t.Fatal("after the flip back a kept token was reused")
		}
	})
	t.Run("revoke", func(t *testing.T) {
		auth := &fakeAuth{users: map[string]string{"alice": "pw-alice"}}
		s, _, _ := newReuseServer(t, auth, 5*time.Minute, 30*time.Second)
		h := s.Handler()
		rt := login(t, h, "alice", "pw-alice")
		r := do(t, h, refreshForm(rt, testService, scope))
		if r.status != 200 {
			t.Fatalf("refresh: %d %v", r.status, r.body)
		}
		kept := r.body["access_token"]
		if r2 := do(t, h, refreshForm(rt, testService, scope)); r2.body["access_token"] != kept {
			t.Fatal("the refresh grant did not reuse")
		}
		// stx-token-server revoke, from another process, writes the store.
		if n, err := s.refresh.RevokeUser("alice"); err != nil || n != 1 {
			t.Fatalf("revoke: %d, %v", n, err)
		}
		if r := do(t, h, refreshForm(rt, testService, scope)); r.status != 401 || r.body["access_token"] != nil {
			t.Fatalf("revoked refresh token: %d %v", r.status, r.body)
		}
	})
	t.Run("user gone", func(t *testing.T) {
		auth := &fakeAuth{users: map[string]string{"alice": "pw-alice", "bob": "pw-bob"}}
		s, _, _ := newReuseServer(t, auth, 5*time.Minute, 30*time.Second)
		h := s.Handler()
		rt := login(t, h, "alice", "pw-alice")
		pullAs(t, h, "alice", scope)
		pullAs(t, h, "bob", "repository:bob/app:pull")
		s.users = goneChecker{}
		if r := do(t, h, refreshForm(rt, testService, scope)); r.status != 401 {
			t.Fatalf("gone user's refresh: %d %v", r.status, r.body)
		}
		if n := s.reuse.Len(); n != 1 {
			t.Errorf("%d tokens kept, want bob's only", n)
		}
	})
}

// jwtKid is the kid in a token's header.
func jwtKid(t *testing.T, tok string) string {
	t.Helper()
	var h struct{ Kid string }
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("token header: %v", err)
	}
	return h.Kid
}

// TestReuseConcurrent: many clients asking for the same and for different
// tokens at once, while the keys reload (go test -race).
func TestReuseConcurrent(t *testing.T) {
	users := map[string]string{}
	for i := range 4 {
		users[fmt.Sprint("u", i)] = fmt.Sprint("pw-u", i)
	}
	s, _, _ := newReuseServer(t, &fakeAuth{users: users}, 5*time.Minute, 30*time.Second)
	h := s.Handler()
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
	)
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				u := fmt.Sprint("u", (w+i)%4)
				q := url.Values{"service": {testService}, "scope": {fmt.Sprintf("repository:%s/r%d:pull", u, i%3)}}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, get(q.Encode(), basic(u, users[u])))
				if rec.Code != http.StatusOK {
					failed.Add(1)
				}
				if w == 0 && i%10 == 0 {
					s.dropReusable("test")
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed", n)
	}
	if n := s.reuse.Len(); n > 12 {
		t.Errorf("%d tokens kept for 12 distinct requests", n)
	}
}
