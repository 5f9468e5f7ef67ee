// Package metrics owns the registry's GET /metrics: Prometheus text
// exposition format 0.0.4, written by hand (no client library), served
// only to metrics_network addresses like the token server's. Every label
// takes values from a small fixed set, so the output has a stable order and
// a bounded size: no repository name, tag, digest or user ever becomes a
// label.
//
// Request counters are kept in memory by the middleware (Count); storage
// space, open upload sessions and garbage-collection totals are read when
// scraped, the last from the status file that every collection updates,
// so that a collection run by "stx-registry gc" in another process counts.
package metrics

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"stx-registry/registry/accesslog"
	"stx-registry/registry/gc"
	"stx-registry/registry/reserve"
	"stx-registry/registry/route"
	"stx-registry/shared/listen"
)

// Path is the metrics endpoint.
const Path = "/metrics"

// methods are the values of the method label; anything else is "other".
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "other"}

// statusClasses are the values of the status label.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// tokenFailures are the values of stx_registry_token_failures_total{reason},
// read from distribution's 401 challenge:
//
//	missing             no bearer token
//	invalid_token       a token that fails verification (signature, expiry, issuer, audience)
//	insufficient_scope  a valid token without the access the request needs
var tokenFailures = [...]string{"missing", "invalid_token", "insufficient_scope"}

// Metrics holds the in-memory counters. The zero value is not usable; use
// New.
type Metrics struct {
	version  string
	root     string
	guard    *reserve.Guard
	logger   *slog.Logger
	requests [len(methods)][len(route.Classes)][len(statusClasses)]atomic.Uint64
	received atomic.Uint64
	sent     atomic.Uint64
	tokens   [len(tokenFailures)]atomic.Uint64
}

// New returns zeroed metrics for the storage root and build version;
// guard gives the free space and the reserve.
func New(root, version string, guard *reserve.Guard, logger *slog.Logger) *Metrics {
	return &Metrics{root: root, version: version, guard: guard, logger: logger}
}

func indexOf[T comparable](list []T, v T, fallback int) int {
	for i, x := range list {
		if x == v {
			return i
		}
	}
	return fallback
}

// Count counts every request next answers: by method, route class and
// status class, bytes received and sent, and token failures.
func (m *Metrics) Count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := &countingReader{r: r.Body}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = body
		}
		rec := &accesslog.Recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.Status()
		mi := indexOf(methods[:], r.Method, len(methods)-1)
		ri := indexOf(route.Classes[:], route.Parse(r.URL.Path).Class, len(route.Classes)-1)
		si := min(max(status/100-1, 0), len(statusClasses)-1)
		m.requests[mi][ri][si].Add(1)
		m.received.Add(uint64(body.n.Load()))
		m.sent.Add(uint64(rec.Bytes))
		if status == http.StatusUnauthorized {
			m.tokens[tokenFailure(rec.Header().Get("WWW-Authenticate"))].Add(1)
		}
	})
}

// tokenFailure maps a 401 challenge to its tokenFailures index.
func tokenFailure(challenge string) int {
	switch {
	case strings.Contains(challenge, `error="insufficient_scope"`):
		return 2
	case strings.Contains(challenge, `error="invalid_token"`):
		return 1
	}
	return 0
}

// countingReader counts the body bytes a handler reads.
type countingReader struct {
	r io.ReadCloser
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// Handler answers /metrics itself, to metrics_network clients only, and
// passes every other request to next.
func (m *Metrics) Handler(nets []netip.Prefix, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != Path {
			next.ServeHTTP(w, r)
			return
		}
		if !listen.PeerIn(r, nets) {
			writeError(w, http.StatusForbidden, "metrics are served to metrics_network addresses only")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return
		}
		bw := bufio.NewWriter(w)
		m.WriteTo(bw)
		bw.Flush()
	})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

// WriteTo writes every metric in the text format.
func (m *Metrics) WriteTo(w *bufio.Writer) {
	head := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	// one writes a metric without labels: its header and its value.
	one := func(name, typ, help string, v any) {
		head(name, typ, help)
		fmt.Fprintf(w, "%s %v\n", name, v)
	}
	head("stx_registry_build_info", "gauge", "The running version, always 1.")
	fmt.Fprintf(w, "stx_registry_build_info{version=%q} 1\n", m.version)

	head("stx_registry_requests_total", "counter", "Requests answered, by method, route class and status class.")
	for mi, method := range methods {
		for ri, rc := range route.Classes {
			for si, sc := range statusClasses {
				fmt.Fprintf(w, "stx_registry_requests_total{method=%q,route=%q,status=%q} %d\n", method, rc, sc, m.requests[mi][ri][si].Load())
			}
		}
	}
	one("stx_registry_received_bytes_total", "counter", "Request body bytes read (pushed layers and manifests).", m.received.Load())
	one("stx_registry_sent_bytes_total", "counter", "Response body bytes written (pulled layers and manifests).", m.sent.Load())
	head("stx_registry_token_failures_total", "counter", "Requests refused with 401, by reason.")
	for i, reason := range tokenFailures {
		fmt.Fprintf(w, "stx_registry_token_failures_total{reason=%q} %d\n", reason, m.tokens[i].Load())
	}

	one("stx_registry_upload_sessions", "gauge", "Blob upload sessions open in the storage (started, not finished, not purged).", m.uploadSessions())

	_, sp, err := m.guard.Below()
	if err != nil {
		m.logger.Error("metrics: storage space unknown", "err", err)
	}
	one("stx_registry_storage_size_bytes", "gauge", "Size of the root_directory filesystem.", sp.Total)
	one("stx_registry_storage_free_bytes", "gauge", "Free bytes of the root_directory filesystem (for unprivileged writers).", sp.Free)
	one("stx_registry_storage_reserve_bytes", "gauge", "storage_reserve in bytes: below it, non-admin uploads are refused.", m.guard.Reserve.For(sp.Total))

	st, err := gc.ReadStatus(m.root)
	if err != nil {
		m.logger.Error("metrics: garbage collection status unknown", "err", err)
	}
	one("stx_registry_gc_runs_total", "counter", "Garbage collections completed on this storage root (dry runs excluded).", st.Runs)
	one("stx_registry_gc_freed_bytes_total", "counter", "Bytes of blobs removed by garbage collection.", st.Bytes)
	one("stx_registry_gc_freed_blobs_total", "counter", "Blobs removed by garbage collection.", st.Blobs)
	one("stx_registry_gc_freed_manifests_total", "counter", "Untagged manifests removed by garbage collection.", st.Manifests)
	one("stx_registry_gc_duration_seconds_total", "counter", "Time garbage collections held the storage lock, all runs together.", st.DurationSeconds)
	one("stx_registry_gc_last_duration_seconds", "gauge", "Time the last garbage collection held the storage lock.", st.LastDuration)
	one("stx_registry_gc_last_run_timestamp_seconds", "gauge", "When the last garbage collection finished, in Unix time; 0 if never.", st.LastFinishedUnix)
}

// uploadSessions counts the upload session directories of every
// repository, skipping the manifests and layers trees.
func (m *Metrics) uploadSessions() int {
	root, err := os.OpenRoot(m.root)
	if err != nil {
		return 0
	}
	defer root.Close()
	n := 0
	_ = fs.WalkDir(root.FS(), "docker/registry/v2/repositories", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		switch d.Name() {
		case "_manifests", "_layers":
			return fs.SkipDir
		case "_uploads":
			entries, _ := fs.ReadDir(root.FS(), p)
			n += len(entries)
			return fs.SkipDir
		}
		return nil
	})
	return n
}
