package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/authn"
	"stx-registry/token/issuer"
	"stx-registry/token/metrics"
	"stx-registry/token/reuse"
)

// fakeAuth is an Authenticator with fixed users, counting its calls. The
// real backends have their own tests; this one isolates the HTTP layer.
type fakeAuth struct {
	users map[string]string
	err   error // returned for every call when set
	calls atomic.Int64
	// idOverride gives a user another ID than "id-" + name: a user
	// deleted and created again in Keystone.
	idOverride map[string]string
}

func (f *fakeAuth) Authenticate(_ context.Context, c authn.Credentials) (access.Identity, error) {
	f.calls.Add(1)
	if f.err != nil {
		return access.Identity{}, f.err
	}
	if pw, ok := f.users[c.User]; ok && pw == c.Password {
		id, ok := f.idOverride[c.User]
		if !ok {
			id = "id-" + c.User
		}
		return access.Identity{Name: c.User, ID: id}, nil
	}
	return access.Identity{}, authn.ErrBadCredentials
}

const testService = "registry.test:9001"

func newTestServer(t testing.TB, auth authn.Authenticator) (*Server, *strings.Builder) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := issuer.New("test-issuer", issuer.DefaultTokenTTL, key)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := access.NewPolicy(access.PolicyConfig{AdminUsers: []string{"admin"}, PublicNamespaces: []string{"public"}})
	if err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	s := &Server{
		auth:     auth,
		policy:   pol,
		services: map[string]bool{testService: true},
		audit:    &Audit{log: log},
		log:      log,
		now:      time.Now,
		metrics:  metrics.New("users", "test"),
	}
	s.issuer.Store(iss)
	return s, logs
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
}

func do(t testing.TB, h http.Handler, r *http.Request) reply {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json", r.Method, r.URL, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: reply is not JSON: %v", r.Method, r.URL, err)
	}
	return reply{res.StatusCode, res.Header, body}
}

