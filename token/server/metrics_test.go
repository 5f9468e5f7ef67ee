package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"stx-registry/token/metrics"
)

func TestMetricsHandler(t *testing.T) {
	m := metrics.New("users", "test")
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
