// Package accesslog writes the registry's access log: one slog line per
// request, with no headers and no query string.
package accesslog

import (
	"log/slog"
	"net/http"
	"time"
)

// Handler writes one line per request: method, path, status, bytes
// written, duration and the peer address.
//
// It never logs headers (Authorization carries the bearer token) nor the
// query string. A /v2 query holds no credentials, but it is of no use in an
// access log either, except mount and from of a cross-repository mount,
// which name a digest and a repository and explain a 202 or 201; those two
// are logged when present. The peer is the TCP peer, not X-Forwarded-For,
// which any client can forge. Values are quoted by slog, so a path cannot
// inject a fake log line.
func Handler(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		attrs := []any{
			"method", r.Method,
			"path", r.URL.Path,
			"status", rec.status,
			"bytes", rec.bytes,
			"duration", time.Since(start),
			"remote", r.RemoteAddr,
		}
		if q := r.URL.Query(); q.Has("mount") || q.Has("from") {
			attrs = append(attrs, "mount", q.Get("mount"), "from", q.Get("from"))
		}
		logger.Info("request", attrs...)
	})
}

// statusWriter records the status and the number of body bytes written.
// Unwrap lets http.ResponseController reach the connection (for deadlines
// and flushing) through it.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