func get(query, auth string) *http.Request {
	r := httptest.NewRequest("GET", "/token/?"+query, nil)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func post(form, contentType string) *http.Request {
	r := httptest.NewRequest("POST", "/token", strings.NewReader(form))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

// claims decodes the payload of a JWT without verifying it; the issuer's
// tests prove distribution's verifier accepts our tokens.
func claims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenGet(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-a", "admin": "pw-admin"}}
	s, logs := newTestServer(t, auth)
	h := s.Handler()
	q := url.Values{
		"service":       {testService},
		"scope":         {"repository:alice/app:pull,push repository:bob/app:pull", "repository:public/base:pull,push"},
		"account":       {"alice"},
		"client_id":     {"docker"},
		"offline_token": {"true"},
	}
	r := do(t, h, get(q.Encode(), basic("alice", "pw-a")))
	if r.status != 200 {
		t.Fatalf("status %d: %v", r.status, r.body)
	}
	for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
		if _, ok := r.body[k]; !ok {
			t.Errorf("reply lacks %q", k)
		}
	}
	if r.body["token"] != r.body["access_token"] {
		t.Error("token and access_token differ")
	}
	if _, ok := r.body["scope"]; ok {
		t.Error("GET reply carries scope; only POST replies do")
	}
	if _, err := time.Parse(time.RFC3339, r.body["issued_at"].(string)); err != nil {
		t.Errorf("issued_at: %v", err)
	}
	if r.body["expires_in"].(float64) != issuer.DefaultTokenTTL.Seconds() {
		t.Errorf("expires_in = %v", r.body["expires_in"])
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	c := claims(t, r.body["token"].(string))
	if c["sub"] != "alice" || c["aud"] != testService || c["iss"] != "test-issuer" {
		t.Errorf("claims %v", c)
	}
	claim, _ := json.Marshal(c["access"])
	want := `[{"actions":["pull","push"],"name":"alice/app","type":"repository"},{"actions":["pull"],"name":"public/base","type":"repository"}]`
	if string(claim) != want {
		t.Errorf("access %s\nwant   %s", claim, want)
	}
	// The audit line names the subject, client, scopes and jti, and nothing secret.
	line := logs.String()
	for _, s := range []string{`"msg":"token"`, `"subject":"alice"`, `"client":"127.0.0.1"`, `"jti":"` + c["jti"].(string), `"granted":"repository:alice/app:pull,push repository:public/base:pull"`} {
		if !strings.Contains(line, s) {
			t.Errorf("audit log lacks %s:\n%s", s, line)
		}
	}
	for _, secret := range []string{"pw-a", r.body["token"].(string), basic("alice", "pw-a")} {
		if strings.Contains(line, secret) {
			t.Errorf("audit log contains a secret")
		}
	}
}

func TestTokenPost(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	s, _ := newTestServer(t, auth)
	h := s.Handler()
	form := url.Values{
		"grant_type": {"password"}, "username": {"alice"}, "password": {"pw-a"},
		"service": {testService}, "client_id": {"containerd-client"},
		"scope": {"repository:alice/app:pull repository:bob/x:pull"},
	}
	r := do(t, h, post(form.Encode(), "application/x-www-form-urlencoded; charset=utf-8"))
	if r.status != 200 {
		t.Fatalf("status %d: %v", r.status, r.body)
	}
	if r.body["scope"] != "repository:alice/app:pull" {
		t.Errorf("scope %q", r.body["scope"])
	}
	if r.body["access_token"] == "" {
		t.Error("no access_token")
	}
}

func TestTokenErrors(t *testing.T) {
	auth := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	s, _ := newTestServer(t, auth)
	h := s.Handler()
	svc := "service=" + url.QueryEscape(testService)
	okAuth := basic("alice", "pw-a")
	pw := "grant_type=password&username=alice&password=pw-a&" + svc
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"no credentials", get(svc, ""), 401, "invalid_client"},
		{"wrong password", get(svc, basic("alice", "nope")), 401, "invalid_grant"},
		{"unknown user", get(svc, basic("mallory", "pw-a")), 401, "invalid_grant"},
		{"bad base64", get(svc, "Basic !!!notbase64"), 400, "invalid_request"},
		{"no colon", get(svc, "Basic "+base64.StdEncoding.EncodeToString([]byte("alice"))), 400, "invalid_request"},
		{"bearer instead of basic", get(svc, "Bearer abc"), 400, "invalid_request"},
		{"empty user", get(svc, basic("", "pw")), 401, "invalid_client"},
		{"long user", get(svc, basic(strings.Repeat("a", 300), "pw")), 400, "invalid_request"},
		{"long password", get(svc, basic("alice", strings.Repeat("p", 2000))), 400, "invalid_request"},
		{"missing service", get("", okAuth), 400, "invalid_request"},
		{"unknown service", get("service=evil:9001", okAuth), 400, "invalid_request"},
		{"repeated service", get(svc+"&"+svc, okAuth), 400, "invalid_request"},
		{"account mismatch", get(svc+"&account=bob", okAuth), 400, "invalid_request"},
		{"malformed scope", get(svc+"&scope=repository:a", okAuth), 400, "invalid_request"},
		{"empty scope parts", get(svc+"&scope=::", okAuth), 400, "invalid_request"},
		{"control bytes in scope", get(svc+"&scope=repository:a%01b:pull", okAuth), 400, "invalid_request"},
		{"oversized scope", get(svc+"&scope=repository:"+strings.Repeat("a", 1000)+":pull", okAuth), 400, "invalid_request"},
		{"too many scopes", get(svc+strings.Repeat("&scope=repository:a/b:pull", 100), okAuth), 400, "invalid_request"},
		{"huge query", get(svc+"&x="+strings.Repeat("x", 9000), okAuth), 400, "invalid_request"},
		{"bad query escape", get(svc+"&scope=%zz", okAuth), 400, "invalid_request"},
		{"post wrong content type", post(pw, "application/json"), 400, "invalid_request"},
		{"post no content type", post(pw, ""), 400, "invalid_request"},
		{"post huge form", post(pw+"&x="+strings.Repeat("x", 10000), form), 413, "invalid_request"},
		{"post unknown grant", post("grant_type=client_credentials&"+svc, form), 400, "unsupported_grant_type"},
		{"post refresh grant", post("grant_type=refresh_token&refresh_token=x&"+svc, form), 400, "unsupported_grant_type"},
		{"post no grant", post(svc, form), 400, "invalid_request"},
		{"post wrong password", post("grant_type=password&username=alice&password=x&"+svc, form), 401, "invalid_grant"},
		{"post no user", post("grant_type=password&password=x&"+svc, form), 401, "invalid_client"},
		{"post repeated password", post(pw+"&password=x", form), 400, "invalid_request"},
		{"post bad form", post("grant_type=%zz", form), 400, "invalid_request"},
		{"put", httptest.NewRequest("PUT", "/token", nil), 405, "method_not_allowed"},
		{"unknown path", httptest.NewRequest("GET", "/v2/", nil), 404, "not_found"},
		{"token subpath", httptest.NewRequest("GET", "/token/x", nil), 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, h, tt.req)
			if r.status != tt.status || r.body["error"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", r.status, r.body, tt.status, tt.code)
			}
			if tt.status == 401 && tt.req.Method == "GET" && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(r.body["error_description"].(string), "pw-a") {
				t.Error("reply echoes the password")
			}
		})
	}
}

