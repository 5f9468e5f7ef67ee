package server

// Benchmarks of the whole token path in process, for profiling (make bench
// measures the daemon over TLS; this finds where its time goes):
//
//	go test -run '^$' -bench TokenHandler -cpuprofile cpu.out ./token/server
//	go tool pprof -top server.test cpu.out

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stx-registry/token/authn"
	"stx-registry/token/issuer"
	"stx-registry/token/metrics"
	"stx-registry/token/refresh"
	"stx-registry/token/reuse"
)

// newBenchServer is newTestServer with the daemon's real authentication
// chain for auth_backend users (cache, backoff, counting, users file),
// refresh tokens in a temporary state directory, and the audit log written
// as text to io.Discard instead of collected in memory.
func newBenchServer(b *testing.B) *Server {
	b.Helper()
	dir := b.TempDir()
	users := filepath.Join(dir, "users")
	if err := authn.SetPassword(users, "bench", []byte("bench-password")); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	uf, err := authn.NewUsersFile(users, log)
	if err != nil {
		b.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		b.Fatal(err)
	}
	store, err := refresh.NewFileStore(state, refresh.DefaultLimits, log)
	if err != nil {
		b.Fatal(err)
	}
	m := metrics.New("users", "bench")
	auth := authn.Chain(uf, authn.ChainConfig{
		Cache:   authn.CacheConfig{TTL: authn.DefaultCacheTTL, Size: authn.DefaultCacheSize, Domain: "Default"},
		Backoff: authn.BackoffConfig{Free: authn.DefaultBackoffFree, Max: authn.DefaultBackoffMax},
	}, m)
	s, _ := newTestServer(b, auth)
	s.log, s.audit, s.metrics = log, &Audit{log: log}, m
	s.refresh, s.refreshTTL, s.users = store, refresh.DefaultRefreshTokenTTL, authn.NewUsersFileChecker(uf)
	return s
}

const benchQuery = "service=" + testService + "&scope=repository:bench/app:pull,push"

func benchGet(offline bool) *http.Request {
	q := benchQuery
	if offline {
		q += "&offline_token=true&client_id=docker"
	}
	r := httptest.NewRequest(http.MethodGet, "https://token.test/token/?"+q, nil)
	r.SetBasicAuth("bench", "bench-password")
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

// BenchmarkTokenHandler measures one token request through Server.Handler:
// a GET with Basic auth whose password is cached (the steady state of make
// bench's token load), the same with token reuse, and a refresh grant.
func BenchmarkTokenHandler(b *testing.B) {
	s := newBenchServer(b)
	h := s.Handler()
	// The first login pays bcrypt and yields the refresh token.
	w := httptest.NewRecorder()
	h.ServeHTTP(w, benchGet(true))
	var first struct {
		RefreshToken string `json:"refresh_token"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &first) != nil || first.RefreshToken == "" {
		b.Fatalf("first login: %d %s", w.Code, w.Body)
	}
	get := func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, benchGet(false))
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("get", get)
	// The same with token reuse at its default: all but the first are hits.
	s.reuse = reuse.New(reuse.Window(issuer.DefaultTokenTTL, reuse.DefaultPercent))
	b.Run("get_reuse", get)
	s.reuse = nil
	form := url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}, "client_id": {"docker"},
		"service": {testService}, "scope": {"repository:bench/app:pull,push"},
	}.Encode()
	b.Run("refresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest(http.MethodPost, "https://token.test/token/", strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.RemoteAddr = "127.0.0.1:40000"
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
