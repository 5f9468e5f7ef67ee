// Package metrics owns the token server's Prometheus metrics: the counters,
// their fixed label values, and the text exposition format. It knows nothing
// about HTTP handlers or authentication backends; callers pass labels.
package metrics

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Metrics are the token server's Prometheus metrics, written by hand in the
// text exposition format 0.0.4. Every label has a small fixed set of values
// known at start, so the output has a stable order and a bounded size. All
// counters are atomic; the methods may be called on a nil *Metrics and then
// do nothing.
type Metrics struct {
	version string // stx_build_info{version}
	backend string // stx_backend_calls_total{backend}: "users" or "keystone"

	requests          [len(RequestResults)]atomic.Uint64
	backendCalls      [len(BackendResults)]atomic.Uint64
	durationBuckets   [len(durationBuckets)]atomic.Uint64 // not cumulative; summed when written
	durationCount     atomic.Uint64
	durationSumNanos  atomic.Int64
	cacheHits         atomic.Uint64
	cacheMisses       atomic.Uint64
	cacheEntries      atomic.Int64
	backoffRejections atomic.Uint64
}

// RequestResults are the values of stx_token_requests_total{result}, one per
// token request:
//
//	granted      200 with some of the requested access, or none was requested
//	denied       200 but none of the requested access was granted
//	bad_request  400, 405, 413: a malformed request
//	unauthorized 401: no or bad credentials
//	rate_limited 429: the backoff holds the user or address, or the backend said so
//	unavailable  503: the backend is down
//	error        500: a bug or a signing failure
var RequestResults = [...]string{"granted", "denied", "bad_request", "unauthorized", "rate_limited", "unavailable", "error"}

// BackendResults are the values of stx_backend_calls_total{result}, one per
// call that reached the real backend.
var BackendResults = [...]string{"success", "bad_credentials", "rate_limited", "unavailable"}

// durationBuckets are the upper bounds, in seconds, of
// stx_backend_call_duration_seconds: a bcrypt check takes a few ms, a
// Keystone login about 200 ms, and keystone_timeout is at most 8 s.
var durationBuckets = [...]float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// New returns zeroed metrics for the named backend and build version.
func New(backend, version string) *Metrics {
	return &Metrics{backend: backend, version: version}
}

// RequestResult maps a token reply to its result label.
func RequestResult(status int, partial bool) string {
	switch {
	case status == http.StatusOK && partial:
		return "denied"
	case status == http.StatusOK:
		return "granted"
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusServiceUnavailable:
		return "unavailable"
	case status >= 400 && status < 500:
		return "bad_request"
	}
	return "error"
}

// Request counts one token request by its result label.
func (m *Metrics) Request(result string) {
	if m == nil {
		return
	}
	for i, r := range RequestResults {
		if r == result {
			m.requests[i].Add(1)
			return
		}
	}
	m.requests[len(RequestResults)-1].Add(1) // "error": an unknown label is a bug
}

// BackendCall counts one call to the real backend, by its result label
// (one of BackendResults; an unknown label counts as "unavailable"), and
// its duration.
func (m *Metrics) BackendCall(result string, d time.Duration) {
	if m == nil {
		return
	}
	i := 3 // unavailable: anything that is not the client's fault
	for j, r := range BackendResults {
		if r == result {
			i = j
		}
	}
	m.backendCalls[i].Add(1)
	sec := d.Seconds()
	for b, le := range durationBuckets {
		if sec <= le {
			m.durationBuckets[b].Add(1)
			break
		}
	}
	m.durationCount.Add(1)
	m.durationSumNanos.Add(int64(d))
}

// The *Count methods read the counters back, for tests.

// RequestCount is how many token requests were counted with result.
func (m *Metrics) RequestCount(result string) uint64 {
	for i, r := range RequestResults {
		if r == result {
			return m.requests[i].Load()
		}
	}
	return 0
}