func TestBackendDownIs503(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{err: authn.ErrUnavailable})
	r := do(t, s.Handler(), get("service="+url.QueryEscape(testService), basic("alice", "pw")))
	if r.status != 503 {
		t.Fatalf("status %d, want 503", r.status)
	}
}

func TestHealthz(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{})
	r := do(t, s.Handler(), httptest.NewRequest("GET", "/healthz", nil))
	if r.status != 200 || r.body["status"] != "ok" {
		t.Fatalf("got %d %v", r.status, r.body)
	}
}

// FuzzTokenRequest throws arbitrary queries, forms and Authorization headers
// at the handler: every answer is JSON and below 500.
func FuzzTokenRequest(f *testing.F) {
	f.Add("GET", "service=registry.test:9001&scope=repository:a/b:pull", "Basic YWxpY2U6cHctYQ==", "")
	f.Add("GET", "account=alice&client_id=docker&offline_token=true&service=registry.test%3A9001", "Basic YWxpY2U6", "")
	f.Add("POST", "", "", "grant_type=password&username=alice&password=pw-a&service=registry.test%3A9001&scope=repository%3Aalice%2Fx%3Apull")
	f.Add("POST", "", "", "grant_type=refresh_token&refresh_token=abc&service=x")
	f.Add("GET", "scope=repository:localhost:5000/foo:pull,push&service=registry.test:9001", "Basic !!", "")
	auth := &fakeAuth{users: map[string]string{"alice": "pw-a"}}
	s, _ := newTestServer(f, auth)
	h := s.Handler()
	f.Fuzz(func(t *testing.T, method, query, authz, body string) {
		if method != "POST" {
			method = "GET"
		}
		r := httptest.NewRequest(method, "/token", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authz)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("status %d for %s %q", w.Code, method, query)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("reply is not JSON: %q", w.Body.String())
		}
		io.Discard.Write(w.Body.Bytes())
	})
}

// The backoff's (or Keystone's) "slow down" is a 429 with Retry-After in
// whole seconds, rounded up, and a JSON body.
func TestRetryAfterIs429(t *testing.T) {
	tests := []struct {
		after time.Duration
		want  string
	}{
		{1500 * time.Millisecond, "2"}, {time.Second, "1"}, {time.Millisecond, "1"}, {0, "1"}, {30 * time.Minute, "1800"},
	}
	for _, tt := range tests {
		s, logs := newTestServer(t, &fakeAuth{err: fmt.Errorf("backoff: %w", &authn.RetryAfterError{After: tt.after})})
		for _, req := range []*http.Request{
			get("service="+url.QueryEscape(testService), basic("alice", "pw")),
			post("grant_type=password&username=alice&password=pw&service="+url.QueryEscape(testService), "application/x-www-form-urlencoded"),
		} {
			r := do(t, s.Handler(), req)
			if r.status != 429 || r.header.Get("Retry-After") != tt.want || r.body["error"] != "slow_down" {
				t.Errorf("%v: got %d Retry-After %q %v, want 429 %s slow_down", tt.after, r.status, r.header.Get("Retry-After"), r.body, tt.want)
			}
		}
		if s.metrics.RequestCount("rate_limited") != 2 || !strings.Contains(logs.String(), `"status":429`) {
			t.Errorf("429 not counted as rate_limited or not audited")
		}
	}
}

