package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"stx-registry/registry/route"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"stx-registry/registry/reserve"
	"stx-registry/shared/listen"
)

func newMetrics(t *testing.T) *Metrics {
	root := t.TempDir()
	guard := &reserve.Guard{Root: root, Reserve: reserve.Size{Bytes: 1 << 20, Set: true},
		Statfs: func(string) (reserve.Space, error) { return reserve.Space{Total: 100 << 20, Free: 40 << 20}, nil }}
	return New(root, "v1.2.3", guard, slog.New(slog.DiscardHandler))
}

// TestMetricsParse checks the output with Prometheus' own text parser and
// checks that a repository name never becomes a label.
func TestMetricsParse(t *testing.T) {
	m := newMetrics(t)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch r.URL.Path {
		case "/v2/secret-team/app/manifests/v1":
			w.Write([]byte("manifest"))
		case "/v2/":
			w.Header().Set("WWW-Authenticate", `Bearer realm="x",service="y",error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="x",service="y",scope="repository:secret-team/app:push",error="insufficient_scope"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	h := m.Count(m.Handler(listen.Loopback, app))
	for _, req := range []*http.Request{
		httptest.NewRequest("GET", "/v2/secret-team/app/manifests/v1", nil),
		httptest.NewRequest("PUT", "/v2/secret-team/app/manifests/v1", strings.NewReader("12345")),
		httptest.NewRequest("GET", "/v2/", nil),
		httptest.NewRequest("BREW", "/v2/secret-team/app/blobs/uploads/", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	req := httptest.NewRequest("GET", Path, nil)
	req.RemoteAddr = "127.0.0.1:5000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Header())
	}
	body := rec.Body.String()
	if strings.Contains(body, "secret-team") {
		t.Error("a repository name appears in the metrics")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	value := func(name string, labels map[string]string) float64 {
		f := families[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
	next:
		for _, mt := range f.Metric {
			for _, l := range mt.Label {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case mt.Counter != nil:
				return mt.Counter.GetValue()
			case mt.Gauge != nil:
				return mt.Gauge.GetValue()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"stx_registry_requests_total", map[string]string{"method": "GET", "route": "manifest", "status": "2xx"}, 1},
		{"stx_registry_requests_total", map[string]string{"method": "PUT", "route": "manifest", "status": "2xx"}, 1},
		{"stx_registry_requests_total", map[string]string{"method": "GET", "route": "base", "status": "4xx"}, 1},
		{"stx_registry_requests_total", map[string]string{"method": "other", "route": "upload", "status": "4xx"}, 1},
		{"stx_registry_received_bytes_total", nil, 5},
		{"stx_registry_sent_bytes_total", nil, 16}, // the GET and the PUT both answer "manifest"
		{"stx_registry_token_failures_total", map[string]string{"reason": "invalid_token"}, 1},
		{"stx_registry_token_failures_total", map[string]string{"reason": "insufficient_scope"}, 1},
		{"stx_registry_token_failures_total", map[string]string{"reason": "missing"}, 0},
		{"stx_registry_storage_free_bytes", nil, 40 << 20},
		{"stx_registry_storage_size_bytes", nil, 100 << 20},
		{"stx_registry_storage_reserve_bytes", nil, 1 << 20},
		{"stx_registry_upload_sessions", nil, 0},
		{"stx_registry_gc_runs_total", nil, 0},
		{"stx_registry_gc_freed_bytes_total", nil, 0},
		{"stx_registry_gc_last_duration_seconds", nil, 0},
		{"stx_registry_build_info", map[string]string{"version": "v1.2.3"}, 1},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Bounded: every label set is fixed, whatever the traffic.
	if n := len(families["stx_registry_requests_total"].Metric); n != 7*len(route.Classes)*5 {
		t.Errorf("%d request series", n)
	}
}

func TestMetricsAllowList(t *testing.T) {
	m := newMetrics(t)
	h := m.Handler([]netip.Prefix{netip.MustParsePrefix("192.168.204.2/32")}, http.NotFoundHandler())
	for _, c := range []struct {
		peer, method string
		want         int
	}{
		{"192.168.204.2:4000", "GET", 200},
		{"127.0.0.1:4000", "GET", 403},
		{"10.0.0.1:4000", "GET", 403},
		{"192.168.204.2:4000", "POST", 405},
	} {
		req := httptest.NewRequest(c.method, Path, nil)
		req.RemoteAddr = c.peer
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.peer, rec.Code, c.want)
		}
	}
}
