package authn

import (
	"context"
	"errors"
	"time"

	"stx-registry/token/access"
	"stx-registry/token/metrics"
)

// CountingBackend sits right around the real backend and counts every call
// that reaches it, with its result and duration.
type CountingBackend struct {
	next    Authenticator
	metrics *metrics.Metrics
	now     func() time.Time
}

// NewCountingBackend wraps next.
func NewCountingBackend(next Authenticator, m *metrics.Metrics) *CountingBackend {
	return &CountingBackend{next: next, metrics: m, now: time.Now}
}

// Authenticate implements Authenticator.
func (c *CountingBackend) Authenticate(ctx context.Context, cr Credentials) (access.Identity, error) {
	start := c.now()
	id, err := c.next.Authenticate(ctx, cr)
	c.metrics.BackendCall(backendResult(err), c.now().Sub(start))
	return id, err
}

// backendResult is the stx_backend_calls_total{result} label of a backend
// answer.
func backendResult(err error) string {
	var ra *RetryAfterError
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, ErrBadCredentials):
		return "bad_credentials"
	case errors.As(err, &ra):
		return "rate_limited"
	}
	return "unavailable" // anything that is not the client's fault
}