// Every token request is counted once, by result.
func TestTokenMetrics(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{users: map[string]string{"alice": "pw-a"}})
	h := s.Handler()
	svc := "service=" + url.QueryEscape(testService)
	do(t, h, get(svc+"&scope=repository:alice/x:pull", basic("alice", "pw-a"))) // granted
	do(t, h, get(svc, basic("alice", "pw-a")))                                  // granted: nothing asked
	do(t, h, get(svc+"&scope=repository:bob/x:push", basic("alice", "pw-a")))   // denied
	do(t, h, get(svc, basic("alice", "bad")))                                   // unauthorized
	do(t, h, get("", basic("alice", "pw-a")))                                   // bad_request
	do(t, h, httptest.NewRequest("PUT", "/token", nil))                         // bad_request
	want := [len(metrics.RequestResults)]uint64{2, 1, 2, 1, 0, 0, 0}
	for i := range want {
		if got := s.metrics.RequestCount(metrics.RequestResults[i]); got != want[i] {
			t.Errorf("%s: %d, want %d", metrics.RequestResults[i], got, want[i])
		}
	}
}

// fakeChecker is a backend readiness check.
type fakeChecker struct{ err error }

func (f fakeChecker) Ready(ctx context.Context) error {
	if f.err == errHang {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.err
}

var errHang = errors.New("hang")

func TestReadyz(t *testing.T) {
	tests := []struct {
		name   string
		ready  authn.Checker
		status int
		body   map[string]any
	}{
		{"no checker", nil, 200, map[string]any{"status": "ready"}},
		{"ready", fakeChecker{}, 200, map[string]any{"status": "ready"}},
		{"down", fakeChecker{errors.New("dial tcp: connection refused")}, 503, map[string]any{"status": "unavailable", "reason": "keystone unreachable"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, &fakeAuth{})
			s.ready, s.backendName = tt.ready, "keystone"
			r := do(t, s.Handler(), httptest.NewRequest("GET", "/readyz", nil))
			if r.status != tt.status || fmt.Sprint(r.body) != fmt.Sprint(tt.body) {
				t.Fatalf("got %d %v, want %d %v", r.status, r.body, tt.status, tt.body)
			}
		})
	}
}

// A backend that hangs makes /readyz answer 503 after readyTimeout.
func TestReadyzTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestServer(t, &fakeAuth{})
		s.ready, s.backendName = fakeChecker{errHang}, "keystone"
		start := time.Now()
		r := do(t, s.Handler(), httptest.NewRequest("GET", "/readyz", nil))
		if r.status != 503 || time.Since(start) != readyTimeout {
			t.Fatalf("got %d after %v", r.status, time.Since(start))
		}
	})
}

// auditFirst is a ResponseWriter that notes how many audit lines had been
// written when the reply's status went out.
type auditFirst struct {
	*httptest.ResponseRecorder
	logs         *strings.Builder
	linesAtReply int
	replied      bool
}

func (w *auditFirst) WriteHeader(status int) {
	if !w.replied {
		w.replied, w.linesAtReply = true, strings.Count(w.logs.String(), `"msg":"token"`)
	}
	w.ResponseRecorder.WriteHeader(status)
}

func (w *auditFirst) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.ResponseRecorder.Write(b)
}

// TestAuditLineBeforeReply: every token request's audit line is written
// before a byte of its reply, for a grant, a reused grant, a refusal, a
// bad request and a refresh grant, so that no token leaves the server
// without its line.
func TestAuditLineBeforeReply(t *testing.T) {
	s, logs, _ := newRefreshServer(t, &fakeAuth{users: map[string]string{"alice": "pw-a"}}, time.Hour)
	s.reuse = reuse.New(reuse.Window(issuer.DefaultTokenTTL, reuse.DefaultPercent))
	h := s.Handler()
	rt := login(t, h, "alice", "pw-a")
	scope := "service=" + testService + "&scope=repository:alice/app:pull,push"
	for _, tt := range []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"grant", get(scope, basic("alice", "pw-a")), http.StatusOK},
		{"reused grant", get(scope, basic("alice", "pw-a")), http.StatusOK},
		{"bad password", get(scope, basic("alice", "wrong")), http.StatusUnauthorized},
		{"bad request", get("service=nowhere", basic("alice", "pw-a")), http.StatusBadRequest},
		{"refresh grant", refreshForm(rt, testService, "repository:alice/app:pull"), http.StatusOK},
	} {
		before := strings.Count(logs.String(), `"msg":"token"`)
		w := &auditFirst{ResponseRecorder: httptest.NewRecorder(), logs: logs}
		h.ServeHTTP(w, tt.req)
		if w.Code != tt.status {
			t.Fatalf("%s: status %d, want %d: %s", tt.name, w.Code, tt.status, w.Body)
		}
		if !w.replied || w.linesAtReply != before+1 {
			t.Errorf("%s: %d audit lines written before the reply, want 1", tt.name, w.linesAtReply-before)
		}
	}
}
