package keystone

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"stx-registry/shared/testrig"
	"stx-registry/shared/tlsconf/tlstest"
	"stx-registry/token/access"
	"stx-registry/token/authn"
)

// The real Keystone (shared/testrig, through ops/test-keystone.sh) is
// started at most once per test binary, by the first test that asks for it,
// and stopped by TestMain.
var (
	keystoneOnce sync.Once
	keystoneProc *testrig.Keystone // non-nil once a process was started
	keystoneDir  string
	keystoneErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if keystoneProc != nil {
		keystoneProc.Stop()
	}
	if keystoneDir != "" {
		os.RemoveAll(keystoneDir)
	}
	os.Exit(code)
}

// testKeystone is the shared Keystone with the few admin calls these tests
// make, each failing the test on error.
type testKeystone struct {
	*testrig.Keystone
	url string // http://127.0.0.1:PORT/v3
	seq *atomic.Int64
}

var keystoneSeq atomic.Int64

// realKeystone returns the shared Keystone, starting it on first use. A
// missing Keystone is a failure, not a skip: the backend must be tested
// against the real thing.
func realKeystone(t *testing.T) *testKeystone {
	t.Helper()
	keystoneOnce.Do(func() {
		if keystoneDir, keystoneErr = os.MkdirTemp("", "stx-test-keystone-"); keystoneErr != nil {
			return
		}
		keystoneProc, keystoneErr = testrig.StartKeystone(context.Background(), keystoneDir)
	})
	if keystoneErr != nil {
		t.Fatal(keystoneErr)
	}
	return &testKeystone{Keystone: keystoneProc, url: keystoneProc.URL, seq: &keystoneSeq}
}

// name returns base with a suffix unique to this test binary, so tests (and
// -count=N) never collide in the shared Keystone.
func (k *testKeystone) name(base string) string {
	return fmt.Sprintf("%s-%d", base, k.seq.Add(1))
}

