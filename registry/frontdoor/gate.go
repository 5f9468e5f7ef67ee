package frontdoor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"stx-registry/shared/serve"
)

// errBodyBeforeAuthorization is what reading a request body returns before
// the request's token has been verified. Distribution never does that; if
// it ever did, the read fails and is logged as a bug.
var errBodyBeforeAuthorization = errors.New("frontdoor: request body read before the token was verified")

// gate is one request's authorization state, kept in its context. The
// access controller opens it (Open) once the request's token has been
// verified; until then the body cannot be read and the connection's
// deadlines are not renewed.
type gate struct {
	opened atomic.Bool
	renew  bool // opening lets serve.Progress renew the deadlines: a push or pull body
	logger *slog.Logger
	method string
	path   string

	denied atomic.Pointer[string] // why the token does not grant the request's access (Deny)

	mu      sync.Mutex
	bodyErr error // the client's body failed to arrive (cut short, timed out)
}

type gateKey struct{}

// Open records that the token of ctx's request has been verified and
// grants the access it asks for. From then on its body may be read and,
// for a push or a pull, the connection's deadlines renewed while bytes
// move. The access controller calls it with the context distribution
// passes along with the request; for a request that did not come through
// the front door it does nothing.
func Open(ctx context.Context) {
	g, ok := ctx.Value(gateKey{}).(*gate)
	if !ok {
		return
	}
	if g.opened.CompareAndSwap(false, true) && g.renew {
		serve.AllowProgress(ctx)
	}
}

// bodyFailed returns the error of a body read that failed on the client's
// side, or nil.
func (g *gate) bodyFailed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bodyErr
}

// gatedBody is a request body that cannot be read until its gate is open.
type gatedBody struct {
	io.ReadCloser
	g *gate
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if !b.g.opened.Load() {
		b.g.logger.Error("bug: request body read before the token was verified; refused",
			"method", b.g.method, "path", b.g.path)
		return 0, errBodyBeforeAuthorization
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.g.mu.Lock()
		if b.g.bodyErr == nil {
			b.g.bodyErr = err
		}
		b.g.mu.Unlock()
	}
	return n, err
}
