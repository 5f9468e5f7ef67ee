package serve

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// maxRenewEvery bounds how often Progress renews a request's deadlines:
// one deadline update per second is noise next to a TLS record per 16 KiB.
const maxRenewEvery = time.Second

// Progress wraps h so that reading the request body or writing the response
// pushes the connection's deadlines idle into the future. A transfer of any
// size and duration then succeeds while bytes keep moving, and a stalled one
// is cut after idle. Reading the body also renews the write deadline, so a
// long upload still has time to be answered. Deadlines are renewed at most
// once per second (more often when idle is short) per request. idle should
// be the server's Timeouts.Read and Write; if it is not positive, h is
// returned as is.
func Progress(h http.Handler, idle time.Duration) http.Handler {
	if idle <= 0 {
		return h
	}
	every := min(idle/4, maxRenewEvery)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &progress{rc: http.NewResponseController(w), idle: idle, every: every}
		pw := &progressWriter{ResponseWriter: w, p: p}
		if r.Body != nil && r.Body != http.NoBody {
			r = r.WithContext(r.Context()) // shallow copy: the caller's request stays as it was
			r.Body = &progressBody{ReadCloser: r.Body, p: p}
		}
		h.ServeHTTP(pw, r)
	})
}

// progress renews one request's deadlines. Body reads and response writes
// may come from different goroutines, hence the atomics.
type progress struct {
	rc        *http.ResponseController
	idle      time.Duration
	every     time.Duration
	lastRead  atomic.Int64 // unix nanoseconds of the last renewal from a read
	lastWrite atomic.Int64 // same, from a write
}

// due reports whether last was renewed at least p.every ago, and claims the
// renewal if so.
func (p *progress) due(last *atomic.Int64, now time.Time) bool {
	prev := last.Load()
	return now.UnixNano()-prev >= int64(p.every) && last.CompareAndSwap(prev, now.UnixNano())
}

// Errors are ignored: a protocol may not support a deadline (then the
// server's own limits apply), and a closed connection fails its next I/O.
func (p *progress) read() {
	now := time.Now()
	if p.due(&p.lastRead, now) {
		_ = p.rc.SetReadDeadline(now.Add(p.idle))
		_ = p.rc.SetWriteDeadline(now.Add(p.idle))
	}
}

func (p *progress) wrote() {
	now := time.Now()
	if p.due(&p.lastWrite, now) {
		_ = p.rc.SetWriteDeadline(now.Add(p.idle))
	}
}

type progressBody struct {
	io.ReadCloser
	p *progress
}

func (b *progressBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.read()
	}
	return n, err
}

// progressWriter keeps http.Flusher, and Unwrap lets http.ResponseController
// reach the server's ResponseWriter for everything else.
type progressWriter struct {
	http.ResponseWriter
	p *progress
}

func (w *progressWriter) Write(buf []byte) (int, error) {
	n, err := w.ResponseWriter.Write(buf)
	if n > 0 {
		w.p.wrote()
	}
	return n, err
}

func (w *progressWriter) Flush() {
	_ = w.p.rc.Flush()
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