func (k *testKeystone) create(t *testing.T, kind, name string, fields map[string]any) string {
	t.Helper()
	id, err := k.Create(kind, name, fields)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (k *testKeystone) createDomain(t *testing.T, name string) string {
	return k.create(t, "domains", name, nil)
}

func (k *testKeystone) createUser(t *testing.T, domainID, name, password string, enabled bool) string {
	return k.create(t, "users", name, map[string]any{"domain_id": domainID, "password": password, "enabled": enabled})
}

func (k *testKeystone) deleteUser(t *testing.T, id string) {
	t.Helper()
	status, _, body, err := k.Call(http.MethodDelete, "/users/"+id, nil)
	if err != nil || status != http.StatusNoContent {
		t.Fatalf("delete user: %d %s %v", status, body, err)
	}
}

func (k *testKeystone) createProject(t *testing.T, domainID, name string) string {
	return k.create(t, "projects", name, map[string]any{"domain_id": domainID})
}

func (k *testKeystone) createRole(t *testing.T, name string) string {
	return k.create(t, "roles", name, nil)
}

// roleID finds a role by name, such as bootstrap's "reader".
func (k *testKeystone) roleID(t *testing.T, name string) string {
	t.Helper()
	id, err := k.ID("roles", name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (k *testKeystone) grant(t *testing.T, projectID, userID, roleID string) {
	t.Helper()
	if err := k.Assign(projectID, userID, roleID); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is an io.Writer for a test logger, safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestKeystone builds the backend with a debug logger into the returned
// buffer.
func newTestKeystone(t *testing.T, c Config) (*Backend, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if c.UserDomain == "" {
		c.UserDomain = "Default"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	ks, err := New(c, log)
	if err != nil {
		t.Fatal(err)
	}
	return ks, logs
}

// checkLogin compares Authenticate's result with want (an Identity) or
// wantErr (a sentinel for errors.Is), and that the password leaked into
// neither the error nor the logs. A want without ID only asks for some
// user ID.
func checkLogin(t *testing.T, ks *Backend, logs *lockedBuffer, user, password string, want access.Identity, wantErr error) {
	t.Helper()
	id, err := ks.Authenticate(context.Background(), authn.Credentials{User: user, Password: password})
	if err == nil && want.ID == "" {
		if id.ID == "" {
			t.Errorf("Authenticate(%q) = %+v: no user ID", user, id)
		}
		id.ID = ""
	}
	switch {
	case wantErr == nil && err != nil:
		t.Errorf("Authenticate(%q) = %v, want %+v", user, err, want)
	case wantErr != nil && !errors.Is(err, wantErr):
		t.Errorf("Authenticate(%q) = %+v, %v; want %v", user, id, err, wantErr)
	case wantErr == nil && id != want:
		t.Errorf("Authenticate(%q) = %+v, want %+v", user, id, want)
	}
	if password != "" && err != nil && strings.Contains(err.Error(), password) {
		t.Errorf("error %q contains the password", err)
	}
	if password != "" && strings.Contains(logs.String(), password) {
		t.Errorf("logs contain the password:\n%s", logs)
	}
}

func TestKeystoneLogin(t *testing.T) {
	k := realKeystone(t)
	otherDomain := k.name("other")
	otherID := k.createDomain(t, otherDomain)
	alice, carol, dave := k.name("alice"), k.name("carol"), k.name("dave")
	k.createUser(t, "default", alice, "alice-pw-1", true)
	k.createUser(t, otherID, carol, "carol-pw-1", true)
	k.createUser(t, "default", dave, "dave-pw-1", false)
	base := strings.TrimSuffix(k.url, "/v3")

	tests := []struct {
		name           string
		url, domain    string // defaults: k.url, Default
		user, password string
		want           access.Identity
		wantErr        error
	}{
		{name: "good password", user: alice, password: "alice-pw-1", want: access.Identity{Name: alice}},
		{name: "url without /v3", url: base, user: alice, password: "alice-pw-1", want: access.Identity{Name: alice}},
		{name: "wrong password", user: alice, password: "wrong-pw-1", wantErr: authn.ErrBadCredentials},
		{name: "unknown user", user: k.name("nobody"), password: "alice-pw-1", wantErr: authn.ErrBadCredentials},
		{name: "empty password", user: alice, password: "", wantErr: authn.ErrBadCredentials},
		{name: "user of another domain", user: carol, password: "carol-pw-1", wantErr: authn.ErrBadCredentials},
		{name: "keystone_user_domain set", domain: otherDomain, user: carol, password: "carol-pw-1", want: access.Identity{Name: carol}},
		{name: "wrong domain for user", domain: otherDomain, user: alice, password: "alice-pw-1", wantErr: authn.ErrBadCredentials},
		{name: "unknown domain", domain: k.name("nodomain"), user: alice, password: "alice-pw-1", wantErr: authn.ErrBadCredentials},
		{name: "disabled user", user: dave, password: "dave-pw-1", wantErr: authn.ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = k.url
			}
			ks, logs := newTestKeystone(t, Config{URL: u, UserDomain: tt.domain})
			checkLogin(t, ks, logs, tt.user, tt.password, tt.want, tt.wantErr)
		})
	}
}

func TestKeystoneAdminRole(t *testing.T) {
	k := realKeystone(t)
	project, role := k.name("registry"), k.name("registry-admin")
	projectID := k.createProject(t, "default", project)
	roleID := k.createRole(t, role)
	erin, frank, gwen := k.name("erin"), k.name("frank"), k.name("gwen")
	k.grant(t, projectID, k.createUser(t, "default", erin, "erin-pw-1", true), roleID)
	k.createUser(t, "default", frank, "frank-pw-1", true)
	k.grant(t, projectID, k.createUser(t, "default", gwen, "gwen-pw-1", true), k.roleID(t, "reader"))

	adminCfg := Config{URL: k.url, AdminRole: role, AdminProject: project}
	tests := []struct {
		name           string
		cfg            Config
		user, password string
		want           access.Identity
		wantErr        error
	}{
		{"role on project", adminCfg, erin, "erin-pw-1", access.Identity{Name: erin, Admin: true}, nil},
		{"no role on project", adminCfg, frank, "frank-pw-1", access.Identity{Name: frank}, nil},
		{"other role on project", adminCfg, gwen, "gwen-pw-1", access.Identity{Name: gwen}, nil},
		{"admin with wrong password", adminCfg, erin, "wrong-pw-1", access.Identity{}, authn.ErrBadCredentials},
		{"admin check not configured", Config{URL: k.url}, erin, "erin-pw-1", access.Identity{Name: erin}, nil},
		{"admin_project missing", Config{URL: k.url, AdminRole: role, AdminProject: k.name("noproject")},
			erin, "erin-pw-1", access.Identity{Name: erin}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, logs := newTestKeystone(t, tt.cfg)
			checkLogin(t, ks, logs, tt.user, tt.password, tt.want, tt.wantErr)
		})
	}
}

// TestKeystoneLockout shows that one wrong password is one failure in
// Keystone's lockout count, even with the admin check on (the password is
// sent once per login), and that a locked account is bad credentials.
// The test Keystone locks after 5 failures.
func TestKeystoneLockout(t *testing.T) {
	k := realKeystone(t)
	project, role := k.name("lockout"), k.name("lockout-admin")
	k.createProject(t, "default", project)
	k.createRole(t, role)
	hank := k.name("hank")
	k.createUser(t, "default", hank, "hank-pw-1", true)
	ks, logs := newTestKeystone(t, Config{URL: k.url, AdminRole: role, AdminProject: project})

	for range 4 {
		checkLogin(t, ks, logs, hank, "wrong-pw-1", access.Identity{}, authn.ErrBadCredentials)
	}
	// 4 failures < 5: not locked; this success resets the count.
	checkLogin(t, ks, logs, hank, "hank-pw-1", access.Identity{Name: hank}, nil)
	for range 5 {
		checkLogin(t, ks, logs, hank, "wrong-pw-1", access.Identity{}, authn.ErrBadCredentials)
	}
	// Locked now: the right password no longer works.
	checkLogin(t, ks, logs, hank, "hank-pw-1", access.Identity{}, authn.ErrBadCredentials)
}

func TestKeystoneReady(t *testing.T) {
	k := realKeystone(t)
	ks, _ := newTestKeystone(t, Config{URL: k.url})
	if err := ks.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// fakeKeystone serves h on 127.0.0.1 for the cases a real Keystone cannot
// produce.
func fakeKeystone(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.CloseClientConnections() // ends a hanging handler
		srv.Close()
	})
	return srv
}

// fakeTokenReply answers like Keystone after a good password login.
func fakeTokenReply(w http.ResponseWriter, user string) {
	w.Header().Set("X-Subject-Token", "fake-subject-token")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"token":{"methods":["password"],"user":{"id":"u1","name":%q,"domain":{"id":"default","name":"Default"}},"expires_at":"2099-01-01T00:00:00.000000Z"}}`, user)
}

// hang is a Keystone that never answers: the handler returns only when the
// client goes away. It reads the request body first, because net/http
// notices a closed connection only once the body is consumed.
func hang(*testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	}
}

func TestKeystoneUnavailable(t *testing.T) {
	const password = "fake-secret-pw"
	tests := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
	}{
		{"hangs", hang},
		{"503 echoing the request", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.Copy(w, r.Body) // would leak the password if errors carried bodies
			}
		}},
		{"400", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":{"code":400}}`, http.StatusBadRequest)
			}
		}},
		{"404", func(*testing.T) http.HandlerFunc { return http.NotFound }},
		{"redirect", func(t *testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v3/auth/tokens" {
					t.Errorf("the login followed a redirect to %s", r.URL)
				}
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			}
		}},
		{"huge body", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Subject-Token", "fake-subject-token")
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `{"token":{"user":{"name":"`)
				chunk := strings.Repeat("a", 64<<10)
				for range 8 << 20 / len(chunk) {
					if _, err := io.WriteString(w, chunk); err != nil {
						return
					}
				}
				io.WriteString(w, `"}}}`)
			}
		}},
		{"reply without user", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Subject-Token", "fake-subject-token")
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `{"token":{}}`)
			}
		}},
		{"not JSON", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `<html>`)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeKeystone(t, tt.handler(t))
			const timeout = time.Second
			ks, logs := newTestKeystone(t, Config{URL: srv.URL + "/v3", Timeout: timeout})
			start := time.Now()
			checkLogin(t, ks, logs, "alice", password, access.Identity{}, authn.ErrUnavailable)
			// Generous: the point is "bounded", not exact timing.
			if d := time.Since(start); d > timeout+10*time.Second {
				t.Errorf("Authenticate took %s with keystone_timeout %s", d, timeout)
			}
		})
	}
}

