package authn

import "stx-registry/token/metrics"

// ChainConfig configures the layers Chain puts around a backend.
type ChainConfig struct {
	Cache   CacheConfig
	Backoff BackoffConfig
}

// Chain wraps backend in the layers every login passes through, outermost
// first: the credential cache, the brute-force backoff, the counting layer,
// then the backend itself. A cached password never meets the backoff, and
// only calls that reach the backend are counted.
func Chain(backend Authenticator, c ChainConfig, m *metrics.Metrics) *CredentialCache {
	return NewCredentialCache(
		NewBackoff(NewCountingBackend(backend, m), c.Backoff, m),
		c.Cache,
		m)
}
