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
		rec := &Recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		attrs := []any{
			"method", r.Method,
			"path", r.URL.Path,
			"status", rec.Status(),
			"bytes", rec.Bytes,
			"duration", time.Since(start),
			"remote", r.RemoteAddr,
		}
		if q := r.URL.Query(); q.Has("mount") || q.Has("from") {
			attrs = append(attrs, "mount", q.Get("mount"), "from", q.Get("from"))
		}
		logger.Info("request", attrs...)
	})
}

// Recorder records the status and the number of body bytes written; the
// metrics use it too. Unwrap lets http.ResponseController reach the
// connection (for deadlines and flushing) through it.
type Recorder struct {
	http.ResponseWriter
	status int
	Bytes  int64 // body bytes written
}

// Status is the status sent, 200 if the handler sent none.
func (s *Recorder) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

func (s *Recorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *Recorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.Bytes += int64(n)
	return n, err
}

func (s *Recorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