// CacheHit, CacheMiss and CacheEntries are fed by CredentialCache.
func (m *Metrics) CacheHit() {
	if m != nil {
		m.cacheHits.Add(1)
	}
}

func (m *Metrics) CacheMiss() {
	if m != nil {
		m.cacheMisses.Add(1)
	}
}

func (m *Metrics) CacheEntries(n int) {
	if m != nil {
		m.cacheEntries.Store(int64(n))
	}
}

// BackoffRejection is fed by Backoff for each request it refuses.
func (m *Metrics) BackoffRejection() {
	if m != nil {
		m.backoffRejections.Add(1)
	}
}

// CacheHitCount is stx_credential_cache_hits_total.
func (m *Metrics) CacheHitCount() uint64 { return m.cacheHits.Load() }

// CacheMissCount is stx_credential_cache_misses_total.
func (m *Metrics) CacheMissCount() uint64 { return m.cacheMisses.Load() }

// CacheEntryCount is stx_credential_cache_entries.
func (m *Metrics) CacheEntryCount() int64 { return m.cacheEntries.Load() }

// BackoffRejectionCount is stx_backoff_rejections_total.
func (m *Metrics) BackoffRejectionCount() uint64 { return m.backoffRejections.Load() }

// WriteTo writes every metric in the text format, in a fixed order.
func (m *Metrics) WriteTo(w *bufio.Writer) {
	family := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	family("stx_token_requests_total", "counter", "Token requests by result.")
	for i, r := range RequestResults {
		fmt.Fprintf(w, "stx_token_requests_total{result=%q} %d\n", r, m.requests[i].Load())
	}
	be := escapeLabel(m.backend)
	family("stx_backend_calls_total", "counter", "Calls that reached the authentication backend, by result.")
	for i, r := range BackendResults {
		fmt.Fprintf(w, "stx_backend_calls_total{backend=\"%s\",result=%q} %d\n", be, r, m.backendCalls[i].Load())
	}
	family("stx_backend_call_duration_seconds", "histogram", "Duration of calls to the authentication backend.")
	var cum uint64
	for i, le := range durationBuckets {
		cum += m.durationBuckets[i].Load()
		fmt.Fprintf(w, "stx_backend_call_duration_seconds_bucket{backend=\"%s\",le=%q} %d\n", be, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	count := m.durationCount.Load()
	fmt.Fprintf(w, "stx_backend_call_duration_seconds_bucket{backend=\"%s\",le=\"+Inf\"} %d\n", be, count)
	fmt.Fprintf(w, "stx_backend_call_duration_seconds_sum{backend=\"%s\"} %s\n", be,
		strconv.FormatFloat(time.Duration(m.durationSumNanos.Load()).Seconds(), 'g', -1, 64))
	fmt.Fprintf(w, "stx_backend_call_duration_seconds_count{backend=\"%s\"} %d\n", be, count)
	family("stx_credential_cache_hits_total", "counter", "Logins answered from the credential cache.")
	fmt.Fprintf(w, "stx_credential_cache_hits_total %d\n", m.cacheHits.Load())
	family("stx_credential_cache_misses_total", "counter", "Logins the credential cache passed on.")
	fmt.Fprintf(w, "stx_credential_cache_misses_total %d\n", m.cacheMisses.Load())
	family("stx_credential_cache_entries", "gauge", "Entries in the credential cache.")
	fmt.Fprintf(w, "stx_credential_cache_entries %d\n", m.cacheEntries.Load())
	family("stx_backoff_rejections_total", "counter", "Logins refused by the brute-force backoff without asking the backend.")
	fmt.Fprintf(w, "stx_backoff_rejections_total %d\n", m.backoffRejections.Load())
	family("stx_build_info", "gauge", "Build information; always 1.")
	fmt.Fprintf(w, "stx_build_info{version=\"%s\"} 1\n", escapeLabel(m.version))
}

// escapeLabel escapes a label value as the text format requires.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
