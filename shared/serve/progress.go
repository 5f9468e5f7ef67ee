package serve

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// maxRenewEvery bounds how often Progress renews a request's deadlines:
// one deadline update per second is noise next to a TLS record per 16 KiB.
const maxRenewEvery = time.Second

// Progress wraps h so that, once the handler has called AllowProgress for
// the request, reading the request body or writing the response pushes the
// connection's deadlines idle into the future. A transfer of any size and
// duration then succeeds while bytes keep moving, and a stalled one is cut
// after idle. Reading the body also renews the write deadline, so a long
// upload still has time to be answered. Deadlines are renewed at most once
// per second (more often when idle is short) per request.
//
// Until AllowProgress is called nothing is renewed: the server's
// ReadHeaderTimeout, ReadTimeout and WriteTimeout apply in full, so a
// client that has not been authorized cannot hold a connection open by
// trickling bytes. idle should be the server's Timeouts.Read and Write; if
// it is not positive, h is returned as is.
func Progress(h http.Handler, idle time.Duration) http.Handler {
	if idle <= 0 {
		return h
	}
	every := min(idle/4, maxRenewEvery)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &progress{rc: http.NewResponseController(w), idle: idle, every: every}
		pw := &progressWriter{ResponseWriter: w, p: p}
		// A shallow copy: the caller's request stays as it was.
		r = r.WithContext(context.WithValue(r.Context(), progressKey{}, p))
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &progressBody{ReadCloser: r.Body, p: p}
		}
		h.ServeHTTP(pw, r)
	})
}

// AllowProgress lets the Progress wrapping ctx's request renew the
// connection's deadlines from now on, as its body is read and its response
// written. Call it once the request is authorized to move a large body. It
// does nothing for a request not served through Progress.
func AllowProgress(ctx context.Context) {
	if p, ok := ctx.Value(progressKey{}).(*progress); ok {
		p.allowed.Store(true)
	}
}

// progressKey is the context key of a request's *progress.
type progressKey struct{}

// progress renews one request's deadlines. Body reads and response writes
// may come from different goroutines, hence the atomics.
type progress struct {
	rc        *http.ResponseController
	idle      time.Duration
	every     time.Duration
	allowed   atomic.Bool  // set by AllowProgress
	lastRead  atomic.Int64 // unix nanoseconds of the last renewal from a read
	lastWrite atomic.Int64 // same, from a write
}

// due reports whether renewals are allowed and last was renewed at least
// p.every ago, and claims the renewal if so.
func (p *progress) due(last *atomic.Int64, now time.Time) bool {
	if !p.allowed.Load() {
		return false
	}
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
