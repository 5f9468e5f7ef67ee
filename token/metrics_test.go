package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"stx-registry/token/access"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata")

// stepAuth answers with a fixed error and a fixed duration on a fake clock.
type stepAuth struct{ err error }

func (s stepAuth) Authenticate(context.Context, Credentials) (access.Identity, error) {
	return access.Identity{Name: "x"}, s.err
}

func TestMetricsGolden(t *testing.T) {
	m := NewMetrics("keystone", `v1.2.3 "dirty"`)
	for _, r := range requestResults {
		m.Request(r)
	}
	m.Request("granted")
	m.Request("no such result") // counted as error
	tick := time.Unix(0, 0)
	for _, c := range []struct {
		err error
		d   time.Duration
	}{
		{nil, 3 * time.Millisecond},
		{nil, 200 * time.Millisecond},
		{ErrBadCredentials, 250 * time.Millisecond}, // on a bucket bound: le is inclusive
		{&RetryAfterError{After: time.Second}, 5 * time.Millisecond},
		{ErrUnavailable, 14 * time.Second}, // above every bucket: +Inf only
	} {
		cb := NewCountingBackend(stepAuth{c.err}, m)
		calls := 0
		cb.now = func() time.Time {
			calls++
			if calls == 1 {
				return tick
			}
			return tick.Add(c.d)
		}
		cb.Authenticate(context.Background(), Credentials{})
	}
	m.CacheHit()
	m.CacheHit()
	m.CacheMiss()
	m.CacheEntries(7)
	m.BackoffRejection()

	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	m.WriteTo(w)
	w.Flush()
	golden := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestMetricsGolden -update to create it)", err)
	}
	if sb.String() != string(want) {
		t.Errorf("metrics differ from %s (-update to accept):\n%s", golden, sb.String())
	}
}

func TestMetricsHandler(t *testing.T) {
	m := NewMetrics("users", "test")
	nets := []netip.Prefix{netip.MustParsePrefix("192.168.204.0/24"), netip.MustParsePrefix("::1/128")}
	h := MetricsHandler(m, nets)
	tests := []struct {
		method, remote string
		status         int
	}{
		{"GET", "192.168.204.7:5000", 200},
		{"HEAD", "192.168.204.7:5000", 200},
		{"GET", "[::1]:5000", 200},
		{"GET", "[::ffff:192.168.204.7]:5000", 200}, // v4-mapped is unmapped first
		{"GET", "127.0.0.1:5000", 403},              // not in metrics_network
		{"GET", "10.0.0.1:5000", 403},
		{"GET", "garbage", 403},
		{"POST", "192.168.204.7:5000", 405},
		{"POST", "10.0.0.1:5000", 403},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/metrics", nil)
		r.RemoteAddr = tt.remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.status {
			t.Errorf("%s from %s: %d, want %d", tt.method, tt.remote, w.Code, tt.status)
			continue
		}
		ct := w.Header().Get("Content-Type")
		switch {
		case tt.status == 200 && ct != "text/plain; version=0.0.4; charset=utf-8":
			t.Errorf("Content-Type %q", ct)
		case tt.status != 200 && ct != "application/json":
			t.Errorf("%d reply is %q, want JSON", tt.status, ct)
		}
	}
}

// The default (no metrics_network) is loopback only, through the server.
func TestMetricsDefaultLoopback(t *testing.T) {
	s, _ := newTestServer(t, &fakeAuth{})
	h := s.Handler()
	for remote, want := range map[string]int{"127.0.0.1:1": 200, "[::1]:1": 200, "192.168.204.2:1": 403} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%s: %d, want %d", remote, w.Code, want)
		}
	}
}

func TestRequestResult(t *testing.T) {
	tests := []struct {
		status  int
		partial bool
		want    string
	}{
		{200, false, "granted"}, {200, true, "denied"}, {400, false, "bad_request"},
		{405, false, "bad_request"}, {413, false, "bad_request"}, {401, false, "unauthorized"},
		{429, false, "rate_limited"}, {503, false, "unavailable"}, {500, false, "error"},
	}
	for _, tt := range tests {
		if got := requestResult(tt.status, tt.partial); got != tt.want {
			t.Errorf("requestResult(%d, %v) = %s, want %s", tt.status, tt.partial, got, tt.want)
		}
	}
	var nilMetrics *Metrics // every recording method is safe on nil
	nilMetrics.Request("granted")
	nilMetrics.backendCall(errors.New("x"), 0)
	nilMetrics.CacheHit()
	nilMetrics.CacheMiss()
	nilMetrics.CacheEntries(1)
	nilMetrics.BackoffRejection()
}
