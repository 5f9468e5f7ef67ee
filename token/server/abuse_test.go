package server

import (
	"net/url"
	"strings"
	"testing"

	"stx-registry/token/authn"
)

// The Keystone lockout guard's refusal is a 429 that says what happened and
// what to do; a full gate or table is a 503 with Retry-After.
func TestHeldAndBusy(t *testing.T) {
	tests := []struct {
		err    error
		status int
		retry  string
		text   string
	}{
		{authn.ErrHeld, 429, "", "stx-token-server unlock"},
		{authn.ErrBusy, 503, "1", "retry after 1 second"},
	}
	for _, tt := range tests {
		s, logs := newTestServer(t, &fakeAuth{err: tt.err})
		r := do(t, s.Handler(), get("service="+url.QueryEscape(testService), basic("alice", "pw")))
		desc, _ := r.body["error_description"].(string)
		if r.status != tt.status || r.header.Get("Retry-After") != tt.retry || !strings.Contains(desc, tt.text) {
			t.Errorf("%v: %d Retry-After %q %q", tt.err, r.status, r.header.Get("Retry-After"), desc)
		}
		if strings.Contains(logs.String(), "authentication backend failed") {
			t.Errorf("%v logged as a backend failure", tt.err)
		}
	}
}

// Issue 10 §4 through the handler: four bad logins by mallory, then demo's
// correct password from the same address is served.
func TestSharedAddressHTTP(t *testing.T) {
	auth := authn.Chain(&fakeAuth{users: map[string]string{"demo": "demo-pw"}}, authn.ChainConfig{
		Cache: authn.CacheConfig{TTL: authn.DefaultCacheTTL, Size: 16, Domain: "Default"},
	}, nil)
	s, _ := newTestServer(t, auth)
	h := s.Handler()
	q := "service=" + url.QueryEscape(testService)
	for i := range 4 {
		r := do(t, h, get(q, basic("mallory", "guess"+string(rune('a'+i)))))
		if r.status != 401 && r.status != 429 {
			t.Fatalf("mallory %d: %d", i, r.status)
		}
	}
	if r := do(t, h, get(q, basic("demo", "demo-pw"))); r.status != 200 {
		t.Fatalf("demo from mallory's address: %d %v", r.status, r.body)
	}
}
