package authn

import "stx-registry/token/metrics"

// ChainConfig configures the layers Chain puts around a backend.
type ChainConfig struct {
	Cache   CacheConfig
	Backoff BackoffConfig
	Gate    GateConfig
}

// Chained is what Chain builds: an Authenticator, with a handle on the
// backoff's table for stx-token-server unlock.
type Chained struct {
	*CredentialCache
	backoff *Backoff
}

// Unlock clears user's failures and Keystone lockout guard; see
// Backoff.Unlock.
func (c *Chained) Unlock(user string) bool { return c.backoff.Unlock(user) }

// Backoff is the chain's backoff layer.
func (c *Chained) Backoff() *Backoff { return c.backoff }

// Chain wraps backend in the layers every login passes through, outermost
// first: the credential cache, the brute-force backoff, the gate that
// bounds concurrent password checks, the counting layer, then the backend
// itself. A cached password never meets the backoff or the gate, and only
// calls that reach the backend are counted. A cache hit for a user with
// strikes against them is confirmed with the backend in the background
// (see Backoff.cacheHit).
func Chain(backend Authenticator, c ChainConfig, m *metrics.Metrics) *Chained {
	b := NewBackoff(NewGate(NewCountingBackend(backend, m), c.Gate), c.Backoff, m)
	cache := NewCredentialCache(b, c.Cache, m)
	cache.onHit = b.cacheHit
	return &Chained{CredentialCache: cache, backoff: b}
}