// TestKeystoneAdminCheckUnavailable: a failing admin check fails the login
// rather than quietly issuing a non-admin identity.
func TestKeystoneAdminCheckUnavailable(t *testing.T) {
	srv := fakeKeystone(t, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Auth struct {
				Identity struct{ Methods []string }
			}
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		if len(body.Auth.Identity.Methods) == 1 && body.Auth.Identity.Methods[0] == "password" {
			fakeTokenReply(w, "alice")
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	})
	ks, logs := newTestKeystone(t, Config{URL: srv.URL + "/v3", AdminRole: "admin", AdminProject: "admin"})
	checkLogin(t, ks, logs, "alice", "fake-secret-pw", access.Identity{}, authn.ErrUnavailable)
}

func TestKeystoneRetryAfter(t *testing.T) {
	srv := fakeKeystone(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	ks, _ := newTestKeystone(t, Config{URL: srv.URL + "/v3"})
	_, err := ks.Authenticate(context.Background(), authn.Credentials{User: "alice", Password: "pw"})
	var ra *authn.RetryAfterError
	if !errors.As(err, &ra) || ra.After != 7*time.Second {
		t.Fatalf("Authenticate = %v, want RetryAfterError{7s}", err)
	}
}

func TestKeystoneConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ks, logs := newTestKeystone(t, Config{URL: "http://" + addr + "/v3"})
	checkLogin(t, ks, logs, "alice", "fake-secret-pw", access.Identity{}, authn.ErrUnavailable)
	if err := ks.Ready(context.Background()); !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("Ready = %v, want ErrUnavailable", err)
	}
}

func TestKeystoneTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t)
	certFile, keyFile, caFile := ca.Files(t, dir)
	wrongCA := filepath.Join(dir, "wrong-ca.pem")
	tlstest.Write(t, wrongCA, tlstest.NewCA(t).PEM)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/auth/tokens" {
			fakeTokenReply(w, "alice")
			return
		}
		io.WriteString(w, `{"version":{"id":"v3.14"}}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)

	tests := []struct {
		name    string
		caFile  string
		want    access.Identity
		wantErr error
	}{
		{"keystone_ca", caFile, access.Identity{Name: "alice"}, nil},
		{"wrong keystone_ca", wrongCA, access.Identity{}, authn.ErrUnavailable},
		{"system roots", "", access.Identity{}, authn.ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, logs := newTestKeystone(t, Config{URL: srv.URL + "/v3", CAFile: tt.caFile})
			checkLogin(t, ks, logs, "alice", "fake-secret-pw", tt.want, tt.wantErr)
			err := ks.Ready(context.Background())
			if (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Ready = %v", err)
			}
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("https keystone_url logged a warning:\n%s", logs)
			}
		})
	}
}

func TestKeystoneReadyFake(t *testing.T) {
	tests := []struct {
		name    string
		handler func(t *testing.T) http.HandlerFunc
		ok      bool
	}{
		{"200", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }
		}, true},
		{"300", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMultipleChoices) }
		}, true},
		{"503", func(*testing.T) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
		}, false},
		{"hangs", hang, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeKeystone(t, tt.handler(t))
			ks, _ := newTestKeystone(t, Config{URL: srv.URL + "/v3", Timeout: time.Second})
			err := ks.Ready(context.Background())
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, authn.ErrUnavailable)) {
				t.Errorf("Ready = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestKeystoneNewErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	tlstest.Write(t, notPEM, []byte("hello"))
	good := Config{URL: "https://127.0.0.1:5000/v3", UserDomain: "Default", Timeout: time.Second}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"ftp url", func(c *Config) { c.URL = "ftp://127.0.0.1/v3" }, "keystone_url"},
		{"no host", func(c *Config) { c.URL = "https:///v3" }, "keystone_url"},
		{"empty domain", func(c *Config) { c.UserDomain = "" }, "keystone_user_domain"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "keystone_timeout"},
		{"role without project", func(c *Config) { c.AdminRole = "admin" }, "admin_project"},
		{"project without role", func(c *Config) { c.AdminProject = "admin" }, "admin_role"},
		{"missing ca", func(c *Config) { c.CAFile = filepath.Join(dir, "missing.pem") }, "keystone_ca"},
		{"ca not PEM", func(c *Config) { c.CAFile = notPEM }, "keystone_ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			_, err := New(c, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := New(good, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("New(good) = %v", err)
	}
}

func TestKeystoneWarnsOnHTTP(t *testing.T) {
	_, logs := newTestKeystone(t, Config{URL: "http://127.0.0.1:5000/v3"})
	if s := logs.String(); !strings.Contains(s, "level=WARN") || !strings.Contains(s, "plain http") {
		t.Errorf("no warning for an http keystone_url:\n%s", s)
	}
}

func TestKeystoneRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"", defaultRetryAfter},
		{"0", defaultRetryAfter},
		{"-3", defaultRetryAfter},
		{"1.5", defaultRetryAfter},
		{"soon", defaultRetryAfter},
		{"300", 5 * time.Minute},
		{"301", maxRetryAfter},
		{"99999999999999999999999", maxRetryAfter},
		{now.Add(42 * time.Second).Format(http.TimeFormat), 42 * time.Second},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter},
		{now.Add(-time.Hour).Format(http.TimeFormat), defaultRetryAfter},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.header, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.header, got, tt.want)
		}
	}
}

func FuzzKeystoneRetryAfter(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"7", "0", "", "-1", "1e3", "18446744073709551616",
		now.Add(time.Minute).Format(http.TimeFormat), "Mon, 02 Jan 2006 15:04:05 GMT", "Monday, 02-Jan-06 15:04:05 MST"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d := parseRetryAfter(s, now); d < time.Second || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %s, outside [1s, %s]", s, d, maxRetryAfter)
		}
	})
}

// TestKeystoneLimitedBody checks the cap on Keystone replies at its edge.
func TestKeystoneLimitedBody(t *testing.T) {
	tests := []struct {
		size    int
		wantErr bool
	}{
		{0, false},
		{maxKeystoneResponseBytes - 1, false},
		{maxKeystoneResponseBytes, true},
		{8 * maxKeystoneResponseBytes, true},
	}
	for _, tt := range tests {
		b := &limitedBody{ReadCloser: io.NopCloser(bytes.NewReader(make([]byte, tt.size))), left: maxKeystoneResponseBytes}
		n, err := io.Copy(io.Discard, b)
		if (err != nil) != tt.wantErr || n > maxKeystoneResponseBytes {
			t.Errorf("size %d: read %d, %v; want error %v", tt.size, n, err, tt.wantErr)
		}
	}
}
