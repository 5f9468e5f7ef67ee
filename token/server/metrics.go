package server

import (
	"bufio"
	"net/http"
	"net/netip"

	"stx-registry/shared/listen"
	"stx-registry/token/metrics"
)

// MetricsHandler serves GET /metrics to clients inside nets only; anyone
// else gets a JSON 403. The metrics hold no secrets, but user counts and
// failure rates are still nobody else's business.
func MetricsHandler(m *metrics.Metrics, nets []netip.Prefix) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !listen.PeerIn(r, nets) {
			writeError(w, http.StatusForbidden, "forbidden", "metrics are served to metrics_network addresses only")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		bw := bufio.NewWriter(w)
		m.WriteTo(bw)
		bw.Flush()
	})
}
